"""The fold, table-driven: histories and the LITERAL items they must give (DESIGN §2, §3).

Every field of the item appears in some expected value below, written out by hand: a field the
fold drops, keeps too long or takes from the wrong event makes a row fail. The same rows run
through `coalesce` and `JobStore` on moto, so the writer is held to the same literals.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobstatus.codec import from_item
from jobstatus.events import JobStatusChanged
from projector.fold import (
    FILL_IN_FIELDS,
    OWNER_FIELDS,
    WINNER_FIELDS,
    apply,
    coalesce,
    project,
    project_reporting,
)
from projector.store import JobStore

pytestmark = pytest.mark.unit

CREATED = "2026-11-22T07:00:00.000Z"
CREATED_EPOCH = 1_795_330_800  # `date -u -d 2026-11-22T07:00:00Z +%s`
TTL_30 = CREATED_EPOCH + 30 * 86_400
NOW = CREATED_EPOCH + 3600.0
TABLE = "Jobs-unit"
ERROR = {"code": "FAL_ERROR", "message": "boom", "retryable": True}
REQUEST = {"model": "fal-ai/kling-video", "input": {"prompt": "a cat", "seconds": 5}}


def eid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def ev(n: int, status: str, second: int, *, attempt: int = 1, **fields: Any) -> JobStatusChanged:
    """Event number `n` of job-1 (eventId ends in n), at 07:00:0{second}."""
    owner = {"user_id": "alice", "created_at": CREATED}
    owner.update({k: fields.pop(k) for k in ("user_id", "created_at") if k in fields})
    return JobStatusChanged(
        event_id=eid(n),
        job_id="job-1",
        status=status,
        occurred_at=f"2026-11-22T07:00:{second:02d}.000Z",
        attempt=attempt,
        **owner,
        **fields,
    )


def base(n: int, status: str, second: int, *, attempt: int = 1, rank: int) -> dict[str, Any]:
    """The literal item of a winner without optional fields."""
    at = f"2026-11-22T07:00:{second:02d}.000Z"
    return {
        "jobId": "job-1",
        "userId": "alice",
        "createdAt": CREATED,
        "ttl": TTL_30,
        "status": status,
        "updatedAt": at,
        "version": f"{attempt:04d}#{rank}#{at}#{eid(n)}",
        "lastEventId": eid(n),
        "attempt": attempt,
    }


ROWS: dict[str, tuple[list[JobStatusChanged], dict[str, Any] | None]] = {
    "one QUEUED": ([ev(1, "QUEUED", 1)], base(1, "QUEUED", 1, rank=1)),
    "QUEUED with request": (
        [ev(1, "QUEUED", 1, request=REQUEST)],
        {**base(1, "QUEUED", 1, rank=1), "request": REQUEST},
    ),
    "PROCESSING with progress, startedAt, metrics": (
        [
            ev(
                2,
                "PROCESSING",
                2,
                progress=40,
                started_at="2026-11-22T07:00:02.000Z",
                metrics={"queueWaitMs": 7},
            )
        ],
        {
            **base(2, "PROCESSING", 2, rank=2),
            "progress": 40,
            "startedAt": "2026-11-22T07:00:02.000Z",
            "metrics": {"queueWaitMs": 7},
        },
    ),
    "COMPLETED with every winner field it may carry": (
        [
            ev(1, "QUEUED", 1),
            ev(
                3,
                "COMPLETED",
                5,
                progress=100,
                started_at="2026-11-22T07:00:02.000Z",
                output_url="https://cdn.example.com/v.mp4",
                result={"seed": 42, "video": {"w": 1280}},
                metrics={"falLatencyMs": 1234.5},
            ),
        ],
        {
            **base(3, "COMPLETED", 5, rank=3),
            "progress": 100,
            "startedAt": "2026-11-22T07:00:02.000Z",
            "outputUrl": "https://cdn.example.com/v.mp4",
            "result": {"seed": 42, "video": {"w": 1280}},
            "metrics": {"falLatencyMs": 1234.5},
        },
    ),
    "FAILED with error": (
        [ev(4, "FAILED", 4, error=ERROR)],
        {**base(4, "FAILED", 4, rank=3), "error": ERROR},
    ),
    "COMPLETED winning over FAILED removes error": (
        [
            ev(4, "FAILED", 4, error=ERROR, progress=50),
            ev(5, "COMPLETED", 6, output_url="https://x.com/v.mp4"),
        ],
        {**base(5, "COMPLETED", 6, rank=3), "outputUrl": "https://x.com/v.mp4"},
    ),
    "a late QUEUED loses to PROCESSING (status never goes back)": (
        [ev(2, "PROCESSING", 2, progress=10), ev(1, "QUEUED", 9)],
        {**base(2, "PROCESSING", 2, rank=2), "progress": 10},
    ),
    "a new attempt removes every winner field it lacks": (
        [
            ev(
                6,
                "FAILED",
                8,
                error=ERROR,
                progress=90,
                started_at="2026-11-22T07:00:03.000Z",
                result={"partial": True},
                metrics={"falLatencyMs": 9},
            ),
            ev(7, "QUEUED", 1, attempt=2),
        ],
        base(7, "QUEUED", 1, attempt=2, rank=1),
    ),
    "request from the first event carrying it, never changed": (
        [
            ev(1, "QUEUED", 1, request=REQUEST),
            ev(2, "PROCESSING", 2, request={"model": "fal-ai/other", "input": {}}),
        ],
        {**base(2, "PROCESSING", 2, rank=2), "request": REQUEST},
    ),
    "request filled in by a stale event": (
        [ev(2, "PROCESSING", 2), ev(1, "QUEUED", 1, request=REQUEST)],
        {**base(2, "PROCESSING", 2, rank=2), "request": REQUEST},
    ),
    "a winner without request keeps the stored request": (
        [ev(1, "QUEUED", 1, request=REQUEST), ev(5, "COMPLETED", 6)],
        {**base(5, "COMPLETED", 6, rank=3), "request": REQUEST},
    ),
    "ties on attempt, rank and time go to the greater eventId": (
        [ev(9, "PROCESSING", 2, progress=9), ev(8, "PROCESSING", 2, progress=8)],
        {**base(9, "PROCESSING", 2, rank=2), "progress": 9},
    ),
    "an event of another userId is never applied": (
        [
            ev(1, "QUEUED", 1, request=REQUEST),
            ev(5, "COMPLETED", 6, user_id="mallory", output_url="https://evil.example.com/v.mp4"),
        ],
        {**base(1, "QUEUED", 1, rank=1), "request": REQUEST},
    ),
    "an event of another createdAt is never applied, not even its request": (
        [
            ev(2, "PROCESSING", 2),
            ev(1, "QUEUED", 1, created_at="2026-11-22T06:59:59.999Z", request=REQUEST),
        ],
        base(2, "PROCESSING", 2, rank=2),
    ),
}


@pytest.mark.parametrize(("events", "expected"), ROWS.values(), ids=ROWS.keys())
def test_the_fold_gives_the_literal_item(events: list[JobStatusChanged], expected: dict[str, Any]) -> None:
    assert project(events, ttl_days=30, now=NOW) == {"job-1": expected}


@pytest.mark.parametrize(("events", "expected"), ROWS.values(), ids=ROWS.keys())
def test_the_writer_stores_the_literal_item(
    client: Any, events: list[JobStatusChanged], expected: dict[str, Any]
) -> None:
    # Each event in its own batch, in the row's order, and then all in one batch again.
    store = JobStore(client, TABLE, 30)
    for n, event in enumerate(events):
        for batch in coalesce([(str(n), event)]):
            store.write(batch)
    for batch in coalesce((str(n), e) for n, e in enumerate(events)):
        store.write(batch)
    answer = client.get_item(TableName=TABLE, Key={"jobId": {"S": "job-1"}}, ConsistentRead=True)
    assert from_item(answer["Item"]) == expected


def test_the_folds_field_lists_are_the_contracts() -> None:
    # The writer builds its SET/REMOVE lists from these: a name missing here is a field lost.
    assert FILL_IN_FIELDS == ("jobId", "userId", "createdAt", "ttl", "request")
    assert OWNER_FIELDS == ("userId", "createdAt")
    assert WINNER_FIELDS == (
        "status",
        "updatedAt",
        "version",
        "lastEventId",
        "attempt",
        "progress",
        "startedAt",
        "outputUrl",
        "result",
        "error",
        "metrics",
    )


def test_ttl_follows_ttl_days() -> None:
    item = project([ev(1, "QUEUED", 1)], ttl_days=7, now=NOW)["job-1"]
    assert item["ttl"] == CREATED_EPOCH + 7 * 86_400


def test_an_expired_job_gives_no_item() -> None:
    assert project([ev(1, "QUEUED", 1)], ttl_days=30, now=float(TTL_30)) == {}


def test_a_damaged_item_gets_its_fill_ins_back() -> None:
    damaged = {"jobId": "job-1", "status": "PROCESSING", "version": "0001#2#2026-11-22T07:00:02.000Z#x"}
    assert apply(damaged, ev(1, "QUEUED", 1, request=REQUEST), ttl_days=30, now=NOW) == {
        "jobId": "job-1",
        "userId": "alice",
        "createdAt": CREATED,
        "ttl": TTL_30,
        "request": REQUEST,
        "status": "PROCESSING",
        "version": "0001#2#2026-11-22T07:00:02.000Z#x",
    }


def test_conflicting_events_are_reported_in_delivery_order() -> None:
    mallory = ev(5, "COMPLETED", 6, user_id="mallory")
    other_day = ev(6, "PROCESSING", 3, created_at="2026-11-22T06:00:00.000Z")
    items, conflicting = project_reporting(
        [ev(1, "QUEUED", 1), mallory, ev(2, "PROCESSING", 2), other_day, mallory], ttl_days=30, now=NOW
    )
    assert items["job-1"]["lastEventId"] == eid(2)
    assert [e.event_id for e in conflicting] == [eid(5), eid(6), eid(5)]


def test_coalesce_keeps_owners_apart_in_order_of_their_smallest_version() -> None:
    records = [
        ("m1", ev(5, "COMPLETED", 6, user_id="mallory")),
        ("a1", ev(2, "PROCESSING", 2)),
        ("m2", ev(1, "QUEUED", 1, user_id="mallory")),
        ("a2", ev(3, "PROCESSING", 3)),
        ("other", ev(3, "QUEUED", 1).model_copy(update={"job_id": "job-2"})),
    ]
    batches = coalesce(records)
    assert [(b.job_id, b.winner.user_id, b.winner.event_id, b.record_ids) for b in batches] == [
        ("job-1", "mallory", eid(5), ("m1", "m2")),
        ("job-1", "alice", eid(3), ("a1", "a2")),
        ("job-2", "alice", eid(3), ("other",)),
    ]
