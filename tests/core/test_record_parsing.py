"""ProjectorFn reads an envelope in one pass, accepting nothing `json.loads` and validation refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobstatus.events import SOURCE_SUBMIT, Status
from projector import handler as projector
from tests.core.factories import at, event
from tests.core.sqs import envelope

pytestmark = pytest.mark.unit

GOOD = event(Status.COMPLETED, at(3), job_id="good", progress=100, result={"seconds": 5, "fps": 24.5})
GOOD_DETAIL = GOOD.to_detail()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
keys = st.sampled_from([*GOOD_DETAIL, "job_id", "event_id", "extra", "detail", "detail-type"])


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> str:
    """A valid body with a few of its detail's or envelope's keys changed, dropped or repeated."""
    detail: dict[str, Any] = dict(GOOD_DETAIL)
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["set", "drop"]))
        key = draw(keys)
        if action == "set":
            detail[key] = draw(json_values | st.sampled_from(list(GOOD_DETAIL.values())))
        else:
            detail.pop(key, None)
    outer = envelope(
        detail,
        detail_type=draw(st.sampled_from(["JobStatusChanged", "Other"])),
        source=draw(st.sampled_from([SOURCE_SUBMIT, "jobs.fal-invoker", "someone.else"])),
    )
    if draw(st.booleans()):
        outer[draw(st.sampled_from(["id", "replay-name", "account"]))] = draw(json_values)
    body = json.dumps(outer)
    if draw(st.booleans()):  # a key repeated: json.loads keeps the last one
        key = draw(st.sampled_from(["userId", "jobId", "status", "detail-type", "source"]))
        body = body.replace(f'"{key}": ', f'"{key}": {json.dumps(draw(json_values))}, "{key}": ', 1)
    return body


def as_json(envelope: Any) -> str:
    # NaN is not equal to itself: the envelopes are compared as the JSON they dump to.
    return json.dumps(envelope.model_dump(by_alias=True), sort_keys=True)


def two_step(body: str) -> str | None:
    try:
        return as_json(projector._read_envelope(body))
    except projector.InvalidRecord:
        return None


def one_pass(body: str) -> str | None:
    envelope = projector._read_envelope_in_one_pass(body)
    return None if envelope is None else as_json(envelope)


@settings(max_examples=400, deadline=None)
@given(st.one_of(near_valid_bodies(), st.text(max_size=100)))
def test_the_one_pass_read_accepts_only_what_the_two_step_read_accepts_and_reads_the_same(body: str) -> None:
    fast = one_pass(body)
    if fast is not None:
        assert two_step(body) == fast


HOSTILE = {
    "a key repeated: the last wins": json.dumps(envelope(GOOD_DETAIL)).replace(
        '"userId": ', '"userId": "first", "userId": ', 1
    ),
    "the detail repeated, the last invalid": json.dumps(envelope(GOOD_DETAIL))[:-1] + ', "detail": 7}',
    "a lone surrogate": json.dumps(envelope({**GOOD_DETAIL, "userId": "\ud800"})),
    "a byte-order mark": "\ufeff" + json.dumps(envelope(GOOD_DETAIL)),
    "an id that is a number": json.dumps({**envelope(GOOD_DETAIL), "id": 5}),
    "a control character in a string": json.dumps(envelope(GOOD_DETAIL)).replace(
        '"userId": "', '"userId": "\x01'
    ),
    "NaN in result": json.dumps(envelope({**GOOD_DETAIL, "result": {"x": float("nan")}})),
    "1e400 in metrics": json.dumps(envelope({**GOOD_DETAIL, "metrics": {"x": 1}})).replace(
        '"x": 1', '"x": 1e400'
    ),
    "a float of 30 digits": json.dumps(envelope({**GOOD_DETAIL, "result": {"x": 1}})).replace(
        '"x": 1', '"x": 0.123456789012345678901234567891'
    ),
    "trailing data": json.dumps(envelope(GOOD_DETAIL)) + " x",
    "an attempt of 5,000 digits": json.dumps(envelope(GOOD_DETAIL)).replace(
        '"attempt": 1', '"attempt": ' + "9" * 5000
    ),
    "200 levels": json.dumps(envelope({**GOOD_DETAIL, "result": {"x": 1}})).replace(
        '"x": 1', '"x": ' + "[" * 200 + "]" * 200
    ),
    "990 levels": json.dumps(envelope({**GOOD_DETAIL, "result": {"x": 1}})).replace(
        '"x": 1', '"x": ' + "[" * 990 + "]" * 990
    ),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_read_in_one_pass_agree_with_the_two_step_read(body: str) -> None:
    fast = one_pass(body)
    if fast is not None:
        assert two_step(body) == fast


def test_a_valid_body_is_read_in_one_pass() -> None:
    body = json.dumps(envelope(GOOD_DETAIL, source=SOURCE_SUBMIT, replay_name="replay-1"))
    read = projector._read_envelope_in_one_pass(body)
    assert read is not None
    assert (read.detail_type, read.source, read.replay_name) == (
        "JobStatusChanged",
        "jobs.submit",
        "replay-1",
    )
    assert read.detail == GOOD_DETAIL
    assert projector.parse_record({"body": body}) == GOOD


def test_the_last_of_a_repeated_key_is_read_in_one_pass_as_in_two() -> None:
    body = HOSTILE["a key repeated: the last wins"]
    assert one_pass(body) is not None
    assert projector.parse_record({"body": body}) == GOOD


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (HOSTILE["the detail repeated, the last invalid"], "the body is not an EventBridge event: detail:"),
        (HOSTILE["an id that is a number"], "the body is not an EventBridge event: id:"),
        (HOSTILE["a byte-order mark"], "the body is not JSON: Unexpected UTF-8 BOM"),
        (HOSTILE["trailing data"], "the body is not JSON: Extra data"),
    ],
)
def test_a_body_refused_in_one_pass_is_said_why_as_before(body: str, reason: str) -> None:
    assert one_pass(body) is None
    with pytest.raises(projector.InvalidRecord) as refused:
        projector.parse_record({"body": body})
    assert str(refused.value).startswith(reason)


def test_a_detail_with_a_snake_case_key_is_refused_as_before() -> None:
    body = json.dumps(envelope(GOOD_DETAIL)).replace('"jobId": "good"', '"jobId": "good", "job_id": 1')
    with pytest.raises(projector.InvalidRecord, match="job_id: Extra inputs are not permitted"):
        projector.parse_record({"body": body})
