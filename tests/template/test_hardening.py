"""template.yaml against issue 10: who may put on the bus, preflights as MOCKs, gateway responses."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.unit

PRODUCER_ROLES = [
    {"Fn::GetAtt": ["SubmitJobFnRole", "Arn"]},
    {"Fn::GetAtt": ["FalInvokerFnRole", "Arn"]},
    {"Fn::GetAtt": ["RepublisherFnRole", "Arn"]},
]
BUS = {"Fn::GetAtt": ["JobsBus", "Arn"]}


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def test_the_bus_admits_put_events_only_from_the_producer_roles(resources):
    policies = {
        res["Properties"]["StatementId"]: res
        for res in of_type(resources, "AWS::Events::EventBusPolicy").values()
    }
    assert set(policies) == {"ProducersPut", "OthersDenied"}
    for policy in policies.values():
        assert policy["Properties"]["EventBusName"] == {"Ref": "JobsBus"}
    assert policies["ProducersPut"]["Properties"]["Statement"] == {
        "Effect": "Allow",
        "Principal": {"AWS": PRODUCER_ROLES},
        "Action": "events:PutEvents",
        "Resource": BUS,
    }
    # Every other principal of the account is refused, whatever its own policies allow.
    assert policies["OthersDenied"]["Properties"]["Statement"] == {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": BUS,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": PRODUCER_ROLES}},
    }
    # Both rewrite the bus's one policy: never at the same time.
    assert policies["OthersDenied"]["DependsOn"] == "JobsBusProducersPut"


def test_every_put_events_grant_names_its_sources(resources):
    granted = {}
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for entry in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            if entry.get("Action") == "events:PutEvents":
                granted[name] = entry["Condition"]["StringEquals"]["events:source"]
    assert granted == {
        "SubmitJobFnRole": "jobs.submit",
        "FalInvokerFnRole": "jobs.fal-invoker",
        "RepublisherFnRole": ["jobs.submit", "jobs.fal-invoker"],
    }


def test_the_cursor_key_is_a_generated_secret_only_get_job_fn_reads(resources):
    secret = resources["CursorSigningKey"]["Properties"]
    assert secret["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    readers = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for entry in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if entry.get("Resource") == {"Ref": "CursorSigningKey"}
    }
    assert readers == {"GetJobFnRole"}


PREFLIGHTS = {
    "JobsOptionsMethod": ("GET, POST, OPTIONS", "Authorization, Content-Type, Idempotency-Key"),
    "JobOptionsMethod": ("GET, OPTIONS", "Authorization, If-None-Match"),
}


@pytest.mark.parametrize("method", sorted(PREFLIGHTS))
def test_preflights_are_mock_integrations_that_echo_only_an_allowed_origin(raw, method):
    props = raw["Resources"][method]["Properties"]
    assert (props["HttpMethod"], props["AuthorizationType"]) == ("OPTIONS", "NONE")
    integration = props["Integration"]
    assert integration["Type"] == "MOCK"
    assert "Uri" not in integration
    assert integration["RequestTemplates"] == {"application/json": '{"statusCode": 204}'}
    (answer,) = integration["IntegrationResponses"]
    assert answer["StatusCode"] == "204"
    assert answer["ResponseParameters"] == {"method.response.header.Vary": "'Origin'"}
    template = answer["ResponseTemplates"]["application/json"]["Fn::Sub"]
    # The origins come from the parameter, compared one by one for equality (no substring match).
    assert "#set($allowedOrigins = '${AllowedOrigins}')" in template
    assert "#if($origin != '' && $allowed == $origin)" in template
    methods, headers = PREFLIGHTS[method]
    assert f"Access-Control-Allow-Methods = '{methods}')" in template
    assert f"Access-Control-Allow-Headers = '{headers}')" in template
    declared = set(props["MethodResponses"][0]["ResponseParameters"])
    assert declared == {
        f"method.response.header.{name}"
        for name in (
            "Vary",
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Max-Age",
        )
    }


def test_allowed_origins_cannot_break_out_of_the_vtl_string(raw):
    pattern = re.compile(raw["Parameters"]["AllowedOrigins"]["AllowedPattern"])
    assert pattern.fullmatch(raw["Parameters"]["AllowedOrigins"]["Default"])
    assert pattern.fullmatch("http://localhost:3000")
    for hostile in ("https://a.example')#end", "https://a.example, https://b.example", "$x", "a#b", ""):
        assert not pattern.fullmatch(hostile), hostile


EXPECTED_GATEWAY_RESPONSES = {
    "UNAUTHORIZED": ("401", "'UNAUTHORIZED'"),
    "ACCESS_DENIED": ("403", "'FORBIDDEN'"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "'NOT_FOUND'"),
    "THROTTLED": ("429", "'TOO_MANY_REQUESTS'"),
    "REQUEST_TOO_LARGE": ("413", "'REQUEST_TOO_LARGE'"),
    "INTEGRATION_TIMEOUT": ("504", "'GATEWAY_TIMEOUT'"),
    "DEFAULT_4XX": (None, "$context.error.responseType"),
    "DEFAULT_5XX": (None, "$context.error.responseType"),
}


def test_gateway_responses_carry_the_one_error_body_and_cors(raw, resources):
    found = {
        res["Properties"]["ResponseType"]: res["Properties"]
        for res in of_type(raw["Resources"], "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(found) == set(EXPECTED_GATEWAY_RESPONSES)
    for kind, (status, code) in EXPECTED_GATEWAY_RESPONSES.items():
        props = found[kind]
        assert props.get("StatusCode") == status, kind
        assert props["RestApiId"] == {"Fn::If": ["CreatesRestApi", {"Ref": "RestApi"}, {"Ref": "RestApiId"}]}
        assert props["ResponseParameters"] == {
            "gatewayresponse.header.Vary": "'Origin'",
            "gatewayresponse.header.Cache-Control": "'no-store'",
        }
        template = props["ResponseTemplates"]["application/json"]["Fn::Sub"]
        assert f"#set($code = {code})" in template, kind
        assert template.rstrip().splitlines()[-1].startswith('{"error": {"code": "$code", "message": ')
        assert "Access-Control-Allow-Origin = $origin" in template
    # The translator keeps them as they are.
    assert len(of_type(resources, "AWS::ApiGateway::GatewayResponse")) == len(EXPECTED_GATEWAY_RESPONSES)
