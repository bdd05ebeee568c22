"""hypothesis properties of the projection on a DynamoDB engine: it agrees with the pure fold.

The same histories as the fold's properties (`test_fold_properties.deliveries`), delivered in
random batches through `coalesce` and `JobStore` (one conditional UpdateItem per job per
batch) into a real engine's table: whatever the batching, order and duplicates, the stored
items equal `project(...)`, and replaying any part of the history again changes nothing. With
events of foreign owners mixed in, no item ever holds one of their fields and each is reported.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobstatus.codec import from_item
from jobstatus.events import JobStatusChanged
from projector.fold import coalesce, project
from projector.handler import ProjectorDeps, process
from projector.store import JobStore
from tests.core.sqs import record
from tests.core.test_fold_properties import NOW, TTL_DAYS, contested, deliveries, owner, reference_items
from tests.examples import examples

pytestmark = [pytest.mark.property, pytest.mark.integration]

# Each example writes real requests to DynamoDB Local, so fewer than the pure fold's 2,000. The
# table fixture lives for the whole test; every example uses jobIds of its own, so examples
# cannot see each other's items (hence the function-scoped fixture is safe here).
ON_DYNAMODB = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def own_jobs(events: list[JobStatusChanged], delivered: list[JobStatusChanged]) -> tuple[Any, Any]:
    """The same histories under jobIds no other example uses."""
    prefix = uuid.uuid4().hex[:12]
    renamed = {e.event_id: e.model_copy(update={"job_id": f"{prefix}-{e.job_id}"}) for e in events}
    return list(renamed.values()), [renamed[e.event_id] for e in delivered]


def write_in_batches(store: JobStore, delivered: list[JobStatusChanged], rnd: random.Random) -> None:
    """Deliver in batches of random sizes, each coalesced per job and written once per job."""
    start = 0
    while start < len(delivered):
        size = rnd.randint(1, 10)
        batch = delivered[start : start + size]
        for job in coalesce((f"m{start + i}", event) for i, event in enumerate(batch)):
            store.write(job)
        start += size


def stored(ddb: Any, table: str, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    items = {}
    for job_id in job_ids:
        answer = ddb.get_item(TableName=table, Key={"jobId": {"S": job_id}}, ConsistentRead=True)
        if "Item" in answer:
            items[job_id] = from_item(answer["Item"])
    return items


@ON_DYNAMODB
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_any_batching_of_any_delivery_stores_the_pure_fold(ddb, jobs_table, history, seed) -> None:
    events, delivered = own_jobs(*history)
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    write_in_batches(store, delivered, random.Random(seed))
    expected = project(events, ttl_days=TTL_DAYS, now=NOW)
    assert stored(ddb, jobs_table, {e.job_id for e in events}) == expected


@ON_DYNAMODB
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_replaying_any_part_again_changes_nothing(ddb, jobs_table, history, seed) -> None:
    events, delivered = own_jobs(*history)
    store = JobStore(ddb, jobs_table, TTL_DAYS)
    rnd = random.Random(seed)
    write_in_batches(store, delivered, rnd)
    job_ids = {e.job_id for e in events}
    before = stored(ddb, jobs_table, job_ids)
    # A replay: any subset of the events, in any order, in any batching.
    replay = rnd.sample(events, rnd.randint(1, len(events)))
    write_in_batches(store, replay, rnd)
    assert stored(ddb, jobs_table, job_ids) == before


@ON_DYNAMODB
@given(contested(), st.integers(0, 2**32 - 1))
def test_no_batching_lets_another_owner_into_an_item_and_every_conflict_is_reported(
    ddb, jobs_table, history, seed
) -> None:
    # Given histories where some of job-0's events claim another userId or createdAt
    events, delivered = own_jobs(*history)
    deps = ProjectorDeps(store=JobStore(ddb, jobs_table, TTL_DAYS), ttl_days=TTL_DAYS, clock=lambda: NOW)
    rnd = random.Random(seed)
    # When they go through ProjectorFn's processing in random batches
    failed: list[int] = []
    start = 0
    while start < len(delivered):
        size = rnd.randint(1, 10)
        records = [record(delivered[i], f"m{i}") for i in range(start, min(start + size, len(delivered)))]
        failed += [int(m[1:]) for m in process(records, deps).failures]
        start += size
    # Then each item is the fold of its owner's events alone, and exactly the others failed
    items = stored(ddb, jobs_table, {e.job_id for e in events})
    for job_id, item in items.items():
        own = [e for e in events if e.job_id == job_id and owner(e) == (item["userId"], item["createdAt"])]
        assert item == reference_items(own)[job_id]
    foreign = [
        i
        for i, e in enumerate(delivered)
        if owner(e) != (items[e.job_id]["userId"], items[e.job_id]["createdAt"])
    ]
    assert sorted(failed) == foreign
