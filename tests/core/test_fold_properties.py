"""hypothesis properties of the pure fold (DESIGN §3): idempotent, order-free, monotone, exact.

Histories are small (1-8 events per job, a few attempts, a handful of instants) so that ties on
attempt, rank and time are frequent and every branch of the version order is exercised. The
expected items come from `reference_items`, written here from the events' own JSON and the
contract's words, never from the fold's helpers or field lists.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import uuid
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobstatus.events import JobStatusChanged, Status
from projector.fold import Item, apply, coalesce, project, project_reporting, ttl_of
from tests.examples import examples

pytestmark = pytest.mark.property

TTL_DAYS = 30
CREATED_AT = "2026-11-22T07:00:00.000Z"
NOW = ttl_of(CREATED_AT, TTL_DAYS) - 1  # the job is alive
PROPERTY = settings(max_examples=examples(2000), deadline=None)
INSTANTS = [f"2026-11-22T07:00:0{s}.{ms:03d}Z" for s in range(3) for ms in (0, 500)]


# What an event may carry besides its status, per status: few draws per event keep 2,000
# examples per property fast, and each winner field is present in some variants and not others.
_ERROR = {"code": "E", "message": "boom", "retryable": True}
VARIANTS: list[tuple[Status, dict[str, Any]]] = [
    (Status.QUEUED, {}),
    (Status.QUEUED, {"progress": 0, "metrics": {"queueWaitMs": 1.5}}),
    (Status.PROCESSING, {}),
    (Status.PROCESSING, {"started_at": INSTANTS[0], "progress": 40}),
    (Status.PROCESSING, {"started_at": INSTANTS[1], "result": {"seed": 1}}),
    (Status.COMPLETED, {}),
    (
        Status.COMPLETED,
        {"output_url": "https://cdn.example.com/v.mp4", "result": {"seed": 2}, "progress": 100},
    ),
    (Status.COMPLETED, {"started_at": INSTANTS[0], "metrics": {"falLatencyMs": 1200}}),
    (Status.FAILED, {}),
    (Status.FAILED, {"error": _ERROR, "started_at": INSTANTS[0]}),
    (Status.FAILED, {"error": {**_ERROR, "retryable": False}, "result": {"seed": 3}, "metrics": {"x": 0}}),
]


# One integer per event encodes its variant, instant, attempt and tie-break order: a single draw
# per event keeps 2,000 examples per property fast, and it still shrinks well.
ATTEMPTS = 3
EVENT_SPACE = len(VARIANTS) * len(INSTANTS) * ATTEMPTS * 256


def request_of(job_id: str) -> dict[str, Any]:
    """The one request every event of a job that carries one carries."""
    return {"model": "fal-ai/kling-video", "input": {"prompt": f"the video of {job_id}", "n": [1.5, None]}}


def decode(index: int, spec: int, job_id: str) -> JobStatusChanged:
    """The event an integer stands for; `index` makes its eventId unique within the job."""
    spec, variant = divmod(spec, len(VARIANTS))
    spec, instant = divmod(spec, len(INSTANTS))
    order, attempt = divmod(spec, ATTEMPTS)
    status, fields = VARIANTS[variant]
    if order % 3 == 0:  # a third of the events carry the job's request
        fields = {**fields, "request": request_of(job_id)}
    return JobStatusChanged(
        # The random high bits decide ties on attempt, rank and time.
        event_id=str(uuid.UUID(int=(order << 64) | index, version=4)),
        job_id=job_id,
        user_id=f"user-of-{job_id}",
        status=status,
        occurred_at=INSTANTS[instant],
        created_at=CREATED_AT,
        attempt=attempt + 1,
        **fields,
    )


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[JobStatusChanged], list[JobStatusChanged]]:
    """(the distinct events of 1-2 jobs, 1-8 each; a delivery of them: shuffled, some duplicated)."""
    events: list[JobStatusChanged] = []
    for job in range(draw(st.integers(1, 2))):
        specs = draw(st.lists(st.integers(0, EVENT_SPACE - 1), min_size=1, max_size=8))
        events += [decode(i, spec, f"job-{job}") for i, spec in enumerate(specs)]
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    delivered = events + rnd.choices(events, k=rnd.randint(0, len(events)))
    rnd.shuffle(delivered)
    return events, delivered


# --- the reference: DESIGN §2/§3 in a few lines, from the events' JSON -------------------------

CONTRACT_RANK = {"QUEUED": 1, "PROCESSING": 2, "COMPLETED": 3, "FAILED": 3}
# (field of the event's detail, attribute of the item), as DESIGN §3 lists the winner fields.
CONTRACT_WINNER_FIELDS = [
    ("status", "status"),
    ("occurredAt", "updatedAt"),
    ("eventId", "lastEventId"),
    ("attempt", "attempt"),
    ("progress", "progress"),
    ("startedAt", "startedAt"),
    ("outputUrl", "outputUrl"),
    ("result", "result"),
    ("error", "error"),
    ("metrics", "metrics"),
]


def contract_version(detail: dict[str, Any]) -> str:
    rank = CONTRACT_RANK[detail["status"]]
    return f"{detail['attempt']:04d}#{rank}#{detail['occurredAt']}#{detail['eventId']}"


def contract_ttl(created_at: str, days: int) -> int:
    return int(datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()) + days * 86_400


def reference_items(events: list[JobStatusChanged], ttl_days: int = TTL_DAYS) -> dict[str, Item]:
    """Each job's item from its events' JSON: fill-ins, and exactly the greatest version's fields.

    For events that all agree on their job's owner and request (as these histories do).
    """
    by_job: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        detail = json.loads(json.dumps(event.to_detail()))
        by_job.setdefault(detail["jobId"], []).append(detail)
    items = {}
    for job_id, details in by_job.items():
        winner = max(details, key=contract_version)
        item: Item = {
            "jobId": job_id,
            "userId": winner["userId"],
            "createdAt": winner["createdAt"],
            "ttl": contract_ttl(winner["createdAt"], ttl_days),
            "version": contract_version(winner),
        }
        item.update({attr: winner[key] for key, attr in CONTRACT_WINNER_FIELDS if key in winner})
        requests = [d["request"] for d in details if "request" in d]
        if requests:
            item["request"] = requests[0]
        items[job_id] = item
    return items


def rank_of(item: Item) -> tuple[int, int]:
    return item["attempt"], CONTRACT_RANK[item["status"]]


@PROPERTY
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_applying_an_event_twice_equals_once(history: Any, seed: int) -> None:
    _, delivered = history
    rnd = random.Random(seed)
    items = project(delivered[: rnd.randint(0, len(delivered))], ttl_days=TTL_DAYS, now=NOW)
    event = rnd.choice(delivered)
    once = apply(items.get(event.job_id), event, ttl_days=TTL_DAYS, now=NOW)
    twice = apply(once, event, ttl_days=TTL_DAYS, now=NOW)
    assert twice == once


@PROPERTY
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_any_order_and_any_duplicates_give_the_same_items(history: Any, seed: int) -> None:
    events, delivered = history
    reordered = list(delivered)
    random.Random(seed).shuffle(reordered)
    expected = project(events, ttl_days=TTL_DAYS, now=NOW)
    assert project(delivered, ttl_days=TTL_DAYS, now=NOW) == expected
    assert project(reordered, ttl_days=TTL_DAYS, now=NOW) == expected


@PROPERTY
@given(deliveries())
def test_status_never_goes_backwards_within_an_attempt(history: Any) -> None:
    _, delivered = history
    items: dict[str, Item] = {}
    for event in delivered:
        before = items.get(event.job_id)
        after = apply(before, event, ttl_days=TTL_DAYS, now=NOW)
        assert after is not None
        if before is not None:
            assert rank_of(after) >= rank_of(before)  # attempt first, then rank within it
            assert after["version"] >= before["version"]
        items[event.job_id] = after


@PROPERTY
@given(deliveries())
def test_the_item_is_the_fill_ins_plus_exactly_the_winners_fields(history: Any) -> None:
    events, delivered = history
    assert project(delivered, ttl_days=TTL_DAYS, now=NOW) == reference_items(events)


@PROPERTY
@given(deliveries(), st.integers(0, 10 * 86_400))
def test_expired_jobs_are_never_written(history: Any, past_ttl: int) -> None:
    events, delivered = history
    now = ttl_of(CREATED_AT, TTL_DAYS) + past_ttl
    assert project(delivered, ttl_days=TTL_DAYS, now=now) == {}
    alive = project(events, ttl_days=TTL_DAYS, now=NOW)
    for event in delivered:  # nor changed, even when an item is already there
        assert apply(alive[event.job_id], event, ttl_days=TTL_DAYS, now=now) == alive[event.job_id]


@PROPERTY
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_coalesce_then_apply_equals_folding_every_event(history: Any, seed: int) -> None:
    events, delivered = history
    rnd = random.Random(seed)
    cuts = sorted(rnd.randint(0, len(delivered)) for _ in range(rnd.randint(0, 4)))
    bounds = [0, *cuts, len(delivered)]
    items: dict[str, Item] = {}
    for start, end in itertools.pairwise(bounds):
        records = [(f"m{i}", delivered[i]) for i in range(start, end)]
        batches = coalesce(records)
        assert len(batches) == len({e.job_id for _, e in records})  # one write per job
        assert sorted(r for b in batches for r in b.record_ids) == sorted(r for r, _ in records)
        for batch in batches:
            assert {e.job_id for r, e in records if r in batch.record_ids} == {batch.job_id}
            folded = apply(items.get(batch.job_id), batch.winner, ttl_days=TTL_DAYS, now=NOW)
            # The share's other events can only fill in (request), as the writer's if_not_exists does.
            for event in batch.events:
                assert apply(folded, event, ttl_days=TTL_DAYS, now=NOW) == fill_in(folded, event)
            folded = fill_in(folded, next((e for e in batch.events if e.request), batch.winner))
            assert folded is not None
            items[batch.job_id] = folded
    assert items == reference_items(events)


def fill_in(item: Item | None, event: JobStatusChanged) -> Item | None:
    """`item` with the event's request when it has none yet (the contract's fill-in rule)."""
    if item is None or event.request is None or "request" in item:
        return item
    return {**item, "request": event.to_detail()["request"]}


# --- owners that disagree (DESIGN §3 "A job's owner never changes") ------------------------------

# Later createdAts only: an earlier one would make the event's own job expired at NOW.
FOREIGN_OWNERS = [
    ("mallory", CREATED_AT),
    ("user-of-job-0", "2026-11-22T07:00:01.000Z"),
    ("mallory", "2026-11-22T07:00:00.500Z"),
]


@st.composite
def contested(draw: st.DrawFn) -> tuple[list[JobStatusChanged], list[JobStatusChanged]]:
    """A delivery where some events claim another owner (userId, createdAt or both) for job-0."""
    events, delivered = draw(deliveries())
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    foreign = {}
    for event in events:
        if event.job_id == "job-0" and rnd.random() < 0.4:
            user_id, created_at = rnd.choice(FOREIGN_OWNERS)
            foreign[event.event_id] = event.model_copy(update={"user_id": user_id, "created_at": created_at})
    events = [foreign.get(e.event_id, e) for e in events]
    return events, [foreign.get(e.event_id, e) for e in delivered]


def owner(event: JobStatusChanged) -> tuple[str, str]:
    return event.user_id, event.created_at


@PROPERTY
@given(contested())
def test_an_item_holds_only_its_owners_events_and_every_other_is_reported(history: Any) -> None:
    events, delivered = history
    items, conflicting = project_reporting(delivered, ttl_days=TTL_DAYS, now=NOW)
    for job_id, item in items.items():
        # The owner is that of the job's first event delivered; the item is the fold of its events alone.
        first = next(e for e in delivered if e.job_id == job_id)
        assert (item["userId"], item["createdAt"]) == owner(first)
        own = [e for e in events if e.job_id == job_id and owner(e) == owner(first)]
        assert item == reference_items(own)[job_id]
    foreign = [e for e in delivered if owner(e) != (items[e.job_id]["userId"], items[e.job_id]["createdAt"])]
    assert conflicting == foreign


@PROPERTY
@given(contested(), st.integers(0, 2**32 - 1))
def test_batches_judge_each_owner_alone_whatever_the_batching(history: Any, seed: int) -> None:
    # coalesce, then apply each share's winner the way the writer does: never across owners.
    events, delivered = history
    rnd = random.Random(seed)
    cuts = sorted(rnd.randint(0, len(delivered)) for _ in range(rnd.randint(0, 4)))
    items: dict[str, Item] = {}
    reported: list[str] = []
    for start, end in itertools.pairwise([0, *cuts, len(delivered)]):
        for batch in coalesce((f"m{i}", delivered[i]) for i in range(start, end)):
            assert len({owner(e) for e in batch.events}) == 1  # never mixed
            stored = items.get(batch.job_id)
            if stored is not None and (stored["userId"], stored["createdAt"]) != owner(batch.winner):
                reported += batch.record_ids
                continue
            folded = apply(stored, batch.winner, ttl_days=TTL_DAYS, now=NOW)
            folded = fill_in(folded, next((e for e in batch.events if e.request), batch.winner))
            assert folded is not None
            items[batch.job_id] = folded
    for job_id, item in items.items():
        own = [e for e in events if e.job_id == job_id and owner(e) == (item["userId"], item["createdAt"])]
        assert item == reference_items(own)[job_id]
    expected = [
        f"m{i}"
        for i, e in enumerate(delivered)
        if owner(e) != (items[e.job_id]["userId"], items[e.job_id]["createdAt"])
    ]
    assert sorted(reported) == sorted(expected)


# --- examples that pin the rules down -----------------------------------------------------------


def _event(status: Status, occurred_at: str, attempt: int = 1, **fields: Any) -> JobStatusChanged:
    return JobStatusChanged(
        event_id=str(uuid.uuid4()),
        job_id="job-1",
        user_id="user-1",
        status=status,
        occurred_at=occurred_at,
        created_at=CREATED_AT,
        attempt=attempt,
        **fields,
    )


@pytest.mark.unit
def test_a_completed_that_wins_over_a_failed_removes_error() -> None:
    failed = _event(Status.FAILED, INSTANTS[1], error={"code": "E", "message": "m", "retryable": True})
    completed = _event(Status.COMPLETED, INSTANTS[2], output_url="https://x.com/v.mp4")
    item = project([failed, completed], ttl_days=TTL_DAYS, now=NOW)["job-1"]
    assert item["status"] == "COMPLETED" and "error" not in item
    assert item["outputUrl"] == "https://x.com/v.mp4"


@pytest.mark.unit
def test_a_new_attempt_wins_over_a_terminal_status_of_the_last() -> None:
    failed = _event(Status.FAILED, INSTANTS[3])
    requeued = _event(Status.QUEUED, INSTANTS[1], attempt=2)
    item = project([requeued, failed], ttl_days=TTL_DAYS, now=NOW)["job-1"]
    assert (item["status"], item["attempt"]) == ("QUEUED", 2)


@pytest.mark.unit
def test_a_damaged_item_gets_its_missing_fill_ins_back_from_a_stale_event() -> None:
    winner = _event(Status.PROCESSING, INSTANTS[2])
    stale = _event(Status.QUEUED, INSTANTS[0])
    item = apply(None, winner, ttl_days=TTL_DAYS, now=NOW)
    assert item is not None
    damaged = {k: v for k, v in item.items() if k not in ("userId", "ttl")}
    assert apply(damaged, stale, ttl_days=TTL_DAYS, now=NOW) == item


@pytest.mark.unit
def test_an_item_without_a_version_takes_any_event() -> None:
    event = _event(Status.QUEUED, INSTANTS[0])
    damaged = {"jobId": "job-1", "status": "COMPLETED"}
    assert apply(damaged, event, ttl_days=TTL_DAYS, now=NOW) == reference_items([event])["job-1"]


@pytest.mark.unit
def test_ttl_is_created_at_plus_the_ttl_days_in_epoch_seconds() -> None:
    assert ttl_of("1970-01-01T00:00:01.999Z", 30) == 1 + 30 * 86_400


@pytest.mark.unit
def test_the_fold_imports_neither_boto3_nor_powertools() -> None:
    code = (
        "import sys, projector.fold, jobstatus.events;"
        "heavy = ('boto3', 'botocore', 'aws_lambda_powertools');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
