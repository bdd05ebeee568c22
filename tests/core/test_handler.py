"""ProjectorFn's handler, unit: moto in-process for DynamoDB, fakes for failures and metrics."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobstatus.codec import from_item
from jobstatus.events import Status
from projector import handler as projector
from projector.fold import JobBatch, project, ttl_of
from projector.store import InvalidForStore, JobStore, WriteResult
from tests.core.factories import CREATED_AT, NOW, TTL_DAYS, at, event
from tests.core.sqs import batch, envelope, failures, record
from tests.examples import examples

pytestmark = pytest.mark.unit

TABLE = "Jobs-unit"  # the `client` fixture's table (tests/core/conftest.py)


class RecordingMetrics:
    """A metrics sink that keeps every data point."""

    def __init__(self) -> None:
        self.points: Counter[str] = Counter()

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        assert unit is MetricUnit.Count
        self.points[name] += int(value)


@dataclass
class FailingFor:
    """A writer that fails the jobs named in `errors` and passes the others to `inner`."""

    inner: JobStore
    errors: dict[str, Exception]

    def write(self, batch: JobBatch) -> WriteResult:
        if batch.job_id in self.errors:
            raise self.errors[batch.job_id]
        return self.inner.write(batch)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every JSON log line the projector's Powertools Logger writes during the test."""
    lines: list[dict[str, Any]] = []
    formatter = projector.logger.registered_formatter

    class Collect(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(log_record)))

    std = logging.getLogger(projector.logger.service)
    handler = Collect()
    std.addHandler(handler)
    try:
        yield lines
    finally:
        std.removeHandler(handler)


def deps(client: Any, **overrides: Any) -> projector.ProjectorDeps:
    values: dict[str, Any] = {
        "store": JobStore(client, TABLE, TTL_DAYS),
        "ttl_days": TTL_DAYS,
        "clock": lambda: NOW,
        "metrics": RecordingMetrics(),
        **overrides,
    }
    return projector.ProjectorDeps(**values)


def items(client: Any) -> dict[str, dict[str, Any]]:
    return {i["jobId"]["S"]: from_item(i) for i in client.scan(TableName=TABLE)["Items"]}


def test_a_batch_is_coalesced_per_job_and_written_once_per_job(client: Any) -> None:
    events = [
        event(Status.QUEUED, at(1), job_id="a"),
        event(Status.PROCESSING, at(2), job_id="a", progress=5, started_at=at(2)),
        event(Status.COMPLETED, at(3), job_id="b", output_url="https://x.com/b.mp4", result={"k": [1]}),
        event(Status.QUEUED, at(1), job_id="b"),
    ]
    d = deps(client)
    response = projector.handle(batch(*(record(e) for e in events)), None, d)
    assert response == {"batchItemFailures": []}
    assert items(client) == project(events, ttl_days=TTL_DAYS, now=NOW)
    assert d.metrics.points == Counter(  # type: ignore[union-attr]
        {"EventsApplied": 2, "EventsStale": 2, "DynamoDBWrites": 2, "EventsInvalid": 0, "EventsExpired": 0}
    )


def test_redelivered_events_are_stale(client: Any) -> None:
    e = event(Status.PROCESSING, at(2))
    d = deps(client)
    projector.handle(batch(record(e)), None, d)
    assert projector.handle(batch(record(e), record(e)), None, d) == {"batchItemFailures": []}
    assert d.metrics.points["EventsStale"] == 2 and d.metrics.points["EventsApplied"] == 1  # type: ignore[union-attr]


def test_replayed_events_without_account_are_applied(client: Any) -> None:
    # A replay carries `replay-name`; moto's delivery leaves out `account`.
    e = event(Status.COMPLETED, at(4), output_url="https://x.com/v.mp4")
    body = envelope(e.to_detail(), replay_name="rebuild-1", account=False)
    assert projector.handle(batch(record(body)), None, deps(client)) == {"batchItemFailures": []}
    assert items(client) == project([e], ttl_days=TTL_DAYS, now=NOW)


GOOD = event(Status.QUEUED, at(1), job_id="good")
BAD_BODIES: dict[str, tuple[Any, str, str | None]] = {
    "not JSON": ("{nope", "the body is not JSON", None),
    "JSON, not an event": ("[1, 2]", "not an EventBridge event", None),
    "no detail": ({"detail-type": "JobStatusChanged", "source": "jobs.submit"}, "detail", None),
    "wrong detail-type": (
        envelope({**GOOD.to_detail(), "jobId": "wrong-type"}, detail_type="VideoGenerationRequested"),
        "not a JobStatusChanged event of ours",
        "wrong-type",
    ),
    "wrong source": (
        envelope({**GOOD.to_detail(), "jobId": "wrong-source"}, source="somebody.else"),
        "somebody.else/JobStatusChanged",
        "wrong-source",
    ),
    "breaks the contract": (
        envelope({**GOOD.to_detail(), "jobId": "bad-status", "status": "DONE"}),
        "status: Input should be",
        "bad-status",
    ),
    "outputUrl while queued": (
        envelope({**GOOD.to_detail(), "jobId": "bad-url", "outputUrl": "https://x.com/v.mp4"}),
        "outputUrl is only allowed with status COMPLETED",
        "bad-url",
    ),
}


@pytest.mark.parametrize(("body", "reason", "job_id"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_an_invalid_record_fails_alone_with_a_log_line_saying_why(
    client: Any, logs: list[dict[str, Any]], body: Any, reason: str, job_id: str | None
) -> None:
    neighbours = [event(Status.QUEUED, at(1), job_id="n1"), event(Status.PROCESSING, at(2), job_id="n2")]
    d = deps(client)
    response = projector.handle(
        batch(record(neighbours[0]), record(body, "bad-message"), record(neighbours[1])), None, d
    )
    assert failures(response) == ["bad-message"]
    assert items(client) == project(neighbours, ttl_days=TTL_DAYS, now=NOW)
    (line,) = [line for line in logs if line.get("messageId") == "bad-message"]
    assert line["level"] == "WARNING"
    assert reason in line["reason"]
    assert line.get("jobId") == job_id
    assert d.metrics.points["EventsInvalid"] == 1  # type: ignore[union-attr]


def test_a_record_without_a_body_fails(client: Any, logs: list[dict[str, Any]]) -> None:
    response = projector.handle(batch({"messageId": "m1"}, "not a record"), None, deps(client))  # type: ignore[arg-type]
    assert failures(response) == ["m1", ""]  # an unidentifiable record fails the whole batch, as it must
    assert any(line.get("reason") == "the record has no body" for line in logs)


def test_an_event_that_is_not_an_sqs_batch_is_logged_and_answered_empty(
    client: Any, logs: list[dict[str, Any]]
) -> None:
    assert projector.handle({"hello": "world"}, None, deps(client)) == {"batchItemFailures": []}
    assert any(line["level"] == "ERROR" and "not an SQS batch" in line["message"] for line in logs)


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "UpdateItem"
        ),
        ClientError({"Error": {"Code": "InternalServerError", "Message": "oops"}}, "UpdateItem"),
        EndpointConnectionError(endpoint_url="http://nowhere"),
        RuntimeError("a bug"),
    ],
    ids=["throttled", "5xx", "connection", "bug"],
)
def test_a_failed_write_fails_all_and_only_that_jobs_records(
    client: Any, logs: list[dict[str, Any]], error: Exception
) -> None:
    hit = [event(Status.QUEUED, at(1), job_id="hit"), event(Status.PROCESSING, at(2), job_id="hit")]
    fine = event(Status.QUEUED, at(1), job_id="fine")
    d = deps(client, store=FailingFor(JobStore(client, TABLE, TTL_DAYS), {"hit": error}))
    response = projector.handle(
        batch(record(hit[0], "h1"), record(fine, "f1"), record(hit[1], "h2")), None, d
    )
    assert failures(response) == ["h1", "h2"]
    assert items(client) == project([fine], ttl_days=TTL_DAYS, now=NOW)
    (line,) = [line for line in logs if line.get("jobId") == "hit"]
    assert line["messageIds"] == ["h1", "h2"] and line["level"] in {"WARNING", "ERROR"}
    assert d.metrics.points["EventsInvalid"] == 0  # type: ignore[union-attr]


def test_an_unstorable_value_fails_its_record_alone_as_invalid(
    client: Any, logs: list[dict[str, Any]]
) -> None:
    # A raw PutEvents with a 42-digit number: the model refuses it; the job's other events apply.
    queued, processing = (
        event(Status.QUEUED, at(1), job_id="huge"),
        event(Status.PROCESSING, at(2), job_id="huge"),
    )
    bad = {**event(Status.COMPLETED, at(3), job_id="huge").to_detail(), "result": {"n": 10**41 + 1}}
    fine = event(Status.QUEUED, at(1), job_id="fine")
    d = deps(client)
    response = projector.handle(
        batch(record(queued), record(envelope(bad), "m-huge"), record(processing), record(fine)), None, d
    )
    assert failures(response) == ["m-huge"]
    (line,) = [line for line in logs if line.get("messageId") == "m-huge"]
    assert line["level"] == "WARNING" and "DynamoDB cannot store" in line["reason"]
    assert line["jobId"] == "huge"
    assert d.metrics.points["EventsInvalid"] == 1  # type: ignore[union-attr]
    assert items(client)["huge"]["status"] == "PROCESSING"
    assert set(items(client)) == {"huge", "fine"}


@dataclass
class RefusingEvents:
    """A writer on which DynamoDB refuses (ValidationException) any write holding one of `bad` events."""

    inner: JobStore
    bad: set[str]
    calls: list[tuple[str, ...]]

    def write(self, batch: JobBatch) -> WriteResult:
        self.calls.append(batch.record_ids)
        if {e.event_id for e in batch.events or (batch.winner,)} & self.bad:
            raise InvalidForStore("ValidationException: Item size has exceeded the maximum allowed size")
        return self.inner.write(batch)


def test_a_write_dynamodb_refuses_fails_only_the_events_it_refuses(
    client: Any, logs: list[dict[str, Any]]
) -> None:
    # Given a job's QUEUED, PROCESSING and a COMPLETED that DynamoDB refuses, in one batch
    queued = event(Status.QUEUED, at(1), job_id="j", request={"model": "m", "input": {"p": 1}})
    processing = event(Status.PROCESSING, at(2), job_id="j", progress=5)
    completed = event(Status.COMPLETED, at(3), job_id="j", output_url="https://x.com/v.mp4")
    writer = RefusingEvents(JobStore(client, TABLE, TTL_DAYS), {completed.event_id}, [])
    d = deps(client, store=writer)
    # When the batch is projected
    response = projector.handle(
        batch(record(completed, "m3"), record(queued, "m1"), record(processing, "m2")), None, d
    )
    # Then only the refused event failed, and the item is what the others make of it
    assert failures(response) == ["m3"]
    assert writer.calls == [("m3", "m1", "m2"), ("m1",), ("m2",), ("m3",)]
    assert items(client) == {
        "j": {
            "jobId": "j",
            "userId": "user-of-j",
            "createdAt": CREATED_AT,
            "ttl": 1795330800 + 30 * 86_400,  # 2026-11-22T07:00:00Z (date -u +%s) + 30 days
            "request": {"model": "m", "input": {"p": 1}},
            "status": "PROCESSING",
            "updatedAt": "2026-11-22T07:00:02.000Z",
            "version": f"0001#2#2026-11-22T07:00:02.000Z#{processing.event_id}",
            "lastEventId": processing.event_id,
            "attempt": 1,
            "progress": 5,
        }
    }
    (line,) = [line for line in logs if line.get("messageIds") == ["m3"]]
    assert line["level"] == "ERROR" and "Item size" in line["reason"] and line["jobId"] == "j"
    assert d.metrics.points["EventsInvalid"] == 1  # type: ignore[union-attr]


def test_invalid_for_store_from_the_writer_is_reported_the_same(client: Any) -> None:
    d = deps(
        client, store=FailingFor(JobStore(client, TABLE, TTL_DAYS), {"job-1": InvalidForStore("too big")})
    )
    assert failures(projector.handle(batch(record(event(), "m1")), None, d)) == ["m1"]


def test_events_of_expired_jobs_are_skipped_as_done(client: Any, logs: list[dict[str, Any]]) -> None:
    old = event(Status.COMPLETED, at(5), job_id="old", created_at="2020-01-01T00:00:00.000Z")
    young = event(Status.QUEUED, at(1), job_id="young")
    d = deps(client, clock=lambda: float(ttl_of(CREATED_AT, TTL_DAYS) - 1))
    response = projector.handle(batch(record(old, "m-old"), record(young, "m-young")), None, d)
    assert response == {"batchItemFailures": []}
    assert set(items(client)) == {"young"}
    assert d.metrics.points["EventsExpired"] == 1  # type: ignore[union-attr]
    assert any(line.get("jobId") == "old" and "expired" in line["message"] for line in logs)


def test_every_log_line_about_a_job_names_it(client: Any, logs: list[dict[str, Any]]) -> None:
    projector.logger.setLevel("DEBUG")
    try:
        projector.handle(batch(record(event(job_id="j1")), record(event(job_id="j2"))), None, deps(client))
    finally:
        projector.logger.setLevel("INFO")
    written = [line for line in logs if line["message"] == "job written"]
    assert sorted(line["jobId"] for line in written) == ["j1", "j2"]


def test_no_metrics_sink_is_fine(client: Any) -> None:
    assert projector.handle(batch(record(event())), None, deps(client, metrics=None)) == {
        "batchItemFailures": []
    }


# --- the Lambda entry point -------------------------------------------------------------------


@dataclass
class FakeContext:
    function_name: str = "jobs-test-projector"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:jobs-test-projector"
    aws_request_id: str = "req-1"


def test_lambda_handler_reads_settings_and_emits_emf_metrics(
    client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBS_TABLE_NAME", TABLE)
    monkeypatch.setenv("JOB_TTL_DAYS", "3650")  # the far future: nothing of 2026 has expired
    projector.dependencies.cache_clear()
    try:
        e = event(Status.PROCESSING, at(2))
        response = projector.lambda_handler(batch(record(e), record("oops", "m-bad")), FakeContext())  # type: ignore[arg-type]
        assert projector.dependencies().ttl_days == 3650
    finally:
        projector.dependencies.cache_clear()
    assert failures(response) == ["m-bad"]
    assert items(client)["job-1"]["status"] == "PROCESSING"
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (blob,) = emf
    assert {
        name: blob[name] for name in ("EventsApplied", "EventsInvalid", "DynamoDBWrites", "EventsExpired")
    } == {
        "EventsApplied": [1.0],
        "EventsInvalid": [1.0],
        "DynamoDBWrites": [1.0],
        "EventsExpired": [0.0],
    }
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "JobStatus"


# --- whatever a record holds, it fails alone ----------------------------------------------------


def _deep_body(levels: int) -> str:
    """An EventBridge event whose detail.result is `levels` objects deep (6.4 KB at 990)."""
    detail = json.dumps(event(Status.COMPLETED, at(3), job_id="deep").to_detail())
    deep = '{"a":' * levels + "1" + "}" * levels
    return json.dumps(envelope({})).replace(
        '"detail": {}', '"detail": ' + detail[:-1] + ', "result": ' + deep + "}"
    )


SQS_MAX_BYTES = 256 * 1024
HOSTILE_BODIES = {
    "990 levels in the detail (6.4 KB)": _deep_body(990),
    "100,000 levels in the detail": _deep_body(100_000)[:SQS_MAX_BYTES],
    "256 KiB of [": "[" * SQS_MAX_BYTES,
    '256 KiB of {"a":': '{"a":' * (SQS_MAX_BYTES // 5),
    "40 levels in the detail": _deep_body(40),
    "a lone surrogate": json.dumps(envelope({**GOOD.to_detail(), "userId": "\ud800"})),
    "NaN in result": json.dumps(envelope({**GOOD.to_detail(), "result": {"x": float("nan")}})),
    "1e400 in metrics": json.dumps(envelope(GOOD.to_detail())).replace(
        '"attempt": 1', '"attempt": 1, "metrics": {"x": 1e400}'
    ),
    "control bytes": bytes(range(256)).decode("latin-1"),
    "a huge integer": '{"detail-type": "JobStatusChanged", "source": "jobs.submit", "detail": {"attempt": '
    + "9" * 5000
    + "}}",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_hostile_record_fails_alone_with_a_reason(
    client: Any, logs: list[dict[str, Any]], body: str
) -> None:
    assert len(body.encode("utf-8", "surrogatepass")) <= SQS_MAX_BYTES
    neighbours = [event(Status.QUEUED, at(1), job_id="n1"), event(Status.PROCESSING, at(2), job_id="n2")]
    d = deps(client)
    response = projector.handle(
        batch(record(neighbours[0]), record(body, "bad"), record(neighbours[1])), None, d
    )
    assert failures(response) == ["bad"]
    assert items(client) == project(neighbours, ttl_days=TTL_DAYS, now=NOW)
    (line,) = [line for line in logs if line.get("messageId") == "bad"]
    assert line["level"] == "WARNING" and line["reason"]
    assert d.metrics.points["EventsInvalid"] == 1  # type: ignore[union-attr]


def test_a_990_deep_record_says_it_is_too_deep(client: Any, logs: list[dict[str, Any]]) -> None:
    body = _deep_body(990)
    assert 6_000 < len(body) < 7_000
    projector.handle(batch(record(body, "deep")), None, deps(client))
    (line,) = [line for line in logs if line.get("messageId") == "deep"]
    # json.loads gives up first or pydantic does, depending on how deep the stack already is.
    assert line["reason"] == "the body is JSON nested too deeply to read" or (
        line["reason"].startswith("the detail breaks the event contract: result.a.dict.a.dict")
        and line["reason"].endswith("...: Recursion error - cyclic reference detected")
    )


@settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
            ),
            max_leaves=20,
        ).map(
            lambda value: json.dumps(
                {"detail-type": "JobStatusChanged", "source": "jobs.submit", "detail": value}
            )
        ),
    )
)
def test_any_body_never_raises_and_fails_only_itself(client: Any, body: str) -> None:
    good = event(Status.QUEUED, at(1), job_id="good")
    response = projector.handle(batch(record(good, "g"), record(body, "x")), None, deps(client))
    assert failures(response) == ["x"]
    assert items(client)["good"]["status"] == "QUEUED"


# --- a job's owner never changes (DESIGN §3) ----------------------------------------------------


def test_an_event_of_another_owner_is_a_conflict_and_the_rest_apply(
    client: Any, logs: list[dict[str, Any]]
) -> None:
    # Given alice's job, projected
    alice = [event(Status.QUEUED, at(1), job_id="j"), event(Status.PROCESSING, at(2), job_id="j", progress=5)]
    d = deps(client)
    projector.handle(batch(record(alice[0])), None, d)
    # When mallory's newer COMPLETED arrives with alice's next event
    evil = event(Status.COMPLETED, at(9), job_id="j", output_url="https://evil.example.com/v.mp4").model_copy(
        update={"user_id": "mallory"}
    )
    response = projector.handle(batch(record(evil, "m-evil"), record(alice[1], "m-alice")), None, d)
    # Then mallory's fails, alice's applies, and the item holds nothing of mallory's
    assert failures(response) == ["m-evil"]
    assert items(client) == project(alice, ttl_days=TTL_DAYS, now=NOW)
    (line,) = [line for line in logs if line.get("messageIds") == ["m-evil"]]
    assert line["level"] == "ERROR" and line["jobId"] == "j"
    assert (line["userId"], line["storedUserId"]) == ("mallory", "user-of-j")
    assert (line["createdAt"], line["storedCreatedAt"]) == (CREATED_AT, CREATED_AT)
    assert d.metrics.points["EventsConflicting"] == 1  # type: ignore[union-attr]


def test_disagreeing_events_in_one_batch_are_judged_separately_by_smallest_version(client: Any) -> None:
    # No item yet: alice's group holds the smallest version, so alice owns the job.
    queued = event(Status.QUEUED, at(1), job_id="j")
    completed = event(Status.COMPLETED, at(3), job_id="j", output_url="https://cdn.example.com/v.mp4")
    other_day = event(Status.PROCESSING, at(2), job_id="j", progress=7).model_copy(
        update={"created_at": "2026-11-22T06:59:59.999Z"}
    )
    d = deps(client)
    response = projector.handle(
        batch(record(other_day, "m-other"), record(completed, "m-c"), record(queued, "m-q")), None, d
    )
    assert failures(response) == ["m-other"]
    assert items(client) == project([queued, completed], ttl_days=TTL_DAYS, now=NOW)
    assert d.metrics.points["EventsConflicting"] == 1  # type: ignore[union-attr]
    assert d.metrics.points["EventsApplied"] == 1  # type: ignore[union-attr]
