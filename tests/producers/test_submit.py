"""SubmitJobFn: auth, validation (400, never 422), Idempotency-Key, one PutEvents, 503, CORS."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from producers.jobkeys import JobKeys
from producers.publisher import StatusPublisher
from producers.putevents import Backoff
from producers.settings import ProducerSettings
from producers.submit import SubmitDeps, handle, make_handler
from tests.producers.fakes import FakeEvents, FakeMetrics, FakeOutbox, lambda_context, throttled

pytestmark = pytest.mark.unit

MODEL = "fal-ai/kling-video/v2/master/text-to-video"
ORIGIN = "https://video.deepfoundai.com"
EVIL = {"Origin": "https://evil.example"}
BAD_KEY = {"Idempotency-Key": "has space"}


def make(
    events: FakeEvents,
    outbox: FakeOutbox | None = None,
    keys: JobKeys | None = None,
    now: Any = None,
    **settings: Any,
):
    config = ProducerSettings(
        event_bus_name="jobs-test", submit_publish_seconds=0.05, status_flush_seconds=0.05, **settings
    )
    publisher = StatusPublisher(
        events,
        outbox or FakeOutbox(),
        bus_name="jobs-test",
        source="jobs.submit",
        backoff=Backoff(0.001, 0.002),
    )
    deps = SubmitDeps(
        events=events,
        publisher=publisher,
        settings=config,
        keys=keys,
        metrics=FakeMetrics(),
        backoff=Backoff(0.001, 0.002),
        **({"now": now} if now else {}),
    )
    return make_handler(deps)


def post(
    body: Any, *, sub: str | None = "user-1", headers: dict[str, str] | None = None, method: str = "POST"
) -> dict[str, Any]:
    request_context: dict[str, Any] = {
        "httpMethod": method,
        "path": "/v1/jobs",
        "resourcePath": "/v1/jobs",
        "stage": "test",
    }
    if sub is not None:
        request_context["authorizer"] = {"claims": {"sub": sub}}
    all_headers = {"Content-Type": "application/json", "Origin": ORIGIN, **(headers or {})}
    return {
        "resource": "/v1/jobs",
        "path": "/v1/jobs",
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "requestContext": request_context,
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def header(response: dict[str, Any], name: str) -> str | None:
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ",".join(values)
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


GOOD = {"model": MODEL, "input": {"prompt": "a rabbit"}}


def test_202_publishes_queued_and_the_request_in_one_put_events() -> None:
    events = FakeEvents()
    response = handle(post(GOOD), lambda_context(), make(events))
    body = json.loads(response["body"])
    assert response["statusCode"] == 202
    assert body["status"] == "QUEUED" and header(response, "Location") == f"/v1/jobs/{body['jobId']}"
    assert len(events.calls) == 1 and [e["DetailType"] for e in events.calls[0]] == [
        "JobStatusChanged",
        "VideoGenerationRequested",
    ]
    queued = json.loads(events.calls[0][0]["Detail"])
    requested = json.loads(events.calls[0][1]["Detail"])
    assert queued["jobId"] == requested["jobId"] == body["jobId"]
    assert queued["createdAt"] == requested["createdAt"] == body["createdAt"] and queued["userId"] == "user-1"
    assert requested == {
        "jobId": body["jobId"],
        "userId": "user-1",
        "createdAt": body["createdAt"],
        "model": MODEL,
        "input": {"prompt": "a rabbit"},
    }
    assert {e["Source"] for e in events.calls[0]} == {"jobs.submit"}


def test_401_without_claims() -> None:
    response = handle(post(GOOD, sub=None), lambda_context(), make(FakeEvents()))
    assert response["statusCode"] == 401 and json.loads(response["body"])["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}}, "model"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": "text"}, "input"),
        ({"model": MODEL, "input": {}, "extra": 1}, "extra"),
    ],
)
def test_400_with_field_errors_never_422(body: dict[str, Any], field: str) -> None:
    events = FakeEvents()
    response = handle(post(body), lambda_context(), make(events))
    error = json.loads(response["body"])["error"]
    assert response["statusCode"] == 400 and error["code"] == "INVALID_REQUEST"
    assert field in [f["field"] for f in error["fields"]]
    assert events.calls == []


def test_400_for_a_body_that_is_not_json() -> None:
    response = handle(post("{nope"), lambda_context(), make(FakeEvents()))
    assert (
        response["statusCode"] == 400 and json.loads(response["body"])["error"]["code"] == "INVALID_REQUEST"
    )


def test_400_for_a_model_outside_the_allow_list() -> None:
    handler = make(FakeEvents(), model_allow_list="fal-ai/other")
    response = handle(post(GOOD), lambda_context(), handler)
    assert (
        response["statusCode"] == 400 and json.loads(response["body"])["error"]["code"] == "MODEL_NOT_ALLOWED"
    )


def test_400_for_an_input_over_eventbridge_limit() -> None:
    response = handle(
        post({"model": MODEL, "input": {"p": "x" * 300_000}}), lambda_context(), make(FakeEvents())
    )
    assert (
        response["statusCode"] == 400 and json.loads(response["body"])["error"]["code"] == "INPUT_TOO_LARGE"
    )


def test_400_for_a_malformed_idempotency_key() -> None:
    response = handle(post(GOOD, headers=BAD_KEY), lambda_context(), make(FakeEvents()))
    assert json.loads(response["body"])["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"


def test_without_a_key_every_request_is_a_new_job() -> None:
    events = FakeEvents()
    handler = make(events)
    first, second = (json.loads(handle(post(GOOD), lambda_context(), handler)["body"]) for _ in range(2))
    assert first["jobId"] != second["jobId"]
    assert all(uuid.UUID(body["jobId"]).version == 4 for body in (first, second))
    assert len(events.details("VideoGenerationRequested")) == 2


def test_a_key_without_a_configured_store_is_a_500_not_a_silent_new_job() -> None:
    events = FakeEvents()
    response = handle(post(GOOD, headers={"Idempotency-Key": "k-1"}), lambda_context(), make(events))
    assert response["statusCode"] == 500 and json.loads(response["body"])["error"]["code"] == "INTERNAL_ERROR"
    assert events.calls == []


def test_503_with_retry_after_when_the_request_event_cannot_be_published() -> None:
    outbox = FakeOutbox()
    events = FakeEvents(lambda n, e: throttled())
    response = handle(post(GOOD), lambda_context(), make(events, outbox))
    assert response["statusCode"] == 503 and header(response, "Retry-After") == "2"
    # The same error vocabulary as GetJobFn's (api.core): one error body format on every route.
    assert json.loads(response["body"])["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert len(events.calls) >= 2  # retried first
    assert outbox.stored == []  # no QUEUED for a job that will never run


def test_202_when_only_the_status_event_fails_and_the_fallback_keeps_it() -> None:
    # Given: the bus refuses every JobStatusChanged (throttled) and takes every request
    events = FakeEvents(
        lambda n, e: ["ThrottlingException" if x["DetailType"] == "JobStatusChanged" else None for x in e]
    )
    outbox = FakeOutbox()
    # When
    response = handle(post(GOOD), lambda_context(), make(events, outbox))
    # Then
    assert response["statusCode"] == 202
    assert [json.loads(e["Detail"])["status"] for e in outbox.stored] == ["QUEUED"]
    assert json.loads(outbox.stored[0]["Detail"])["jobId"] == json.loads(response["body"])["jobId"]


def test_cors_echoes_an_allowed_origin_and_varies_on_origin() -> None:
    response = handle(post(GOOD), lambda_context(), make(FakeEvents()))
    assert header(response, "Access-Control-Allow-Origin") == ORIGIN
    assert header(response, "Vary") == "Origin"
    other = handle(post(GOOD, headers=EVIL), lambda_context(), make(FakeEvents()))
    assert header(other, "Access-Control-Allow-Origin") is None


def test_preflight_answers_without_auth() -> None:
    event = post(None, sub=None, method="OPTIONS", headers={"Access-Control-Request-Method": "POST"})
    response = handle(event, lambda_context(), make(FakeEvents()))
    assert response["statusCode"] in (200, 204)
    assert header(response, "Access-Control-Allow-Origin") == ORIGIN
    assert "Idempotency-Key" in (header(response, "Access-Control-Allow-Headers") or "")


def test_handler_returns_quickly_with_a_dead_bus() -> None:
    events = FakeEvents(lambda n, e: throttled())
    started = time.monotonic()
    handle(post(GOOD), lambda_context(), make(events))
    assert time.monotonic() - started < 2
