"""API Gateway, locally: routes read from the template, proxy events, proxy answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.apigw import (
    GatewayResponses,
    ProxyResponse,
    RequestData,
    Route,
    find_route,
    gateway_responses_from_template,
    paths_of,
    proxy_event,
    render,
    routes_from_template,
)
from ops.template import Template

pytestmark = pytest.mark.unit


def test_routes_come_from_the_templates_methods(local_template: Template) -> None:
    routes = {
        (r.method, r.resource): (r.function, r.authorized) for r in routes_from_template(local_template)
    }
    assert routes[("GET", "/v1/jobs/{id}")] == ("GetJobFn", True)
    assert routes[("GET", "/v1/jobs")] == ("GetJobFn", True)
    assert routes[("POST", "/v1/jobs")] == ("SubmitJobFn", True)
    # CORS preflights reach no authorizer and no function: MOCK integrations.
    assert routes[("OPTIONS", "/v1/jobs/{id}")] == ("", False)
    assert routes[("OPTIONS", "/v1/jobs")] == ("", False)
    mocks = {(r.method, r.resource) for r in routes_from_template(local_template) if r.mock is not None}
    assert mocks == {
        ("OPTIONS", "/v1/jobs/{id}"),
        ("OPTIONS", "/v1/jobs"),
        ("OPTIONS", "/v1/webhooks/secret"),
    }


def test_a_template_without_api_methods_has_no_routes() -> None:
    template = Template({"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {}}}})
    assert routes_from_template(template) == []


def test_methods_whose_condition_is_false_or_that_call_no_function_are_left_out_mocks_kept() -> None:
    resource = {
        "Type": "AWS::ApiGateway::Resource",
        "Properties": {"ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "x"},
    }
    method: dict[str, Any] = {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "ResourceId": {"Ref": "X"},
            "HttpMethod": "GET",
            "Integration": {"Uri": {"Fn::Sub": "arn:...:${Fn.Arn}/invocations"}},
        },
    }
    template = Template(
        {
            "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
            "Resources": {
                "Fn": {"Type": "AWS::Serverless::Function", "Properties": {}},
                "X": resource,
                "Mock": {**method, "Properties": {**method["Properties"], "Integration": {"Type": "MOCK"}}},
                "Off": {**method, "Condition": "Never"},
                "On": method,
                "Nowhere": {
                    **method,
                    "Properties": {**method["Properties"], "Integration": {"Type": "HTTP"}},
                },
            },
        }
    )
    # Since issue 10 a MOCK integration is a route too (the preflights): the gateway runs its templates.
    routes = routes_from_template(template)
    assert [(r.method, r.resource, r.function, r.authorized, r.mock is not None) for r in routes] == [
        ("GET", "/x", "", False, True),
        ("GET", "/x", "Fn", False, False),
    ]


def test_literal_paths_win_over_parameters() -> None:
    routes = [Route("GET", "/v1/jobs/{id}", "A"), Route("GET", "/v1/jobs/mine", "B")]
    ordered = sorted(routes, key=lambda r: (r.resource.count("{"), -len(r.resource)))
    found = find_route(ordered, "GET", "/v1/jobs/mine")
    assert found is not None and found[0].function == "B"
    found = find_route(ordered, "GET", "/v1/jobs/abc")
    assert found == (routes[0], {"id": "abc"})


def test_match_needs_method_and_every_part() -> None:
    route = Route("GET", "/v1/jobs/{id}", "GetJobFn")
    assert route.match("get", "/v1/jobs/x/") == {"id": "x"}
    assert route.match("POST", "/v1/jobs/x") is None
    assert route.match("GET", "/v1/jobs") is None
    assert route.match("GET", "/v2/jobs/x") is None
    assert Route("ANY", "/a", "F").match("DELETE", "/a") == {}
    assert [r.function for r in paths_of([route], "/v1/jobs/y")] == ["GetJobFn"]


def test_proxy_event_has_the_rest_api_shape() -> None:
    route = Route("GET", "/v1/jobs/{id}", "GetJobFn")
    event = proxy_event(
        route=route,
        method="get",
        path="/v1/jobs/abc",
        path_parameters={"id": "abc"},
        headers={"Authorization": ["Bearer t"], "X-Many": ["1", "2"], "User-Agent": ["curl/8"]},
        query={"status": ["QUEUED"], "tag": ["a", "b"]},
        body=b"",
        claims={"sub": "alice"},
        now=1_800_000_000.0,
    )
    assert event["resource"] == "/v1/jobs/{id}"
    assert event["path"] == "/v1/jobs/abc"
    assert event["httpMethod"] == "GET"
    assert event["headers"]["X-Many"] == "2"
    assert event["multiValueHeaders"]["X-Many"] == ["1", "2"]
    assert event["queryStringParameters"] == {"status": "QUEUED", "tag": "b"}
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert event["pathParameters"] == {"id": "abc"}
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["authorizer"] == {"claims": {"sub": "alice"}}
    assert context["stage"] == "local" and context["path"] == "/local/v1/jobs/abc"
    assert context["requestTimeEpoch"] == 1_800_000_000_000
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "curl/8"
    assert context["requestId"]


def test_proxy_event_without_claims_headers_or_query_uses_nulls() -> None:
    event = proxy_event(
        route=Route("OPTIONS", "/x", "F", False),
        method="OPTIONS",
        path="/x",
        path_parameters={},
        headers={},
        query={},
        body=b'{"a": 1}',
        claims=None,
    )
    assert event["headers"] is None and event["multiValueHeaders"] is None
    assert event["queryStringParameters"] is None and event["pathParameters"] is None
    assert event["requestContext"]["authorizer"] is None
    assert json.loads(event["body"]) == {"a": 1}


def test_a_binary_body_is_base64_encoded() -> None:
    event = proxy_event(
        route=Route("POST", "/x", "F"),
        method="POST",
        path="/x",
        path_parameters={},
        headers={},
        query={},
        body=b"\xff\xfe",
        claims=None,
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_proxy_response_reads_single_and_multi_value_headers() -> None:
    answer = ProxyResponse.parse(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json", "Set-Cookie": "ignored"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "{}",
        }
    )
    assert answer.status == 200
    assert ("Set-Cookie", "a=1") in answer.headers and ("Set-Cookie", "b=2") in answer.headers
    assert ("Set-Cookie", "ignored") not in answer.headers
    assert answer.body == b"{}"


def test_proxy_response_decodes_base64_and_takes_no_body() -> None:
    assert ProxyResponse.parse({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True}).body == b"hi"
    assert ProxyResponse.parse({"statusCode": 304}).body == b""


@pytest.mark.parametrize("answer", [None, "text", {"body": "x"}, {"statusCode": "200"}])
def test_a_malformed_answer_is_a_502(answer: object) -> None:
    parsed = ProxyResponse.parse(answer)
    assert parsed.status == 502
    # The one error body (issue 10), no longer API Gateway's bare {"message"}.
    assert json.loads(parsed.body) == {"error": {"code": "BAD_GATEWAY", "message": "Internal server error"}}
    assert ProxyResponse.is_proxy_answer(answer) is False


# --- the template's MOCK preflights and gateway responses, run locally ---------------------------

ALLOWED = "https://video.deepfoundai.com"  # one of AllowedOrigins' default values
CORS_NAMES = {
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
}


def preflight(template: Template, path: str, headers: list[tuple[str, str]]) -> ProxyResponse:
    found = find_route(routes_from_template(template), "OPTIONS", path)
    assert found is not None
    route, parameters = found
    assert route.mock is not None
    return route.mock.answer(RequestData(headers, {}, parameters))


def header_map(answer: ProxyResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in answer.headers}


@pytest.mark.parametrize("name", ["Origin", "origin"])
def test_a_preflight_from_an_allowed_origin_gets_it_echoed_with_the_cors_headers(
    local_template: Template, name: str
) -> None:
    answer = preflight(local_template, "/v1/jobs", [(name, ALLOWED)])
    assert answer.status == 204
    headers = header_map(answer)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "Authorization, Content-Type, Idempotency-Key"
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == "Origin"
    single = header_map(
        preflight(local_template, "/v1/jobs/job-1", [("Origin", "https://admin.deepfoundai.com")])
    )
    assert single["access-control-allow-origin"] == "https://admin.deepfoundai.com"
    assert single["access-control-allow-methods"] == "GET, OPTIONS"
    assert single["access-control-allow-headers"] == "Authorization, If-None-Match"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://video.deepfoundai.com.evil.example",
        "https://video.deepfoundai.com,https://admin.deepfoundai.com",
        "https://video.deepfoundai.co",
        "",
        "null",
    ],
)
def test_a_preflight_from_any_other_origin_gets_no_cors_header(local_template: Template, origin: str) -> None:
    answer = preflight(local_template, "/v1/jobs", [("Origin", origin)])
    assert answer.status == 204
    headers = header_map(answer)
    assert not CORS_NAMES & set(headers), headers
    assert headers["vary"] == "Origin"


def test_a_preflight_without_origin_gets_no_cors_header(local_template: Template) -> None:
    headers = header_map(preflight(local_template, "/v1/jobs/x", []))
    assert not CORS_NAMES & set(headers)


def test_the_preflight_follows_the_allowed_origins_parameter() -> None:
    template = Template.read(
        Stage="t",
        CreateRestApi="true",
        CognitoUserPoolArn="arn:aws:cognito-idp:x",
        AllowedOrigins="http://localhost:5173",
    )
    assert (
        header_map(preflight(template, "/v1/jobs", [("Origin", "http://localhost:5173")]))[
            "access-control-allow-origin"
        ]
        == "http://localhost:5173"
    )
    assert "access-control-allow-origin" not in header_map(
        preflight(template, "/v1/jobs", [("Origin", ALLOWED)])
    )


@pytest.mark.parametrize(
    ("kind", "status", "code", "message"),
    [
        ("UNAUTHORIZED", 401, "UNAUTHORIZED", "Unauthorized"),
        ("ACCESS_DENIED", 403, "FORBIDDEN", "User is not authorized"),
        ("MISSING_AUTHENTICATION_TOKEN", 404, "NOT_FOUND", "No such route"),
        ("THROTTLED", 429, "TOO_MANY_REQUESTS", "Too Many Requests"),
        ("REQUEST_TOO_LARGE", 413, "REQUEST_TOO_LARGE", "Request Too Long"),
        ("INTEGRATION_TIMEOUT", 504, "GATEWAY_TIMEOUT", "Endpoint request timed out"),
        ("BAD_REQUEST_BODY", 400, "BAD_REQUEST_BODY", 'Content-Length "x"'),
        ("INTEGRATION_FAILURE", 502, "INTEGRATION_FAILURE", "Internal server error"),
    ],
)
def test_gateway_responses_carry_the_one_error_body_and_cors_for_an_allowed_origin(
    local_template: Template, kind: str, status: int, code: str, message: str
) -> None:
    responses = gateway_responses_from_template(local_template)
    requested = status if kind in {"BAD_REQUEST_BODY", "INTEGRATION_FAILURE"} else None
    answer = responses.answer(kind, message, RequestData([("Origin", ALLOWED)]), requested)
    assert answer.status == status
    assert json.loads(answer.body) == {"error": {"code": code, "message": message}}
    headers = header_map(answer)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["vary"] == "Origin"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    refused = responses.answer(kind, message, RequestData([("Origin", "https://evil.example")]), requested)
    assert json.loads(refused.body) == {"error": {"code": code, "message": message}}
    assert "access-control-allow-origin" not in header_map(refused)


def test_without_gateway_responses_the_error_body_is_still_the_one() -> None:
    answer = GatewayResponses().answer("UNAUTHORIZED", "Unauthorized", RequestData())
    assert answer.status == 401
    assert json.loads(answer.body) == {"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}}


def test_render_reads_params_and_sets_headers_through_the_response_override() -> None:
    text, headers = render(
        "#set($o = $input.params('id'))#set($context.responseOverride.header.X-Seen = $o)[$o]",
        RequestData(path={"id": "abc"}),
    )
    assert (text, headers) == ("[abc]", {"X-Seen": "abc"})
