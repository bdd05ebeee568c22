"""A hypothesis property: whatever the stream delivery does, a client keeping the greatest version ends right.

Jobs are projected in any order (stale events write nothing); their stream records reach NotifierFn
shuffled, duplicated, in batches of any size, some batches failing and retried as Lambda's event
source mapping retries them (from the first failed record on). A browser that keeps, per job, the
message with the greatest version always ends on the table's item, and never sees another's job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobstatus.events import JobStatusChanged, format_timestamp
from notifier.core import job_message
from notifier.handler import handle
from ops.template import Template
from tests.examples import examples
from tests.live.conftest import live_tables
from tests.live.support import ALICE, BOB, Browser, job_event

pytestmark = pytest.mark.property

BASE = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
STEPS = st.tuples(st.sampled_from(["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]), st.integers(1, 2))


def _event(job_id: str, user: str, second: int, status: str, attempt: int) -> JobStatusChanged:
    extra: dict[str, Any] = {"attempt": attempt}
    if status == "COMPLETED":
        extra["output_url"] = f"https://cdn.example.com/{job_id}-{second}.mp4"
    if status == "FAILED":
        extra["error"] = {"code": "FAL_ERROR", "message": f"failed at {second}", "retryable": True}
    if status == "PROCESSING":
        extra["progress"] = second % 101
    return job_event(
        job_id, status, format_timestamp(BASE + timedelta(seconds=second)), user_id=user, **extra
    )


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    jobs = draw(st.integers(1, 3))
    histories = [draw(st.lists(STEPS, min_size=1, max_size=5)) for _ in range(jobs)]
    events = [
        (job, _event(f"job{job}", BOB if job == 2 else ALICE, second, status, attempt))
        for job, history in enumerate(histories)
        for second, (status, attempt) in enumerate(history, start=1)
    ]
    order = draw(st.permutations(range(len(events))))
    return {
        "jobs": jobs,
        "events": [events[i] for i in order],
        "seed": draw(st.randoms(use_true_random=False)),
    }


TEMPLATE = Template.read(Stage="test")


@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_a_client_keeping_the_greatest_version_ends_on_the_tables_item(scenario, data):
    with live_tables(TEMPLATE) as live:
        prefix = uuid.uuid4().hex[:6]
        job_ids = [f"{prefix}-job{job}" for job in range(scenario["jobs"])]
        live.connect("c-alice", ALICE)
        live.send("c-alice", {"action": "subscribe", "jobIds": job_ids, "mine": True})
        browser = Browser()

        # The projector writes the events in the drawn order, one batch each.
        for _, event in scenario["events"]:
            live.project(event.model_copy(update={"job_id": f"{prefix}-{event.job_id}"}))
        records = live.new_records()

        # The stream hands them over shuffled, some twice, in batches of any size; a batch may fail.
        rnd = scenario["seed"]
        delivery = records + [r for r in records if rnd.random() < 0.3]
        rnd.shuffle(delivery)
        while delivery:
            size = data.draw(st.integers(1, max(1, len(delivery))), label="batch size")
            batch, delivery = delivery[:size], delivery[size:]
            failing = data.draw(st.booleans(), label="posts fail")
            while True:
                live.api.broken = {"c-alice"} if failing else set()
                answer = handle({"Records": batch}, live.notifier_deps)
                browser.receive(live.api.take("c-alice"))
                failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
                if not failed:
                    break
                # Lambda retries the batch from its first failed record; the next try works.
                first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
                batch, failing = batch[first:], False

        for job, job_id in enumerate(job_ids):
            item = live.job(job_id)
            if job == 2:  # Bob's job: Alice subscribed to it by id, and learns nothing of it
                assert job_id not in browser.jobs
            else:
                assert item is not None
                assert browser.jobs[job_id] == job_message(item)
