"""ProjectorFn's writes in flight together: the same guarantees as one after another.

Fakes with barriers and interval logs show that different jobs' writes overlap, that a job's
shares (one per owner) never do and go smallest version first, and that what a batch did (the
failed records, the metrics, the log lines) is the same with a pool as without, and is logged
from the handler's thread. Then the whole handler with a pool, on moto, equals the pure fold.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidationDecorator
from pydantic import ValidationError

from jobstatus.codec import from_item
from jobstatus.events import Status
from projector import handler as projector
from projector.fold import JobBatch, project
from projector.store import InvalidForStore, JobStore, Outcome, WriteResult, write_all
from tests.core.factories import CREATED_AT, NOW, TTL_DAYS, at, event, history
from tests.core.sqs import batch, failures, record
from tests.core.test_handler import RecordingMetrics
from tests.fresh import fresh_env, imported_of, run_fresh

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


class Rendezvous:
    """A writer whose writes all wait for each other: it succeeds only if `parties` are in flight at once."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=5)

    def write(self, job: JobBatch) -> WriteResult:
        self.barrier.wait()  # BrokenBarrierError (a failed write) unless the others are in flight
        return WriteResult(Outcome.APPLIED, 1)


def test_different_jobs_are_in_flight_together(pool: ThreadPoolExecutor) -> None:
    # Given four jobs, and a writer that answers only when all four writes are waiting
    records = [record(event(Status.QUEUED, at(1), job_id=f"job-{n}"), f"m-{n}") for n in range(4)]
    metrics = RecordingMetrics()
    deps = projector.ProjectorDeps(
        store=Rendezvous(4), ttl_days=TTL_DAYS, clock=lambda: NOW, metrics=metrics, pool=pool
    )
    # When the batch is projected
    response = projector.handle(batch(*records), None, deps)
    # Then every write met the others (one after another, the first would have timed out)
    assert failures(response) == []
    assert metrics.points["EventsApplied"] == 4


class Intervals:
    """A writer that notes when each write starts and ends, and which share it was."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[tuple[str, str, str, float, float]] = []

    def write(self, job: JobBatch) -> WriteResult:
        started = time.perf_counter()
        time.sleep(0.05)
        with self.lock:
            ended = time.perf_counter()
            self.spans.append((job.job_id, job.winner.created_at, job.winner.event_id, started, ended))
        return WriteResult(Outcome.APPLIED, 1)


def test_a_jobs_shares_are_never_in_flight_together_and_go_smallest_version_first(
    pool: ThreadPoolExecutor,
) -> None:
    # Given job j with three owners' events (versions: at(1) another createdAt, at(2), at(3) another user)
    # and other jobs beside it
    mine = event(Status.QUEUED, at(2), job_id="j")
    later = "2026-11-22T08:00:00.000Z"
    other_day = event(Status.QUEUED, at(1), job_id="j").model_copy(update={"created_at": later})
    third = event(Status.QUEUED, at(3), job_id="j").model_copy(update={"user_id": "mallory"})
    others = [event(Status.QUEUED, at(1), job_id=f"other-{n}") for n in range(6)]
    records = [record(e) for e in (third, *others[:3], mine, *others[3:], other_day)]
    store = Intervals()
    deps = projector.ProjectorDeps(store=store, ttl_days=TTL_DAYS, clock=lambda: NOW, pool=pool)
    # When the batch is projected
    projector.handle(batch(*records), None, deps)
    # Then j's three writes went one after the other, in the order of their smallest versions
    spans = sorted((s for s in store.spans if s[0] == "j"), key=lambda s: s[3])
    assert [s[2] for s in spans] == [other_day.event_id, mine.event_id, third.event_id]
    assert all(before[4] <= after[3] for before, after in itertools.pairwise(spans))
    # And the other jobs' writes were in flight together with j's first
    first_wave = [s for s in store.spans if s[0] != "j"] + spans[:1]
    assert max(s[3] for s in first_wave) < min(s[4] for s in first_wave)


class Mixed:
    """A writer that fails some jobs in each way a write can fail, and applies the others."""

    ERRORS = {
        "throttled": ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "UpdateItem"),
        "bug": RuntimeError("a bug"),
        "refused": InvalidForStore("too deep"),
    }

    def write(self, job: JobBatch) -> WriteResult:
        time.sleep(random.random() / 200)  # finish in another order than submitted
        if job.job_id in self.ERRORS:
            raise self.ERRORS[job.job_id]
        if job.job_id == "half-refused" and job.winner.status == Status.PROCESSING:
            raise InvalidForStore("refused: the PROCESSING one")
        if job.job_id == "stale":
            return WriteResult(Outcome.STALE, 1)
        if job.job_id == "conflict":
            return WriteResult(Outcome.CONFLICT, 1, "someone", CREATED_AT)
        return WriteResult(Outcome.APPLIED, 1)


Outcomes = tuple[list[str], dict[str, int], list[tuple[str | None, Any]]]


def _project_with(pool: ThreadPoolExecutor | None) -> Outcomes:
    names = ["ok-1", "throttled", "bug", "refused", "half-refused", "stale", "conflict", "ok-2"]
    records = []
    for name in names:
        records.append(record(event(Status.QUEUED, at(1), job_id=name), f"{name}-q"))
        records.append(record(event(Status.PROCESSING, at(2), job_id=name), f"{name}-p"))
    lines: list[tuple[str | None, Any]] = []

    class Collect(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            lines.append((log_record.threadName, log_record.getMessage()))

    std = logging.getLogger(projector.logger.service)
    collect = Collect(level=logging.DEBUG)
    std.addHandler(collect)
    level = std.level
    std.setLevel(logging.DEBUG)
    try:
        metrics = RecordingMetrics()
        deps = projector.ProjectorDeps(
            store=Mixed(), ttl_days=TTL_DAYS, clock=lambda: NOW, metrics=metrics, pool=pool
        )
        response = projector.handle(batch(*records), None, deps)
    finally:
        std.removeHandler(collect)
        std.setLevel(level)
    return failures(response), dict(metrics.points), lines


def test_a_pool_changes_nothing_in_what_a_batch_reports(pool: ThreadPoolExecutor) -> None:
    # Given the same batch, projected one write after another and with its writes in flight together
    sequential = _project_with(None)
    concurrent = _project_with(pool)
    # Then the failed records, the metrics and the log lines (in order) are the same
    assert concurrent == sequential
    failed, points, lines = concurrent
    assert failed == [
        "throttled-q",
        "throttled-p",
        "bug-q",
        "bug-p",
        "refused-q",
        "refused-p",
        "half-refused-p",
        "conflict-q",
        "conflict-p",
    ]
    assert points == {
        "EventsApplied": 3,  # ok-1, ok-2, and half-refused's QUEUED alone
        "EventsStale": 4,  # ok-1's and ok-2's QUEUED, both of stale's
        "EventsInvalid": 3,  # refused's two, half-refused's PROCESSING
        "EventsConflicting": 2,
        "EventsExpired": 0,
        "DynamoDBWrites": 5,  # ok-1, half-refused's QUEUED, stale, conflict, ok-2
    }
    # And every line was logged by the handler's thread, none by a writer's
    assert {thread for thread, _ in lines} == {threading.current_thread().name}


def test_write_all_gives_the_attempts_in_the_order_of_the_shares(pool: ThreadPoolExecutor) -> None:
    shares = [JobBatch(f"job-{n}", event(job_id=f"job-{n}"), (str(n),)) for n in range(20)]
    attempts = write_all(Mixed(), shares, pool)
    assert [a.batch.job_id for a in attempts] == [f"job-{n}" for n in range(20)]


def test_the_handler_with_a_pool_on_moto_equals_the_fold(client: Any, pool: ThreadPoolExecutor) -> None:
    # Given 30 jobs' histories, duplicated and shuffled into batches of 25
    rnd = random.Random(7)
    events = [e for n in range(30) for e in history(f"job-{n:02d}", rnd)]
    delivered = events + rnd.sample(events, 40)
    rnd.shuffle(delivered)
    deps = projector.ProjectorDeps(
        store=JobStore(client, "Jobs-unit", TTL_DAYS), ttl_days=TTL_DAYS, clock=lambda: NOW, pool=pool
    )
    # When each batch is projected with its writes in flight together
    for start in range(0, len(delivered), 25):
        response = projector.handle(batch(*(record(e) for e in delivered[start : start + 25])), None, deps)
        assert failures(response) == []
    # Then the table holds the pure fold's items
    stored = {i["jobId"]["S"]: from_item(i) for i in client.scan(TableName="Jobs-unit")["Items"]}
    assert stored == project(events, ttl_days=TTL_DAYS, now=NOW)


def test_lambdas_dependencies_keep_16_writes_in_flight_on_as_many_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBS_TABLE_NAME", "Jobs-unit")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    projector.dependencies.cache_clear()
    try:
        deps = projector.dependencies()
        client = deps.store._client  # type: ignore[attr-defined]
        assert isinstance(deps.pool, ThreadPoolExecutor)
        assert deps.pool._max_workers == 16
        assert client.meta.config.max_pool_connections >= 16
        # botocore validates a request only through this decorator of its serializer
        assert not isinstance(client._serializer, ParamValidationDecorator)
    finally:
        projector.dependencies.cache_clear()


def test_logged_values_are_json(pool: ThreadPoolExecutor) -> None:
    # The handler's summary line is still one JSON object with the counts
    out: list[str] = []

    class Collect(logging.Handler):
        def emit(self, log_record: logging.LogRecord) -> None:
            out.append(projector.logger.registered_formatter.format(log_record))

    std = logging.getLogger(projector.logger.service)
    collect = Collect()
    std.addHandler(collect)
    try:
        deps = projector.ProjectorDeps(store=Mixed(), ttl_days=TTL_DAYS, clock=lambda: NOW, pool=pool)
        projector.handle(batch(record(event(job_id="ok-1"), "m")), None, deps)
    finally:
        std.removeHandler(collect)
    (summary,) = [json.loads(line) for line in out if "batch projected" in line]
    assert (summary["applied"], summary["dynamodbWrites"], summary["failed"]) == (1, 1, 0)


@pytest.mark.parametrize("ttl", ["0", "3651", "abc", "1.5", ""])
def test_a_bad_ttl_setting_is_refused_with_its_name(ttl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_TTL_DAYS", ttl)
    projector.dependencies.cache_clear()
    with pytest.raises(ValidationError, match="job_ttl_days"):
        projector.dependencies()
    projector.dependencies.cache_clear()


HEAVY = ("boto3", "s3transfer", "pydantic_settings", "dotenv", "aws_xray_sdk", "jobstatus.codec")


def test_projector_cold_start_imports_none_of_the_costly_packages() -> None:
    # Given a fresh interpreter, when it does what Lambda's init does
    code = (
        "import json, sys; import projector.handler as h; h.dependencies(); "
        f"print(json.dumps({imported_of(HEAVY)}))"
    )
    output = run_fresh(code, fresh_env(JOBS_TABLE_NAME="Jobs-prod"))
    # Then none of them was imported
    assert json.loads(output.splitlines()[-1]) == []
