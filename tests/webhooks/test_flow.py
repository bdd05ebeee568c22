"""Stream to receiver, end to end: dispatcher, delivery queue (in memory, fake clock), sender (ledger in
moto), and a real receiver verifying every delivery with `Webhook.verify`, under fault injection.

What must hold (DESIGN §4c), checked by `assert_contract`:
- every request the receiver got verified;
- per job and URL, the versions that reached the receiver never go down (not even an attempt);
- none lost: a job's newest subscribed version is delivered, in the DLQ, or stopped by a 410, and
  every older subscribed version is delivered, in the DLQ, stopped, or overtaken by one that was sent;
- no change is delivered (2xx) twice, and nothing is left in the queue.
"""

from __future__ import annotations

import functools
import json
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.examples import examples
from tests.webhooks.conftest import MASTER
from tests.webhooks.fakes import Clock, FakeQueue
from tests.webhooks.receiver import Receiver, payload_version
from tests.webhooks.stream import job_item, stream_record
from webhooks import dispatcher, sender_handler
from webhooks.http import post
from webhooks.model import Delivery
from webhooks.sender import Sender
from webhooks.signing import user_secret

pytestmark = pytest.mark.unit

# A job's life: (status, second, progress); versions rise along it.
LIFE = [("QUEUED", 0, None), ("PROCESSING", 10, 10), ("PROCESSING", 20, 60), ("COMPLETED", 30, None)]
FAILED_LIFE = [("QUEUED", 0, None), ("PROCESSING", 10, 10), ("FAILED", 40, None)]


@dataclass
class Job:
    job_id: str
    items: list[dict[str, Any]]
    subscribed: list[str]  # versions whose status is subscribed, ascending


def make_job(url: str, life: list[tuple[str, int, int | None]], events: list[str] | None) -> Job:
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    items = [
        job_item(job_id, status, second, n + 1, webhook=url, events=events, progress=progress)
        for n, (status, second, progress) in enumerate(life)
    ]
    wanted = events or ["COMPLETED", "FAILED"]
    return Job(job_id, items, [i["version"] for i in items if i["status"] in wanted])


def run(
    ledger, receiver: Receiver, records: list[dict[str, Any]], rng: random.Random, refuse_sends: int = 0
) -> FakeQueue:
    """Feed the stream through the dispatcher (retrying from a failed record, as Lambda does), then
    drain the delivery queue through the sender handler, moving the fake clock to each next message."""
    clock = Clock()
    queue = FakeQueue(clock)
    queue.refuse_sends = refuse_sends
    position = 0
    while position < len(records):
        size = rng.randint(1, 5)
        batch = records[position : position + size]
        answer = dispatcher.handle({"Records": batch}, dispatcher.Dependencies(queue))  # type: ignore[arg-type]
        failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        if failed:  # Lambda retries the stream from the first failed record (those before it stay done)
            first = min(failed)
            position += next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] == first)
        else:
            position += len(batch)
    sender = Sender(
        ledger=ledger,
        secret_for=functools.partial(user_secret, MASTER),
        poster=functools.partial(post, timeout=5),
        allow_local=True,
        clock=clock,
    )
    deps = sender_handler.Dependencies(sender, queue)  # type: ignore[arg-type]
    for _ in range(2000):
        records_in = queue.receive(rng.randint(1, 10))
        if not records_in:
            upcoming = queue.next_visible_at()
            if upcoming is None:
                break
            clock.now = max(clock.now, upcoming)
            continue
        queue.settle(records_in, sender_handler.handle({"Records": records_in}, deps))
    return queue


def assert_contract(jobs: list[Job], receiver: Receiver, queue: FakeQueue, gone_jobs: set[str]) -> None:
    assert queue.messages == {}
    ours = {job.job_id for job in jobs}
    arrivals = [a for a in receiver.arrivals if a.webhook_id.split(".", 1)[0] in ours]
    assert all(a.verified for a in arrivals), [a.payload for a in arrivals if not a.verified]
    by_job: dict[str, list[str]] = defaultdict(list)
    for arrival in arrivals:
        by_job[arrival.webhook_id.split(".", 1)[0]].append(payload_version(arrival))
    for job_id, versions in by_job.items():
        assert versions == sorted(versions), (
            f"{job_id}: an older version reached the receiver after a newer one"
        )
    delivered = [a.webhook_id for a in receiver.delivered() if a.webhook_id.split(".", 1)[0] in ours]
    assert len(delivered) == len(set(delivered)), "a change was delivered twice"
    dead = {
        Delivery.from_message(body).job_id + "." + Delivery.from_message(body).version
        for body, _ in queue.dlq
    }
    for job in jobs:
        if not job.subscribed:
            assert job.job_id not in by_job
            continue
        attempted = by_job.get(job.job_id, [])
        for v in job.subscribed:
            webhook_id = f"{job.job_id}.{v}"
            overtaken = any(a > v for a in attempted)
            settled = webhook_id in delivered or webhook_id in dead or job.job_id in gone_jobs or overtaken
            assert settled, f"{webhook_id} was lost"
        newest = f"{job.job_id}.{job.subscribed[-1]}"
        assert newest in delivered or newest in dead or job.job_id in gone_jobs, f"{newest} was lost"


def test_faults_of_every_kind_still_deliver_each_change_or_dead_letter_it(ledger, receiver):
    # Given jobs whose receiver fails in different ways
    url = receiver.url
    everything = ["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]
    jobs = {
        "flaky": make_job(url, LIFE, everything),  # 500, garbage, drop, then fine
        "redirects": make_job(url, LIFE, None),  # a redirect (not followed), then fine
        "gone": make_job(url, LIFE, everything),  # 410 at once
        "dead": make_job(url, FAILED_LIFE, None),  # always 500: the DLQ after 10 attempts
        "quiet": make_job(url, LIFE, ["FAILED"]),  # nothing subscribed happens
    }
    faults = {
        jobs["flaky"].job_id: ["500", "garbage", "drop"],
        jobs["redirects"].job_id: ["redirect"],
        jobs["gone"].job_id: ["410"],
    }

    def plan(webhook_id: str, n: int) -> str:
        job_id = webhook_id.split(".", 1)[0]
        if job_id == jobs["dead"].job_id:
            return "500"
        failures = faults.get(job_id, [])
        count = sum(1 for a in receiver.arrivals if a.webhook_id.split(".", 1)[0] == job_id)
        return failures[count] if count < len(failures) else "ok"

    receiver.plan = plan
    records = [stream_record(item, n) for n, item in enumerate(i for job in jobs.values() for i in job.items)]
    # When the stream is dispatched (SQS refusing the first two sends) and the queue drained
    queue = run(ledger, receiver, records, random.Random(7), refuse_sends=2)
    # Then
    assert_contract(list(jobs.values()), receiver, queue, {jobs["gone"].job_id})
    dead_ids = [Delivery.from_message(body).job_id for body, _ in queue.dlq]
    assert dead_ids == [jobs["dead"].job_id]
    dead_attempts = [a for a in receiver.arrivals if a.webhook_id.startswith(jobs["dead"].job_id)]
    assert len(dead_attempts) == 10
    assert receiver.followed_redirects == []
    assert [a.action for a in receiver.arrivals if a.webhook_id.startswith(jobs["gone"].job_id)] == ["410"]
    assert not any(a.webhook_id.startswith(jobs["quiet"].job_id) for a in receiver.arrivals)


ACTIONS = st.sampled_from(["ok", "ok", "ok", "500", "garbage", "drop", "redirect", "410"])


@settings(
    max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lives=st.lists(st.sampled_from([LIFE, FAILED_LIFE]), min_size=1, max_size=3),
    events=st.lists(
        st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]),
                min_size=1,
                max_size=4,
                unique=True,
            ),
        ),
        min_size=3,
        max_size=3,
    ),
    duplicates=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
    faults=st.lists(ACTIONS, min_size=0, max_size=6),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    refuse_sends=st.integers(min_value=0, max_value=2),
)
def test_property_shuffled_duplicated_stream_records(
    ledger, receiver, lives, events, duplicates, faults, seed, refuse_sends
):
    rng = random.Random(seed)
    jobs = [make_job(receiver.url, life, events[n]) for n, life in enumerate(lives)]
    images = [item for job in jobs for item in job.items]
    images += [images[d % len(images)] for d in duplicates]
    rng.shuffle(images)
    records = [stream_record(item, n) for n, item in enumerate(images)]
    ours = {job.job_id for job in jobs}
    gone: set[str] = set()

    def plan(webhook_id: str, n: int) -> str:
        count = sum(1 for a in receiver.arrivals if a.webhook_id.split(".", 1)[0] in ours)
        action = faults[count] if count < len(faults) else "ok"
        if action == "410":
            gone.add(webhook_id.split(".", 1)[0])
        return action

    receiver.plan = plan
    queue = run(receiver=receiver, ledger=ledger, records=records, rng=rng, refuse_sends=refuse_sends)
    assert_contract(jobs, receiver, queue, gone)


def test_a_slow_receiver_does_not_hold_up_another_in_the_same_batch(ledger, receiver):
    # Given one receiver that takes 1.5 s and another that answers at once, in one SQS batch
    slow = Receiver(secret=receiver.secret, plan=lambda _id, _n: "slow", slow_seconds=1.5).start()
    try:
        fast_job = make_job(receiver.url, LIFE, None)
        slow_job = make_job(slow.url, LIFE, None)
        records = [stream_record(job.items[-1], n) for n, job in enumerate([slow_job, fast_job])]
        queue = FakeQueue(Clock())
        dispatcher.handle({"Records": records}, dispatcher.Dependencies(queue))  # type: ignore[arg-type]
        batch = queue.receive(10)
        assert [json.loads(r["body"])["jobId"] for r in batch] == [slow_job.job_id, fast_job.job_id]
        sender = Sender(
            ledger=ledger,
            secret_for=functools.partial(user_secret, MASTER),
            poster=functools.partial(post, timeout=5),
            allow_local=True,
        )
        started = time.monotonic()
        # When the batch is delivered
        answer = sender_handler.handle({"Records": batch}, sender_handler.Dependencies(sender, queue))  # type: ignore[arg-type]
        queue.settle(batch, answer)
        # Then the fast one arrived long before the slow one was answered, and both were delivered
        (fast_arrival,) = receiver.delivered()
        assert fast_arrival.at - started < 1.0
        assert len(slow.delivered()) == 1
        assert time.monotonic() - started >= 1.5
        assert queue.messages == {} and queue.dlq == []
    finally:
        slow.stop()
