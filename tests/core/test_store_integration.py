"""The DynamoDB writer against DynamoDB Local (AWS's own engine): convergence and repairs."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from jobstatus.codec import from_item
from jobstatus.events import Status
from projector.fold import coalesce, project
from projector.store import JobStore, Outcome, WriteResult
from tests.core.factories import NOW, TTL_DAYS, at, event, history

pytestmark = pytest.mark.integration


def count_calls(client: Any) -> Counter[str]:
    """A counter of the API calls `client` makes from now on, by operation name."""
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    return calls


def items_of(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {i["jobId"]["S"]: from_item(i) for page in pages for i in page["Items"]}


def test_shuffled_duplicated_batches_converge_on_the_fold(ddb: Any, jobs_table: str) -> None:
    # Given 30 jobs' histories delivered shuffled, a third of them twice, in batches of 10
    rnd = random.Random(7)
    events = [e for j in range(30) for e in history(f"job-{j}", rnd)]
    delivered = events + rnd.sample(events, len(events) // 3)
    rnd.shuffle(delivered)
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    calls = count_calls(ddb)
    # When every batch is coalesced and written
    writes = 0
    for start in range(0, len(delivered), 10):
        for batch in coalesce((str(i), e) for i, e in enumerate(delivered[start : start + 10])):
            assert store.write(batch).requests == 1
            writes += 1
    # Then they took one UpdateItem per job per batch and nothing else, and the table holds
    # the fold's items
    assert calls == Counter({"UpdateItem": writes})
    assert items_of(ddb, jobs_table) == project(events, ttl_days=TTL_DAYS, now=NOW)


def test_the_second_write_happens_only_for_a_damaged_item(ddb: Any, jobs_table: str) -> None:
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    older = {j: event(Status.QUEUED, at(1), job_id=j) for j in ("job-a", "job-b")}
    newer = {j: event(Status.PROCESSING, at(2), job_id=j, progress=3) for j in ("job-a", "job-b")}
    for e in newer.values():
        store.write(coalesce([("m", e)])[0])
    # Damage one item: its userId and createdAt are gone.
    ddb.update_item(
        TableName=jobs_table, Key={"jobId": {"S": "job-a"}}, UpdateExpression="REMOVE userId, createdAt"
    )
    calls = count_calls(ddb)
    results = {j: store.write(coalesce([("m", e)])[0]) for j, e in older.items()}
    assert results == {"job-a": WriteResult(Outcome.FILLED, 2), "job-b": WriteResult(Outcome.STALE, 1)}
    assert calls == Counter({"UpdateItem": 3})
    everything = [*older.values(), *newer.values()]
    assert items_of(ddb, jobs_table) == project(everything, ttl_days=TTL_DAYS, now=NOW)


def test_winner_fields_the_winner_lacks_are_removed(ddb: Any, jobs_table: str) -> None:
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    error = {"code": "E", "message": "m", "retryable": True}
    failed = event(Status.FAILED, at(2), error=error, progress=80, result={"a": [1, 2]}, metrics={"x": 1.25})
    completed = event(Status.COMPLETED, at(3), output_url="https://cdn.example.com/v.mp4")
    assert store.write(coalesce([("1", failed)])[0]).outcome is Outcome.APPLIED
    assert store.write(coalesce([("2", completed)])[0]).outcome is Outcome.APPLIED
    (item,) = items_of(ddb, jobs_table).values()
    assert not {"error", "progress", "result", "metrics"} & set(item)
    assert item == project([failed, completed], ttl_days=TTL_DAYS, now=NOW)["job-1"]


def test_reserved_words_are_written_and_read_back(ddb: Any, jobs_table: str) -> None:
    # status, result, error, ttl, metrics ... are reserved in DynamoDB's expressions.
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    e = event(
        Status.FAILED,
        at(9),
        attempt=2,
        progress=100,
        started_at=at(1),
        error={"code": "E", "message": "m", "retryable": False},
        result={"status": "x", "nested": {"error": None, "ttl": [1.5, True]}},
        metrics={"falLatencyMs": 12.5, "queueWaitMs": 3},
    )
    assert store.write(coalesce([("1", e)])[0]) == WriteResult(Outcome.APPLIED, 1)
    assert items_of(ddb, jobs_table) == project([e], ttl_days=TTL_DAYS, now=NOW)
