"""SubmitJobFn under hypothesis (issue 10): any body, any bytes, odd headers; never a 5xx, and
every PutEvents Detail it sends is strict JSON. The real handler, EventBridge, SQS and the
idempotency table are moto in-process."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from jobstatus.events import JobStatusChanged
from jobstatus.storable import unstorable_reason
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff
from producers.settings import ProducerSettings
from producers.submit.handler import handle
from producers.submit.keys import JobKeys
from producers.submit.submitter import SubmitDeps, Submitter
from tests.examples import examples
from tests.producers.fakes import lambda_context
from tests.producers.test_submit import MODEL, post
from tests.producers.test_submit_idempotency import create_table

pytestmark = pytest.mark.property

BUS = "jobs-test"
PROPERTY = settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))


class NotJson(ValueError):
    """A Detail holds NaN or Infinity."""


def refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} in a Detail")


class RecordingEvents:
    """The moto EventBridge client, recording every entry put through it (from any thread)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def put_events(self, **kwargs: Any) -> Any:
        with self._lock:
            self.entries.extend(dict(e) for e in kwargs["Entries"])
        return self._client.put_events(**kwargs)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self.entries = self.entries, []
        return taken


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[RecordingEvents, Submitter]]:
    with mock_aws():
        client = boto3.client("events", region_name="us-east-1")
        client.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs", region_name="us-east-1")
        outbox = sqs.create_queue(QueueName="outbox")["QueueUrl"]
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb)
        events = RecordingEvents(client)
        config = ProducerSettings(
            event_bus_name=BUS,
            model_allow_list=MODEL,
            submit_publish_seconds=0.5,
            status_flush_seconds=0.5,
        )
        publisher = StatusPublisher(
            events, SqsOutbox(sqs, outbox), bus_name=BUS, source="jobs.submit", backoff=Backoff(0.001, 0.002)
        )
        deps = SubmitDeps(
            events=events,
            publisher=publisher,
            settings=config,
            keys=JobKeys(ddb, "idempotency", ttl_days=30),
            backoff=Backoff(0.001, 0.002),
        )
        yield events, Submitter(deps)
        publisher.close()


# Text of every kind, lone surrogates and JSON's own punctuation included.
ODD_CHARS = st.characters(categories=["Cs", "Cc", "Zs", "So"]) | st.sampled_from('"\\{}[]:,\x00\u2028')
# Mostly values a client would send (so that many bodies are accepted), sometimes the odd ones.
TEXT = st.one_of(st.text(max_size=20), st.text(max_size=20), st.text(ODD_CHARS, max_size=8))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e200, -1e-200, 5e-324, 1.7976931348623157e308]),
    st.floats(),  # NaN and the infinities too
    TEXT,
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=30,
)


@st.composite
def json_bodies(draw: st.DrawFn) -> str:
    """A body in JSON syntax (Python's: NaN and Infinity allowed), mostly of the right shape."""
    body: Any
    if draw(st.integers(0, 4)):
        body = {"model": draw(st.one_of(*[st.just(MODEL)] * 6, st.just(""), TEXT))}
        if draw(st.integers(0, 4)):
            body["input"] = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=5))
        else:
            body["input"] = draw(JSON_VALUES)
        if not draw(st.integers(0, 9)):
            body[draw(TEXT)] = draw(JSON_VALUES)
    else:
        body = draw(JSON_VALUES)
    depth = draw(st.sampled_from([0] * 12 + [1, 30, 63, 64, 65, 1000, 5000]))
    text = json.dumps(body, allow_nan=True, ensure_ascii=draw(st.booleans()))
    if depth and isinstance(body, dict) and "input" in body:  # bury the input under `depth` arrays
        text = json.dumps({"model": body["model"], "input": {"a": "@"}}).replace(
            '"@"', "[" * depth + "1" + "]" * depth
        )
    return text


HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.one_of(
            *[st.just("application/json")] * 4,
            st.sampled_from(
                [
                    "application/json; charset=utf-8",
                    "APPLICATION/JSON;charset=UTF8",
                    "application/json; charset=latin-1",
                    "text/plain",
                    "",
                ]
            ),
            st.text(max_size=30),
        ),
        "Idempotency-Key": st.one_of(
            st.uuids().map(str),
            st.uuids().map(str),
            st.sampled_from(["k-1", "k 3", ""]),
            st.text(max_size=300),
        ),
        "X-Odd": st.text(max_size=30),
    },
)


def assert_only_strict_json_on_the_bus(events: RecordingEvents) -> list[dict[str, Any]]:
    details = []
    for entry in events.take():
        detail = json.loads(entry["Detail"], parse_constant=refuse_constant)
        entry["Detail"].encode()  # UTF-8: no lone surrogate reached the bus
        details.append({"DetailType": entry["DetailType"], **detail})
    return details


def answer(handler: Submitter, request: dict[str, Any]) -> dict[str, Any]:
    response = handle(request, lambda_context(), handler)
    event(f"answer {response['statusCode']}")  # hypothesis statistics: how the answers spread
    assert response["statusCode"] < 500, response
    assert response["statusCode"] in (202, 400, 409, 415), response
    if response["statusCode"] != 202:
        error = json.loads(response["body"])["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return response


def request_event(body: str | None, headers: dict[str, str], base64_encoded: bool = False) -> dict[str, Any]:
    event = post(None)
    event["headers"] = {"Origin": "https://video.deepfoundai.com", **headers}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["body"] = body
    event["isBase64Encoded"] = base64_encoded
    return event


@PROPERTY
@given(body=json_bodies(), headers=HEADERS)
def test_any_json_body_gets_no_5xx_and_only_strict_json_goes_on_the_bus(
    world: tuple[RecordingEvents, Submitter], body: str, headers: dict[str, str]
) -> None:
    events, handler = world
    response = answer(handler, request_event(body, headers))
    details = assert_only_strict_json_on_the_bus(events)
    if response["statusCode"] == 202 and "Idempotency-Key" not in headers:
        queued, requested = details
        JobStatusChanged.from_detail({k: v for k, v in queued.items() if k != "DetailType"})
        # Fal gets the client's input as sent (it was strict JSON, or the answer was not 202).
        assert requested["input"] == json.loads(body)["input"]
        assert queued["request"]["model"] == requested["model"] == MODEL


@PROPERTY
@given(raw=st.binary(max_size=300), as_base64=st.booleans(), headers=HEADERS)
def test_any_bytes_get_no_5xx_and_only_strict_json_goes_on_the_bus(
    world: tuple[RecordingEvents, Submitter], raw: bytes, as_base64: bool, headers: dict[str, str]
) -> None:
    events, handler = world
    body = base64.b64encode(raw).decode() if as_base64 else raw.decode("latin-1")
    answer(handler, request_event(body, headers, as_base64))
    assert_only_strict_json_on_the_bus(events)


@PROPERTY
@given(text=st.text(st.characters(categories=["Cs", "L", "N", "P", "S", "Z", "Cc"]), max_size=200))
def test_any_text_gets_no_5xx_and_only_strict_json_goes_on_the_bus(
    world: tuple[RecordingEvents, Submitter], text: str
) -> None:
    events, handler = world
    answer(handler, request_event(text, {"Content-Type": "application/json"}))
    answer(handler, request_event(None, {}))
    assert_only_strict_json_on_the_bus(events)


def strict_size(value: Any) -> int | None:
    """Bytes of `value` as strict UTF-8 JSON; None when it is not strict JSON (the oracle)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except ValueError:  # NaN, an infinity, or a lone surrogate (UnicodeEncodeError)
        return None


@PROPERTY
@given(arguments=st.dictionaries(TEXT, JSON_VALUES, max_size=6), ensure_ascii=st.booleans())
def test_any_input_object_is_taken_exactly_when_it_is_strict_json(
    world: tuple[RecordingEvents, Submitter], arguments: dict[str, Any], ensure_ascii: bool
) -> None:
    events, handler = world
    body = json.dumps({"model": MODEL, "input": arguments}, allow_nan=True, ensure_ascii=ensure_ascii)
    response = answer(handler, request_event(body, {"Content-Type": "application/json"}))
    details = assert_only_strict_json_on_the_bus(events)
    # As a JSON parser reads the body: an escaped surrogate pair is one character again.
    sent = json.loads(body)["input"]
    size = strict_size(sent)
    assert response["statusCode"] == (202 if size is not None and size <= 16 * 1024 else 400)
    if response["statusCode"] == 202:
        queued, requested = details
        JobStatusChanged.from_detail({k: v for k, v in queued.items() if k != "DetailType"})
        assert requested["input"] == sent  # Fal gets the input as sent
        assert unstorable_reason(queued["request"]["input"], 3) is None  # the request holds it storable
    else:
        assert details == []
