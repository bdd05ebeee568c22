"""`StatusPublisher`: publishes `JobStatusChanged` events without ever blocking or failing a job.

Only `build`/`emit` can raise (`InvalidStatusEvent`). `publish` enqueues for a few background
senders (PutEvents, transient failures retried with backoff, a `CircuitBreaker` in front);
`flush(deadline)` waits until the deadline minus a reserve for the hand-over, then sends what is
left to the SQS outbox (`RepublisherFn` drains it), one ERROR line each. Metrics are added on the
caller's thread at `flush` (Powertools Metrics is not thread-safe). A flush can abandon a call
that then succeeds: that event arrives twice with one eventId, which the projection absorbs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from jobstatus.events import Status
from jobstatus.logkeys import current_function_keys
from jobstatus.metrics import MetricsSink
from producers.publishing.breaker import CircuitBreaker
from producers.publishing.delivery import Counters, DeliveryState, FlushReport, Pending, log_undelivered
from producers.publishing.entries import JobRef, StatusEntry, build_status_entry
from producers.publishing.outbox import OutboxPort
from producers.publishing.putevents import Backoff, EventsPort
from producers.publishing.senders import Senders

logger = Logger(child=True)

OUTBOX_EWMA_WEIGHT: Final = 0.3  # of the latest hand-over in the outbox reserve


class StatusPublisher:
    """Publishes status events from a small pool of background senders; see the module docstring."""

    def __init__(
        self,
        events: EventsPort,
        outbox: OutboxPort,
        *,
        bus_name: str,
        source: str,
        metrics: MetricsSink | None = None,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
        rng: random.Random | None = None,
        senders: int = 3,
        breaker: CircuitBreaker | None = None,
        outbox_reserve_seconds: float = 0.015,
        outbox_reserve_cap_seconds: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self.bus_name = bus_name
        self.source = source
        self._metrics = metrics
        self._clock = clock
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._reserve_cap = outbox_reserve_cap_seconds
        self._state = DeliveryState(outbox_seconds=min(outbox_reserve_seconds, outbox_reserve_cap_seconds))
        self._cond = threading.Condition()
        self._pool = Senders(
            events=events,
            state=self._state,
            cond=self._cond,
            breaker=self.breaker,
            backoff=backoff or Backoff(),
            max_attempts=max_attempts,
            rng=rng or random.Random(),  # jitter, not security
            size=senders,
            give_up=self._give_up,
            clock=clock,
        )

    # -- the caller's side ---------------------------------------------------------------

    def build(self, job: JobRef, status: Status, **details: Any) -> StatusEntry:
        """Build a validated entry for this publisher's bus and source (raises `InvalidStatusEvent`)."""
        return build_status_entry(job, status, bus_name=self.bus_name, source=self.source, **details)

    def emit(self, job: JobRef, status: Status, **details: Any) -> StatusEntry:
        """`build` then `publish`; only the build step can raise (`InvalidStatusEvent`)."""
        item = self.build(job, status, **details)
        self.publish(item)
        return item

    def publish(self, item: StatusEntry) -> None:
        """Enqueue `item` for the background senders. Never raises."""
        try:
            with self._cond:
                self._state.pending[item.event.event_id] = Pending(item, log_keys=current_function_keys())
                self._pool.ensure()
                self._cond.notify_all()
        except Exception as error:  # e.g. no thread can be started: straight to the fallback
            with self._cond:
                self._state.pending.pop(item.event.event_id, None)
            self._give_up([Pending(item, last_error=f"{type(error).__name__}: {error}")], "enqueue failed")

    def flush(self, deadline: float) -> FlushReport:
        """Wait for delivery until `deadline` (a value of the publisher's clock, `time.monotonic()` by
        default), minus the time the outbox hand-over is expected to take; send the rest to the outbox.

        Returns the counts since the previous flush and adds them as metrics. Never raises.
        """
        try:
            leftovers, reason = self._wait(deadline)
            if leftovers:
                self._give_up(leftovers, reason)
            return self._report()
        except Exception:  # never into the caller; the log line says what went wrong
            logger.exception("status publisher flush failed")
            return FlushReport(0, 0, 0, 0)

    def pending(self) -> int:
        """How many events are neither delivered nor handed to the fallback yet."""
        with self._cond:
            return len(self._state.pending)

    def outbox_reserve(self) -> float:
        """The time `flush` keeps for the outbox hand-over: recent hand-overs' average, capped."""
        with self._cond:
            return min(self._state.outbox_seconds, self._reserve_cap)

    def close(self) -> None:
        """Stop the background senders (pending events stay pending; flush first)."""
        with self._cond:
            threads = self._pool.stop()
        for thread in threads:
            thread.join(timeout=5)

    def _wait(self, deadline: float) -> tuple[list[Pending], str]:
        state = self._state
        with self._cond:
            # Never keep more than half of what is left for the outbox: delivery comes first.
            reserve = min(state.outbox_seconds, self._reserve_cap, max(deadline - self._clock(), 0.0) / 2)
            hand_over_at = deadline - reserve
            reason = "flush deadline"
            while state.pending or state.outbox_busy:
                now = self._clock()
                if now >= deadline:
                    break
                if state.pending:
                    if now >= hand_over_at:
                        break
                    if self.breaker.is_open():
                        reason = "circuit breaker open"
                        break  # no call will be made before the cool-down ends: waiting is pointless
                    idle = not state.in_flight and not state.outbox_busy
                    if idle and all(p.not_before >= hand_over_at for p in state.pending.values()):
                        break  # no attempt could happen before the hand-over: waiting achieves nothing
                    until = hand_over_at
                else:
                    until = deadline  # only a background hand-over to the outbox is still running
                self._cond.wait(timeout=until - now)
            # In-flight entries are abandoned too: a late success only makes a harmless duplicate.
            leftovers = list(state.pending.values())
            state.pending.clear()
            state.in_flight.clear()
            return leftovers, reason

    def _report(self) -> FlushReport:
        with self._cond:
            now, before = self._state.counters, self._state.reported
            circuit_open = self.breaker.openings > self._state.reported_openings or self.breaker.is_open()
            report = FlushReport(
                published=now.published - before.published,
                retried=now.retried - before.retried,
                undelivered=now.undelivered - before.undelivered,
                lost=now.lost - before.lost,
                circuit_open=circuit_open,
            )
            self._state.reported = Counters(now.published, now.retried, now.undelivered, now.lost)
            self._state.reported_openings = self.breaker.openings
        if self._metrics is not None:
            self._metrics.add_metric("StatusEventsPublished", MetricUnit.Count, report.published)
            self._metrics.add_metric("StatusEventsRetried", MetricUnit.Count, report.retried)
            self._metrics.add_metric("StatusEventsUndelivered", MetricUnit.Count, report.undelivered)
            self._metrics.add_metric("StatusPublisherCircuitOpen", MetricUnit.Count, int(report.circuit_open))
        return report

    def _give_up(self, items: list[Pending], reason: str) -> None:
        """Hand undelivered events to the outbox; log each at ERROR with the whole entry."""
        started = self._clock()
        try:
            refused = {id(entry): why for entry, why in self._outbox.send([p.item.entry for p in items])}
        except Exception as error:  # an outbox that raises is treated as refusing everything
            refused = {id(p.item.entry): f"{type(error).__name__}: {error}" for p in items}
        took = max(self._clock() - started, 0.0)
        with self._cond:
            self._state.counters.undelivered += len(items)
            self._state.counters.lost += len(refused)
            # The next flush keeps about this long for its own hand-over.
            self._state.outbox_seconds += OUTBOX_EWMA_WEIGHT * (took - self._state.outbox_seconds)
        log_undelivered(items, refused, reason)
