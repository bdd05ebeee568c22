"""The HTTP edge SubmitJobFn and GetJobFn share (`jobstatus.http`)."""

from __future__ import annotations

import pytest

from jobstatus.http import (
    Caller,
    HttpError,
    caller_from_claims,
    claims_of,
    cors_headers,
    error_body,
    header,
    with_cors,
)

pytestmark = pytest.mark.unit

ALLOWED = ("https://a.example", "https://b.example")


def test_error_body_has_fields_only_when_given() -> None:
    assert error_body("X", "m") == {"error": {"code": "X", "message": "m"}}
    fields = [{"field": "input", "message": "too large"}]
    assert error_body("X", "m", fields) == {"error": {"code": "X", "message": "m", "fields": fields}}
    refused = HttpError(400, "INVALID_REQUEST", "bad", fields=fields, headers={"Retry-After": "1"})
    assert refused.body() == {"error": {"code": "INVALID_REQUEST", "message": "bad", "fields": fields}}
    assert (refused.status, refused.headers) == (400, {"Retry-After": "1"})


def test_the_caller_comes_from_the_authorizers_claims() -> None:
    event = {"requestContext": {"authorizer": {"claims": {"sub": "u1", "cognito:groups": "[users admin]"}}}}
    assert caller_from_claims(claims_of(event)) == Caller("u1", is_admin=True)
    assert caller_from_claims({"sub": "u2", "cognito:groups": "administrators"}) == Caller("u2")
    for claims in (None, {}, {"sub": ""}, {"sub": "  "}, {"sub": 7}, "sub"):
        assert caller_from_claims(claims) is None
    assert claims_of({}) is None and claims_of({"requestContext": {"authorizer": None}}) is None


def test_headers_are_found_whatever_their_case_and_repeats_are_joined() -> None:
    event = {
        "headers": {"content-type": "application/json", "If-None-Match": '"b"'},
        "multiValueHeaders": {"If-None-Match": ['"a"', '"b"']},
    }
    assert header(event, "Content-Type") == "application/json"
    assert header(event, "if-none-match") == '"a", "b"'
    assert header(event, "Origin") is None
    assert header({"headers": None, "multiValueHeaders": None}, "Origin") is None


def test_cors_only_for_an_allowed_origin_and_vary_always() -> None:
    assert cors_headers("https://b.example", ALLOWED, "ETag") == {
        "Access-Control-Allow-Origin": "https://b.example",
        "Access-Control-Expose-Headers": "ETag",
    }
    assert cors_headers("https://a.example.evil", ALLOWED, "ETag") == {}
    assert cors_headers(None, ALLOWED, "ETag") == {}
    multi = with_cors(
        {"statusCode": 200, "multiValueHeaders": {"Content-Type": ["application/json"]}},
        {"headers": {"origin": "https://a.example"}},
        ALLOWED,
        "Location",
    )
    assert multi["multiValueHeaders"] == {
        "Content-Type": ["application/json"],
        "Vary": ["Origin"],
        "Access-Control-Allow-Origin": ["https://a.example"],
        "Access-Control-Expose-Headers": ["Location"],
    }
    single = with_cors(
        {"statusCode": 404}, {"headers": {"Origin": "https://evil.example"}}, ALLOWED, "Location"
    )
    assert single["headers"] == {"Vary": "Origin"}
