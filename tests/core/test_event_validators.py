"""The event model's own validators read exactly as the slower forms they replaced."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobstatus.events import EVENT_ID_PATTERN, TIMESTAMP_PATTERN, JobStatusChanged, parse_timestamp

pytestmark = pytest.mark.unit

T0 = "2026-11-22T07:20:31.123Z"


def detail(**changes: Any) -> dict[str, Any]:
    return {
        "eventId": "0b6f7a8e-3c1d-4e2f-9a5b-6c7d8e9f0a1b",
        "jobId": "job-1",
        "userId": "user-1",
        "status": "QUEUED",
        "occurredAt": T0,
        "createdAt": T0,
        **changes,
    }


@settings(max_examples=300, deadline=None)
@given(st.from_regex(EVENT_ID_PATTERN, fullmatch=True))
def test_an_event_id_is_kept_as_uuid_writes_it(value: str) -> None:
    assert JobStatusChanged.from_detail(detail(eventId=value)).event_id == str(uuid.UUID(value))


def _parses(value: str) -> bool:
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
def test_a_timestamp_is_accepted_exactly_when_parse_timestamp_reads_it(value: str) -> None:
    try:
        JobStatusChanged.from_detail(detail(occurredAt=value))
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == _parses(value)


@pytest.mark.parametrize(
    "value", ["2026-02-30T07:20:31.123Z", "0000-01-01T00:00:00.000Z", "2026-02-29T00:00:00.000Z"]
)
def test_an_instant_that_does_not_exist_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="occurredAt"):
        JobStatusChanged.from_detail(detail(occurredAt=value))


@pytest.mark.parametrize(("value", "kept"), [(1, 1), (9999, 9999), (3.0, 3)])
def test_an_attempt_that_is_a_json_integer_is_kept_as_an_int(value: object, kept: int) -> None:
    attempt = JobStatusChanged.from_detail(detail(attempt=value)).attempt
    assert attempt == kept and type(attempt) is int


@pytest.mark.parametrize("value", [True, False, "2", 2.5, None, 0, 10_000])
def test_an_attempt_that_is_not_a_json_integer_in_range_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="attempt"):
        JobStatusChanged.from_detail(detail(attempt=value))
