"""API Gateway, locally: routes read from the template, proxy events, proxy answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.apigw import ProxyResponse, Route, find_route, paths_of, proxy_event, routes_from_template
from local.template import Template

pytestmark = pytest.mark.unit


def test_routes_come_from_the_templates_methods(local_template: Template) -> None:
    routes = {
        (r.method, r.resource): (r.function, r.authorized) for r in routes_from_template(local_template)
    }
    assert routes[("GET", "/v1/jobs/{id}")] == ("GetJobFn", True)
    assert routes[("GET", "/v1/jobs")] == ("GetJobFn", True)
    assert routes[("POST", "/v1/jobs")] == ("SubmitJobFn", True)
    # CORS preflights reach no authorizer.
    assert routes[("OPTIONS", "/v1/jobs/{id}")][1] is False
    assert routes[("OPTIONS", "/v1/jobs")][1] is False


def test_a_template_without_api_methods_has_no_routes() -> None:
    template = Template({"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {}}}})
    assert routes_from_template(template) == []


def test_methods_whose_condition_is_false_or_that_call_no_function_are_left_out() -> None:
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
            },
        }
    )
    assert routes_from_template(template) == [Route("GET", "/x", "Fn", authorized=False)]


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
    assert json.loads(parsed.body) == {"message": "Internal server error"}
