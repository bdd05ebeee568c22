"""SubmitJobFn: auth, validation (400, never 422), Idempotency-Key, one PutEvents, 503, CORS."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff
from producers.settings import ProducerSettings
from producers.submit import handler as submit
from producers.submit.handler import handle
from producers.submit.keys import JobKeys
from producers.submit.submitter import SubmitDeps, Submitter
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
    return Submitter(deps)


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
    assert queued["request"] == {"model": MODEL, "input": {"prompt": "a rabbit"}}


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


def test_a_preflight_is_the_apis_mock_not_this_function() -> None:
    # Changed on purpose (issue 11): OPTIONS is the template's MOCK integration (its headers,
    # Idempotency-Key included, are checked in tests/local/test_apigw.py). One that reaches the
    # function anyway is no route of it: the error body, with CORS and Vary as on any answer.
    event = post(None, sub=None, method="OPTIONS", headers={"Access-Control-Request-Method": "POST"})
    response = handle(event, lambda_context(), make(FakeEvents()))
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "NOT_FOUND"
    assert header(response, "Access-Control-Allow-Origin") == ORIGIN
    assert header(response, "Vary") == "Origin"


def test_handler_returns_quickly_with_a_dead_bus() -> None:
    events = FakeEvents(lambda n, e: throttled())
    started = time.monotonic()
    handle(post(GOOD), lambda_context(), make(events))
    assert time.monotonic() - started < 2


# -- issue 10: no client input gets a 5xx or puts anything but strict JSON on the bus ----------


def raw(body: str | None, **more: Any) -> dict[str, Any]:
    """A request event whose body is exactly `body` (no json.dumps of ours in between)."""
    event = post(None, **more)
    event["body"] = body
    return event


def refused(event: dict[str, Any], status: int = 400) -> dict[str, Any]:
    """Post `event`; assert the answer is `status` with the one error body and nothing on the bus."""
    events = FakeEvents()
    response = handle(event, lambda_context(), make(events))
    assert response["statusCode"] == status, response["body"]
    assert events.calls == []
    body = json.loads(response["body"])
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return dict(body["error"])


DEEP = 5000


def with_input(text: str) -> str:
    """A body with an allowed model and `text`, verbatim, as its input."""
    return '{"model": "' + MODEL + '", "input": ' + text + "}"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("[" * DEEP + "]" * DEEP, "body", "the body nests objects and arrays deeper than 64 levels"),
        (
            with_input('{"a": ' + "[" * DEEP + "]" * DEEP + "}"),
            "body",
            "the body nests objects and arrays deeper than 64 levels",
        ),
        (
            with_input('{"a":' * DEEP + "1" + "}" * DEEP),
            "body",
            "the body nests objects and arrays deeper than 64 levels",
        ),
        (with_input('{"prompt": "\\ud800"}'), "input.prompt", "a lone surrogate"),
        (with_input('{"p": ["ok", "\\udfff"]}'), "input.p[1]", "a lone surrogate"),
        (with_input('{"\\ud800": 1}'), "input.\\ud800", "a lone surrogate"),
        (with_input('{"prompt": "\ud800"}'), "input.prompt", "a lone surrogate"),
        ('{"model": "\\udc00", "input": {}}', "model", "a lone surrogate"),
        (with_input('{"cfg": NaN}'), "body", "NaN is not a JSON number"),
        (with_input('{"cfg": Infinity}'), "body", "Infinity is not a JSON number"),
        (with_input('{"cfg": [-Infinity]}'), "body", "-Infinity is not a JSON number"),
        (with_input('{"cfg": 1e400}'), "body", "beyond the range of a double"),
        (with_input('{"cfg": -1.5E+999}'), "body", "beyond the range of a double"),
        (with_input('{"n": ' + "9" * 5000 + "}"), "body", "the body is not JSON"),
        ("{nope", "body", "the body is not JSON"),
        ("", "body", "the body is not JSON"),
    ],
    ids=[
        "body-5000-deep",
        "input-array-5000-deep",
        "input-object-5000-deep",
        "surrogate-escape",
        "surrogate-in-array",
        "surrogate-in-key",
        "surrogate-raw",
        "surrogate-in-model",
        "NaN",
        "Infinity",
        "minus-Infinity",
        "1e400",
        "minus-1.5E+999",
        "5000-digit-integer",
        "not-json",
        "empty",
    ],
)
def test_400_for_a_body_that_is_not_strict_json(body: str, field: str, message: str) -> None:
    error = refused(raw(body))
    assert error["code"] == "INVALID_REQUEST"
    assert [f["field"] for f in error["fields"]] == [field]
    assert message in error["fields"][0]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            base64.b64encode(b'{"model": "m", "input": {"p": "\xff"}}').decode(),
            "the body is not UTF-8 (byte 31)",
        ),
        (base64.b64encode(b"\xc3").decode(), "the body is not UTF-8 (byte 0)"),
        ("not base64!", "the body is not valid base64"),
    ],
    ids=["latin-1-byte", "cut-sequence", "not-base64"],
)
def test_400_for_a_base64_body_that_is_not_utf8(body: str, message: str) -> None:
    event = raw(body)
    event["isBase64Encoded"] = True
    error = refused(event)
    assert error["code"] == "INVALID_REQUEST" and error["message"] == message


def test_a_base64_utf8_body_is_read() -> None:
    event = raw(base64.b64encode(json.dumps(GOOD).encode()).decode())
    event["isBase64Encoded"] = True
    assert handle(event, lambda_context(), make(FakeEvents()))["statusCode"] == 202


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_415_for_a_body_that_is_not_application_json(content_type: str) -> None:
    error = refused(post(GOOD, headers={"Content-Type": content_type}), status=415)
    assert error["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8", "", None]
)
def test_json_with_or_without_charset_utf8_and_a_missing_content_type_are_read(
    content_type: str | None,
) -> None:
    event = post(GOOD)
    del event["headers"]["Content-Type"], event["multiValueHeaders"]["Content-Type"]
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    assert handle(event, lambda_context(), make(FakeEvents()))["statusCode"] == 202


def test_input_up_to_16_kib_as_json_is_taken_and_one_byte_more_is_input_too_large() -> None:
    # {"p":"xxx..."} is 8 bytes plus the x's
    events = FakeEvents()
    taken = handle(post({"model": MODEL, "input": {"p": "x" * 16_376}}), lambda_context(), make(events))
    assert taken["statusCode"] == 202
    assert json.loads(events.calls[0][0]["Detail"])["request"]["input"] == {"p": "x" * 16_376}
    error = refused(post({"model": MODEL, "input": {"p": "x" * 16_377}}))
    assert (
        error["code"] == "INPUT_TOO_LARGE"
        and error["message"] == "input is 16385 bytes as JSON; at most 16384 allowed"
    )
    assert [f["field"] for f in error["fields"]] == ["input"]


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """SubmitJobFn's JSON log lines (Powertools binds its stream at import, so capsys misses them)."""
    stream = io.StringIO()
    monkeypatch.setattr(submit.logger.registered_handler, "stream", stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_request_field_holds_the_input_made_storable_and_fal_gets_it_as_sent(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    events = FakeEvents()
    body = with_input('{"prompt": "a rabbit", "cfg": 1e200, "": "x", "seed": ' + "1" * 41 + "}")
    response = handle(raw(body), lambda_context(), make(events))
    assert response["statusCode"] == 202
    queued, requested = (json.loads(e["Detail"]) for e in events.calls[0])
    assert queued["request"] == {
        "model": MODEL,
        "input": {"prompt": "a rabbit", "cfg": "1e+200", "seed": "1" * 41},
    }
    assert requested["input"] == {"prompt": "a rabbit", "cfg": 1e200, "": "x", "seed": int("1" * 41)}
    line = next(
        x for x in log_lines() if x["message"] == "the client's input made storable for the request field"
    )
    assert line["level"] == "WARNING" and line["jobId"] == json.loads(response["body"])["jobId"]
    assert line["changes"] == [
        "cfg: number 1e+200 kept as a string",
        f"seed: number {'1' * 41} kept as a string",
        "value: an empty map key dropped",
    ]


def test_model_not_allowed_names_the_allowed_models() -> None:
    handler = make(FakeEvents(), model_allow_list="fal-ai/a,fal-ai/b")
    error = json.loads(handle(post(GOOD), lambda_context(), handler)["body"])["error"]
    assert error["message"] == f"model '{MODEL}' is not allowed; allowed models: fal-ai/a, fal-ai/b"
