"""Contract tests of the `JobStatusChanged` model (DESIGN §2) and its checked-in JSON Schema.

Every example is judged by both the pydantic model and the JSON Schema, and both must agree;
the few rules JSON Schema cannot express are listed (and tested) separately.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from jobstatus import schema as schema_module
from jobstatus.events import (
    MAX_RESULT_BYTES,
    RANK,
    JobStatusChanged,
    Status,
    format_timestamp,
    is_valid_job_id,
    json_schema,
    parse_timestamp,
    put_events_entry_size,
    utc_now,
    version_of,
)

pytestmark = pytest.mark.unit

EVENT_ID = "0b6f7a8e-3c1d-4e2f-9a5b-6c7d8e9f0a1b"
T0 = "2026-11-22T07:20:31.123Z"


def detail(**changes: Any) -> dict[str, Any]:
    """A valid detail with `changes` applied; a value of `...` removes the key."""
    base: dict[str, Any] = {
        "schemaVersion": 1,
        "eventId": EVENT_ID,
        "jobId": "job-1",
        "userId": "user-1",
        "status": "QUEUED",
        "occurredAt": T0,
        "createdAt": T0,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def _nested(levels: int) -> dict[str, Any]:
    """An object holding `levels` objects in all, one inside the other."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    checked_in = json.loads(schema_module.SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(checked_in)
    return Draft202012Validator(checked_in)


def model_accepts(value: dict[str, Any]) -> bool:
    try:
        JobStatusChanged.from_detail(value)
    except ValidationError:
        return False
    return True


VALID = {
    "minimal": detail(),
    "no schemaVersion (defaults to 1)": detail(schemaVersion=...),
    "integral float attempt": detail(attempt=2.0),
    "uppercase eventId": detail(eventId=EVENT_ID.upper()),
    "jobId of one char": detail(jobId="a"),
    "jobId of 128 chars": detail(jobId="a" + "b_-" * 42 + "c"),
    "processing with progress and startedAt": detail(status="PROCESSING", progress=0, startedAt=T0),
    "progress 100": detail(status="PROCESSING", progress=100),
    "attempt 9999": detail(attempt=9999),
    "completed with outputUrl": detail(status="COMPLETED", outputUrl="https://cdn.example.com/v/1.mp4?x=1"),
    "failed with error": detail(status="FAILED", error={"code": "E", "message": "", "retryable": False}),
    "result at the limit": detail(status="COMPLETED", result={"k": "x" * (MAX_RESULT_BYTES - 8)}),
    "nested result": detail(result={"a": [1, 2.5, None, True, {"b": "c"}]}),
    "metrics": detail(metrics={"falLatencyMs": 1200, "queueWaitMs": 3.5}),
    "explicit nulls": detail(progress=None, outputUrl=None, error=None, result=None, metrics=None),
    "leap day": detail(occurredAt="2028-02-29T23:59:59.999Z"),
    "result numbers at DynamoDB's limits": detail(
        result={"big": 1e125, "small": 1e-130, "neg": -1e125, "zero": 0.0, "digits": 10**38 - 1}
    ),
    "result 32 levels": detail(result=_nested(31)),
    "metrics at the limit": detail(metrics={"x": 1e125, "y": 10**38 - 1}),
    "request": detail(request={"model": "fal-ai/kling-video", "input": {"prompt": "a cat", "n": 2}}),
    "request.input 32 levels": detail(request={"model": "fal-ai/x", "input": _nested(30)}),
}

INVALID = {
    "extra key": detail(extra=1),
    "snake_case key": detail(jobId=..., job_id="job-1"),
    "schemaVersion 2": detail(schemaVersion=2),
    "schemaVersion true": detail(schemaVersion=True),
    "schemaVersion string": detail(schemaVersion="1"),
    "missing eventId": detail(eventId=...),
    "eventId not a UUID": detail(eventId="not-a-uuid"),
    "eventId without hyphens": detail(eventId=EVENT_ID.replace("-", "")),
    "eventId in braces": detail(eventId="{" + EVENT_ID + "}"),
    "missing jobId": detail(jobId=...),
    "empty jobId": detail(jobId=""),
    "jobId starting with -": detail(jobId="-job"),
    "jobId with a slash": detail(jobId="a/b"),
    "jobId with a dot": detail(jobId="a.b"),
    "jobId of 129 chars": detail(jobId="a" * 129),
    "jobId not a string": detail(jobId=12),
    "empty userId": detail(userId=""),
    "userId too long": detail(userId="u" * 257),
    "missing userId": detail(userId=...),
    "lowercase status": detail(status="queued"),
    "unknown status": detail(status="CANCELLED"),
    "missing status": detail(status=...),
    "missing occurredAt": detail(occurredAt=...),
    "missing createdAt": detail(createdAt=...),
    "seconds, no millis": detail(occurredAt="2026-11-22T07:20:31Z"),
    "microseconds": detail(occurredAt="2026-11-22T07:20:31.123456Z"),
    "offset, not Z": detail(occurredAt="2026-11-22T07:20:31.123+00:00"),
    "lowercase z": detail(occurredAt="2026-11-22T07:20:31.123z"),
    "space separator": detail(createdAt="2026-11-22 07:20:31.123Z"),
    "month 13": detail(createdAt="2026-13-22T07:20:31.123Z"),
    "hour 24": detail(createdAt="2026-11-22T24:00:00.000Z"),
    "second 60": detail(occurredAt="2026-11-22T07:20:60.000Z"),
    "full-width digits": detail(occurredAt="\uff12\uff10\uff12\uff16-11-22T07:20:31.123Z"),
    "startedAt malformed": detail(status="PROCESSING", startedAt="yesterday"),
    "attempt 0": detail(attempt=0),
    "attempt 10000": detail(attempt=10000),
    "attempt string": detail(attempt="2"),
    "attempt bool": detail(attempt=True),
    "attempt fraction": detail(attempt=1.5),
    "progress -1": detail(status="PROCESSING", progress=-1),
    "progress 101": detail(status="PROCESSING", progress=101),
    "progress string": detail(status="PROCESSING", progress="5"),
    "progress bool": detail(status="PROCESSING", progress=True),
    "outputUrl http": detail(status="COMPLETED", outputUrl="http://cdn.example.com/v.mp4"),
    "outputUrl bare scheme": detail(status="COMPLETED", outputUrl="https://"),
    "outputUrl with a space": detail(status="COMPLETED", outputUrl="https://cdn.example.com/a b.mp4"),
    "outputUrl too long": detail(status="COMPLETED", outputUrl="https://x.com/" + "a" * 2040),
    "outputUrl with PROCESSING": detail(status="PROCESSING", outputUrl="https://cdn.example.com/v.mp4"),
    "outputUrl with FAILED": detail(status="FAILED", outputUrl="https://cdn.example.com/v.mp4"),
    "error with COMPLETED": detail(
        status="COMPLETED", error={"code": "E", "message": "m", "retryable": True}
    ),
    "error with QUEUED": detail(error={"code": "E", "message": "m", "retryable": True}),
    "error without retryable": detail(status="FAILED", error={"code": "E", "message": "m"}),
    "error retryable string": detail(
        status="FAILED", error={"code": "E", "message": "m", "retryable": "yes"}
    ),
    "error extra key": detail(
        status="FAILED", error={"code": "E", "message": "m", "retryable": True, "x": 1}
    ),
    "error empty code": detail(status="FAILED", error={"code": "", "message": "m", "retryable": True}),
    "error message too long": detail(
        status="FAILED", error={"code": "E", "message": "m" * 4097, "retryable": True}
    ),
    "result not an object": detail(result=[1, 2]),
    "metrics string value": detail(metrics={"a": "1.5"}),
    "metrics bool value": detail(metrics={"a": True}),
    "metrics nested": detail(metrics={"a": {"b": 1}}),
    "metrics empty name": detail(metrics={"": 1}),
    "metrics too many": detail(metrics={f"m{i}": i for i in range(65)}),
    "request without input": detail(request={"model": "fal-ai/x"}),
    "request empty model": detail(request={"model": "", "input": {}}),
    "request input not an object": detail(request={"model": "fal-ai/x", "input": [1]}),
    "request extra key": detail(request={"model": "fal-ai/x", "input": {}, "webhook": "x"}),
    "not an object": [detail()],
}

# Rules JSON Schema cannot state; the model alone enforces them (producers must still obey).
MODEL_ONLY = {
    "February 30": detail(createdAt="2026-02-30T00:00:00.000Z"),
    "year 0": detail(createdAt="0000-01-01T00:00:00.000Z"),
    "result over 16 KiB": detail(result={"k": "x" * MAX_RESULT_BYTES}),
    "result over 16 KiB in UTF-8": detail(result={"k": "é" * (MAX_RESULT_BYTES // 2)}),
    # Python's `jsonschema` matches `pattern` with `re.search`, whose `$` also matches before a
    # final newline (ECMA-262's does not); the model's Rust regex refuses it.
    "jobId with a trailing newline": detail(jobId="job-1\n"),
    # DESIGN §2 "Storable values": what DynamoDB cannot store.
    "result 1e200": detail(result={"n": 1e200}),
    "result -1e200": detail(result={"n": -1e200}),
    "result 1.0000001e125": detail(result={"n": 1.0000001e125}),
    "result 1e-131": detail(result={"n": 1e-131}),
    "result 42-digit integer": detail(result={"n": 10**41 + 1}),
    "result 39 significant digits": detail(result={"n": 10**38 + 1}),
    "result empty key": detail(result={"": 1}),
    "result empty key deep": detail(result={"a": [{"b": {"": "x"}}]}),
    "result 33 levels": detail(result=_nested(32)),
    "metrics 1e200": detail(metrics={"x": 1e200}),
    "metrics 42-digit integer": detail(metrics={"x": 10**41 + 1}),
    "request.input 1e200": detail(request={"model": "fal-ai/x", "input": {"n": 1e200}}),
    "request.input empty key": detail(request={"model": "fal-ai/x", "input": {"": 1}}),
    "request.input 33 levels": detail(request={"model": "fal-ai/x", "input": _nested(31)}),
}


@pytest.mark.parametrize("value", VALID.values(), ids=VALID.keys())
def test_valid_examples_pass_model_and_schema(value: dict[str, Any], validator: Draft202012Validator) -> None:
    assert model_accepts(value)
    assert validator.is_valid(value)


@pytest.mark.parametrize("value", INVALID.values(), ids=INVALID.keys())
def test_invalid_examples_fail_model_and_schema(value: Any, validator: Draft202012Validator) -> None:
    assert not model_accepts(value)
    assert not validator.is_valid(value)


@pytest.mark.parametrize("value", MODEL_ONLY.values(), ids=MODEL_ONLY.keys())
def test_rules_only_the_model_can_check(value: dict[str, Any], validator: Draft202012Validator) -> None:
    assert not model_accepts(value)
    assert validator.is_valid(value)


def test_an_unstorable_value_is_refused_saying_where_and_why() -> None:
    with pytest.raises(ValidationError, match=r"result holds a value DynamoDB cannot store: a\.b: 1e\+200"):
        JobStatusChanged.from_detail(detail(result={"a": {"b": 1e200}}))
    with pytest.raises(ValidationError, match=r"request\.input holds a value DynamoDB cannot store"):
        JobStatusChanged.from_detail(detail(request={"model": "m", "input": {"": 1}}))


def test_input_nesting_is_counted_from_the_event() -> None:
    # The event is level 1, request level 2, input level 3: input may hold 30 more levels.
    ok = detail(request={"model": "m", "input": _nested(30)})
    assert JobStatusChanged.from_detail(ok).request is not None
    with pytest.raises(ValidationError, match="nested deeper than 32 levels"):
        JobStatusChanged.from_detail(detail(request={"model": "m", "input": _nested(31)}))


def test_a_100000_deep_result_is_refused_without_recursion_error() -> None:
    with pytest.raises(ValidationError):
        JobStatusChanged.from_detail(detail(result=_nested(100_000)))


def test_result_with_non_finite_number_is_refused() -> None:
    with pytest.raises(ValidationError, match="finite"):
        JobStatusChanged.from_detail(detail(result={"x": float("nan")}))


def test_metrics_refuse_non_finite_numbers() -> None:
    with pytest.raises(ValidationError):
        JobStatusChanged.from_detail(detail(metrics={"x": float("inf")}))


def test_wire_parsing_refuses_python_field_names_but_code_may_use_them() -> None:
    wire = detail(jobId=..., job_id="job-1")
    with pytest.raises(ValidationError, match="job_id"):
        JobStatusChanged.from_detail(wire)
    built = JobStatusChanged(
        event_id=EVENT_ID, job_id="job-1", user_id="u", status=Status.QUEUED, occurred_at=T0, created_at=T0
    )
    assert built.job_id == "job-1"


def test_to_detail_round_trips_and_leaves_out_unset_optionals() -> None:
    value = detail(status="COMPLETED", outputUrl="https://x.com/v.mp4", metrics={"a": 1.5}, progress=None)
    event = JobStatusChanged.from_detail(value)
    out = event.to_detail()
    assert "progress" not in out and "error" not in out
    assert out == {**{k: v for k, v in value.items() if v is not None}, "attempt": 1}
    assert JobStatusChanged.from_detail(out) == event


def test_event_id_is_kept_in_canonical_lowercase() -> None:
    event = JobStatusChanged.from_detail(detail(eventId=EVENT_ID.upper()))
    assert event.event_id == EVENT_ID
    assert event.to_detail()["eventId"] == EVENT_ID


def test_integral_float_attempt_becomes_int() -> None:
    event = JobStatusChanged.from_detail(detail(attempt=3.0))
    assert event.attempt == 3 and isinstance(event.attempt, int)


def test_error_message_says_which_rule_breaks() -> None:
    with pytest.raises(ValidationError, match="outputUrl is only allowed with status COMPLETED"):
        JobStatusChanged.from_detail(detail(outputUrl="https://x.com/v.mp4"))
    with pytest.raises(ValidationError, match="error is only allowed with status FAILED"):
        JobStatusChanged.from_detail(detail(error={"code": "E", "message": "m", "retryable": True}))
    with pytest.raises(ValidationError, match="at most 16384 allowed"):
        JobStatusChanged.from_detail(detail(result={"k": "x" * MAX_RESULT_BYTES}))


def test_events_are_immutable() -> None:
    event = JobStatusChanged.from_detail(detail())
    with pytest.raises(ValidationError):
        event.status = Status.FAILED  # type: ignore[misc]


# --- version order ------------------------------------------------------------------------------


def test_version_format() -> None:
    event = JobStatusChanged.from_detail(detail(status="PROCESSING", attempt=2))
    assert version_of(event) == f"0002#2#{T0}#{EVENT_ID}"
    assert event.version == version_of(event)


def test_ranks() -> None:
    assert [RANK[s] for s in Status] == [1, 2, 3, 3]


def test_version_orders_attempt_then_rank_then_time_then_event_id() -> None:
    def v(**changes: Any) -> str:
        return version_of(JobStatusChanged.from_detail(detail(**changes)))

    assert v(attempt=2, status="QUEUED") > v(attempt=1, status="FAILED")
    assert v(attempt=10) > v(attempt=9)  # padded: not "10" < "9"
    assert v(status="PROCESSING", occurredAt="2026-01-01T00:00:00.000Z") > v(status="QUEUED")
    assert v(status="COMPLETED") > v(status="PROCESSING", occurredAt="2027-01-01T00:00:00.000Z")
    assert v(occurredAt="2026-11-22T07:20:31.124Z") > v()
    assert v(eventId="ffffffff-0000-4000-8000-000000000000") > v(eventId=EVENT_ID)


# --- timestamps, ids, sizes ---------------------------------------------------------------------


def test_format_timestamp_truncates_to_millis_in_utc() -> None:
    moment = datetime(2026, 11, 22, 9, 20, 31, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-11-22T07:20:31.123Z"
    assert parse_timestamp("2026-11-22T07:20:31.123Z") == datetime(
        2026, 11, 22, 7, 20, 31, 123000, tzinfo=UTC
    )


def test_format_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


def test_utc_now_is_a_contract_timestamp() -> None:
    assert JobStatusChanged.from_detail(detail(occurredAt=utc_now())).occurred_at


@pytest.mark.parametrize(
    ("value", "valid"),
    [("job-1", True), ("A_b-9", True), ("", False), ("_a", False), ("a" * 128, True), ("a" * 129, False)],
)
def test_is_valid_job_id(value: str, valid: bool) -> None:
    assert is_valid_job_id(value) is valid


def test_put_events_entry_size_counts_as_aws_documents() -> None:
    entry = {
        "Source": "jobs.submit",
        "DetailType": "JobStatusChanged",
        "Detail": '{"a":"é"}',
        "Resources": ["r"],
    }
    assert put_events_entry_size(entry) == len("jobs.submit") + len("JobStatusChanged") + 10 + 1
    assert put_events_entry_size({**entry, "Time": datetime.now(UTC)}) == put_events_entry_size(entry) + 14
    assert put_events_entry_size({}) == 0


# --- the checked-in schema ------------------------------------------------------------------------


def test_checked_in_schema_is_current() -> None:
    assert schema_module.is_current(), "stale: run `python -m jobstatus.schema` and commit the file"
    assert json.loads(schema_module.SCHEMA_PATH.read_text(encoding="utf-8")) == json_schema()


def test_schema_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "schema.json"
    assert schema_module.main(["--check", "--path", str(target)]) == 1
    assert "stale" in capsys.readouterr().err
    assert schema_module.main(["--path", str(target)]) == 0
    assert schema_module.main(["--check", "--path", str(target)]) == 0
    target.write_text(target.read_text() + " ")
    assert schema_module.main(["--check", "--path", str(target)]) == 1


def test_schema_module_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobstatus.schema", "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_uuid4_is_a_valid_event_id() -> None:
    assert model_accepts(detail(eventId=str(uuid.uuid4())))
