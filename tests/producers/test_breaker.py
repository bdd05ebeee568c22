"""StatusPublisher under faults: circuit breaker, outbox reserve, concurrent senders."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

import boto3
import pytest

from jobstatus.events import Status
from local.engines import free_port
from producers.aws import FAST_FAIL
from producers.publishing.breaker import CircuitBreaker
from producers.publishing.entries import JobRef
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff, CallResult, EntryFailure
from tests.producers.fakes import FakeEvents, FakeMetrics, FakeOutbox, throttled

pytestmark = pytest.mark.unit

JOB = JobRef("job-1", "user-1", "2026-11-22T07:20:31.123Z")
FAST = Backoff(base_seconds=0.001, cap_seconds=0.002)
NETWORK = CallResult([], EntryFailure("NetworkError", "refused", True))
ANSWERED = CallResult([None])


class FakeClock:
    """A monotonic clock the test moves forward by hand (on top of the real one, so waits end)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def publisher(events: Any, outbox: Any = None, **kwargs: Any) -> StatusPublisher:
    return StatusPublisher(
        events,
        outbox or FakeOutbox(),
        bus_name="jobs-test",
        source="jobs.fal-invoker",
        backoff=kwargs.pop("backoff", FAST),
        **kwargs,
    )


# -- the breaker on its own -------------------------------------------------------------------


def test_breaker_opens_after_k_consecutive_call_failures(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=3, cool_down_seconds=5, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert breaker.allow_call()
            breaker.record(NETWORK)
        assert breaker.state == "closed" and not breaker.is_open()
        breaker.record(NETWORK)
    assert breaker.state == "open" and breaker.is_open() and breaker.openings == 1
    assert not breaker.allow_call()
    line = next(r for r in caplog.records if "closed -> open" in r.getMessage())
    assert line.levelno == logging.WARNING and vars(line)["circuitState"] == "open"


def test_an_answer_resets_the_count_even_with_failed_entries() -> None:
    breaker = CircuitBreaker(failures_to_open=3)
    partly_failed = CallResult([EntryFailure("InternalFailure", "x", True)])
    for result in (NETWORK, NETWORK, partly_failed, NETWORK, NETWORK):
        breaker.record(result)
    assert breaker.state == "closed"


def test_a_permanent_call_error_does_not_open_it() -> None:
    breaker = CircuitBreaker(failures_to_open=1)
    breaker.record(CallResult([], EntryFailure("AccessDeniedException", "no", False)))
    assert breaker.state == "closed"


def test_half_open_lets_one_probe_through_and_its_success_closes(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=1, cool_down_seconds=5, clock=clock)
    breaker.record(NETWORK)
    opened_until = breaker.reopens_at()
    assert opened_until is not None and not breaker.allow_call()
    # When: the cool-down has passed
    clock.offset += 5.01
    assert not breaker.is_open()
    # Then: one probe, and only one, until its outcome is known
    assert breaker.allow_call() and breaker.state == "half-open"
    assert not breaker.allow_call()
    with caplog.at_level(logging.WARNING):
        breaker.record(ANSWERED)
    assert breaker.state == "closed" and breaker.allow_call() and breaker.reopens_at() is None
    assert any("half-open -> closed" in r.getMessage() for r in caplog.records)


def test_a_failed_probe_opens_it_again_for_a_new_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures_to_open=3, cool_down_seconds=5, clock=clock)
    for _ in range(3):
        breaker.record(NETWORK)
    clock.offset += 6
    assert breaker.allow_call()
    breaker.record(NETWORK)  # one failure in half-open is enough
    assert breaker.state == "open" and breaker.openings == 2 and breaker.is_open()


# -- the breaker in the publisher -------------------------------------------------------------


def test_an_open_breaker_sends_pending_events_to_the_outbox_at_once() -> None:
    # Given: every call is throttled, and attempts are practically unlimited
    events, outbox, metrics = FakeEvents(lambda n, e: throttled()), FakeOutbox(), FakeMetrics()
    pub = publisher(events, outbox, metrics=metrics, max_attempts=10_000)
    item = pub.emit(JOB, Status.QUEUED)
    # When: the flush could wait for five seconds
    report = pub.flush(time.monotonic() + 5)
    # Then: three calls opened the breaker, and the flush stopped waiting for retries
    assert len(events.calls) == 3 and pub.breaker.state == "open"
    assert report.undelivered == 1 and report.circuit_open and outbox.stored == [item.entry]
    assert metrics.values["StatusPublisherCircuitOpen"] == 1
    # And: while it is open, no call is made; the next flush goes straight to the outbox
    pub.emit(JOB, Status.PROCESSING)
    assert pub.flush(time.monotonic() + 5).undelivered == 1
    assert len(events.calls) == 3 and len(outbox.stored) == 2
    pub.close()


def test_after_the_cool_down_a_probe_delivers_and_closes_it() -> None:
    clock = FakeClock()
    healthy = threading.Event()
    events = FakeEvents(lambda n, e: [None] * len(e) if healthy.is_set() else throttled())
    outbox, metrics = FakeOutbox(), FakeMetrics()
    breaker = CircuitBreaker(failures_to_open=3, cool_down_seconds=5, clock=clock)
    pub = publisher(events, outbox, metrics=metrics, breaker=breaker, clock=clock, max_attempts=10_000)
    pub.emit(JOB, Status.QUEUED)
    assert pub.flush(clock() + 5).undelivered == 1 and breaker.state == "open"
    # When: the bus recovers and the cool-down passes
    healthy.set()
    clock.offset += 5.5
    item = pub.emit(JOB, Status.PROCESSING)
    report = pub.flush(clock() + 5)
    # Then: the probe carried the event and closed the breaker
    assert report.published == 1 and report.undelivered == 0
    assert breaker.state == "closed" and events.details()[-1]["eventId"] == item.event.event_id
    assert not report.circuit_open  # neither opened since the previous flush nor open now
    pub.close()


def test_a_refused_connection_fails_fast_and_is_not_retried_past_the_breaker() -> None:
    class Counting:
        def __init__(self, client: Any) -> None:
            self.client, self.calls = client, 0

        def put_events(self, *, Entries: Any) -> Any:
            self.calls += 1
            return self.client.put_events(Entries=Entries)

    # Given: a real client on a closed port (ECONNREFUSED)
    events = Counting(
        boto3.client("events", endpoint_url=f"http://127.0.0.1:{free_port()}", config=FAST_FAIL)
    )
    outbox = FakeOutbox()
    pub = publisher(events, outbox, max_attempts=10_000)
    # When
    pub.emit(JOB, Status.QUEUED)
    report = pub.flush(time.monotonic() + 5)
    # Then: K calls, then the outbox; not a retry loop until the deadline
    assert events.calls == 3 and report.undelivered == 1 and len(outbox.stored) == 1
    pub.close()


# -- the outbox reserve -----------------------------------------------------------------------


def test_the_hand_over_starts_a_reserve_before_the_deadline() -> None:
    # Given: a PutEvents call that hangs until released, and a known outbox reserve
    release = threading.Event()

    def hang(n: int, entries: list[dict[str, Any]]) -> list[str | None]:
        release.wait(5)
        return [None] * len(entries)

    class TimedOutbox(FakeOutbox):
        called_at: float = 0.0

        def send(self, entries: Any) -> list[tuple[Any, str]]:
            self.called_at = time.monotonic()
            return super().send(entries)

    outbox = TimedOutbox()
    # A wide reserve, so a scheduling stall on a busy machine cannot push the hand-over past it.
    pub = publisher(FakeEvents(hang), outbox, outbox_reserve_seconds=0.5, outbox_reserve_cap_seconds=0.5)
    assert pub.outbox_reserve() == pytest.approx(0.5)
    pub.emit(JOB, Status.COMPLETED, output_url="https://cdn.test/v.mp4")
    # When
    deadline = time.monotonic() + 1.2  # the reserve is at most half of what is left: 0.5 s applies
    report = pub.flush(deadline)
    release.set()
    # Then: it stopped waiting at deadline - reserve, not at the deadline
    assert report.undelivered == 1 and len(outbox.stored) == 1
    assert deadline - 0.5 - 0.005 <= outbox.called_at < deadline - 0.25
    pub.close()


def test_the_reserve_follows_recent_hand_overs_and_is_capped() -> None:
    clock = FakeClock()

    class SlowOutbox(FakeOutbox):
        cost = 0.0

        def send(self, entries: Any) -> list[tuple[Any, str]]:
            clock.offset += self.cost
            return super().send(entries)

    outbox = SlowOutbox()
    pub = publisher(
        FakeEvents(lambda n, e: ["MalformedDetail"] * len(e)),
        outbox,
        clock=clock,
        outbox_reserve_seconds=0.01,
        outbox_reserve_cap_seconds=0.04,
    )
    outbox.cost = 1.0  # a very slow hand-over: the reserve is capped
    pub.emit(JOB, Status.QUEUED)
    pub.flush(clock() + 5)
    assert pub.outbox_reserve() == pytest.approx(0.04)
    outbox.cost = 0.0  # fast ones bring it down again
    for _ in range(30):
        pub.emit(JOB, Status.QUEUED)
        pub.flush(clock() + 5)
    assert pub.outbox_reserve() < 0.001
    pub.close()


# -- concurrent senders -----------------------------------------------------------------------


def test_senders_overlap_and_every_entry_is_delivered_and_reported_exactly_once() -> None:
    # Given: the first two calls only return once both are in flight; later, entries fail at random
    both_in_flight = threading.Barrier(2, timeout=5)
    rng, lock = random.Random(5), threading.Lock()

    def script(n: int, entries: list[dict[str, Any]]) -> list[str | None]:
        if n <= 2:
            both_in_flight.wait()
        with lock:
            return [None if rng.random() < 0.5 else "InternalFailure" for _ in entries]

    events, metrics = FakeEvents(script), FakeMetrics()
    pub = publisher(events, metrics=metrics, senders=3, max_attempts=10_000)
    # When: events arrive one at a time, as a job emits them
    items = [pub.emit(JOB, Status.QUEUED) for _ in range(30)]
    report = pub.flush(time.monotonic() + 10)
    # Then: the barrier was passed (two calls at once), nothing was lost or delivered twice
    assert not both_in_flight.broken
    delivered = [json.loads(e["Detail"])["eventId"] for e in events.delivered]
    assert sorted(delivered) == sorted(i.event.event_id for i in items)
    assert report.published == 30 and report.undelivered == 0 and report.retried > 0
    assert metrics.values["StatusEventsPublished"] == 30
    retried = [json.loads(e["Detail"])["eventId"] for call in events.calls for e in call]
    assert len(retried) - len(set(retried)) == report.retried  # only failed entries went again
    pub.close()


def test_a_sender_that_hits_a_bug_gives_its_entries_back() -> None:
    class Flaky:
        calls = 0

        def put_events(self, *, Entries: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                return None  # a malformed client answer: `put_call` cannot read it
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}

    pub = publisher(Flaky(), senders=1)
    pub.emit(JOB, Status.QUEUED)
    assert pub.flush(time.monotonic() + 5).published == 1
    pub.close()
