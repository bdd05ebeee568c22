"""`StatusPublisher`: publishes `JobStatusChanged` events without ever blocking or failing a job.

The caller builds an event (`build`/`emit`), which is the one step that can raise: an event the
contract refuses, or one over EventBridge's 256 KiB, raises `InvalidStatusEvent` before anything
is enqueued. Everything after that never raises into the caller:

- `publish` only appends to an in-memory queue; a small pool of background senders (3 by
  default) sends with PutEvents, several calls in flight at once, so earlier events are on the
  bus while the job still runs; only the entries that failed transiently are retried, with
  exponential backoff and full jitter;
- a `CircuitBreaker` stops the calls after 3 consecutive transient call failures (network,
  throttling, 5xx) and lets one probe through after a 5 s cool-down; while it is open a flush
  does not wait at all (WARNING log lines on each change, metric `StatusPublisherCircuitOpen`);
- `flush(deadline)` waits for delivery until `deadline` minus a reserve for the outbox
  hand-over (an EWMA of recent hand-overs, capped, at most half of what is left), so the
  hand-over normally ends by the deadline; it does not wait once no retry could happen before;
- whatever is undelivered then (or has run out of attempts, or failed for good) goes to the
  durable fallback, the SQS outbox (`OUTBOX_QUEUE_URL`; the message is the PutEvents entry as
  JSON), from which `RepublisherFn` puts it back on the bus, so the archive stays complete.
  Each such event is logged at ERROR with the whole entry and counted as
  `StatusEventsUndelivered`; if the outbox refuses it too, that log line is the record.

Metrics are added on the caller's thread at `flush` (Powertools Metrics is not thread-safe).
A duplicate is possible when a deadline abandons an in-flight call that then succeeds: the
event then arrives twice with one eventId, which the projection absorbs by design.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from jobstatus.events import (
    DETAIL_TYPE,
    EVENTBRIDGE_MAX_ENTRY_BYTES,
    JobStatusChanged,
    Status,
    utc_now,
)
from producers.putevents import (
    Backoff,
    CallResult,
    Entry,
    EventsPort,
    chunks,
    entry_json,
    entry_size,
    put_call,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)

SQS_MAX_BATCH: Final = 10
SQS_MAX_BATCH_BYTES: Final = 256 * 1024
OUTBOX_EWMA_WEIGHT: Final = 0.3  # of the latest hand-over in the outbox reserve


class InvalidStatusEvent(ValueError):
    """The event breaks the contract or exceeds 256 KiB: refused before it is enqueued."""


class MetricsPort(Protocol):
    """What the publisher needs of Powertools `Metrics`."""

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        """Add one data point."""
        ...


class OutboxPort(Protocol):
    """The durable fallback for entries that could not be put on the bus."""

    def send(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """Store the entries; return those it could not store, each with the reason."""
        ...


@dataclass(frozen=True, slots=True)
class JobRef:
    """The fields every event of one job (attempt) repeats."""

    job_id: str
    user_id: str
    created_at: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A validated event and the PutEvents entry that carries it."""

    event: JobStatusChanged
    entry: Entry

    @property
    def job_id(self) -> str:
        """The event's jobId."""
        return self.event.job_id


def build_status_entry(
    job: JobRef,
    status: Status,
    *,
    bus_name: str,
    source: str,
    occurred_at: str | None = None,
    event_id: str | None = None,
    **details: Any,
) -> StatusEntry:
    """Build and validate a `JobStatusChanged` entry; `details` are optional model fields.

    Raises `InvalidStatusEvent` when the contract refuses the event or it is over 256 KiB.
    """
    fields = {name: value for name, value in details.items() if value is not None}
    try:
        event = JobStatusChanged(
            event_id=event_id or str(uuid.uuid4()),
            job_id=job.job_id,
            user_id=job.user_id,
            status=status,
            occurred_at=occurred_at or utc_now(),
            created_at=job.created_at,
            attempt=job.attempt,
            **fields,
        )
    except ValidationError as error:
        raise InvalidStatusEvent(f"{status} event for job {job.job_id!r} is invalid: {error}") from error
    entry: Entry = {
        "Source": source,
        "DetailType": DETAIL_TYPE,
        "Detail": event.model_dump_json(exclude_none=True),
        "EventBusName": bus_name,
    }
    size = entry_size(entry)
    if size > EVENTBRIDGE_MAX_ENTRY_BYTES:
        raise InvalidStatusEvent(
            f"{status} event for job {job.job_id!r} is {size} bytes; EventBridge takes at most "
            f"{EVENTBRIDGE_MAX_ENTRY_BYTES}"
        )
    return StatusEntry(event, entry)


def status_entry_from(entry: Mapping[str, Any]) -> StatusEntry | None:
    """A recorded PutEvents entry of a status event, validated again; None (with an ERROR line) if not one."""
    try:
        if entry.get("DetailType") != DETAIL_TYPE:
            raise ValueError(f"DetailType is {entry.get('DetailType')!r}")
        event = JobStatusChanged.from_detail(json.loads(entry["Detail"]))
        restored: Entry = {
            "Source": str(entry["Source"]),
            "DetailType": DETAIL_TYPE,
            "Detail": str(entry["Detail"]),
            "EventBusName": str(entry["EventBusName"]),
        }
    except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        logger.error(
            "a recorded status entry is unreadable", extra={"entry": dict(entry), "error": str(error)}
        )
        return None
    return StatusEntry(event, restored)


class SqsOutbox:
    """The outbox on SQS: one message per entry, its body the entry as JSON."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """SendMessageBatch in batches of 10 (and 256 KiB); never raises."""
        if not self._queue_url:
            return [(entry, "no outbox queue configured (OUTBOX_QUEUE_URL)") for entry in entries]
        refused: list[tuple[Entry, str]] = []
        for batch in _sqs_batches(entries):
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)],
                )
            except Exception as error:  # the outbox is a fallback: its failure is reported, not raised
                refused.extend((entry, f"{type(error).__name__}: {error}") for entry, _ in batch)
                continue
            for failed in response.get("Failed", []):
                entry, _ = batch[int(failed["Id"])]
                refused.append((entry, f"{failed.get('Code')}: {failed.get('Message', '')}"))
        return refused


def _sqs_batches(entries: Sequence[Entry]) -> list[list[tuple[Entry, str]]]:
    batches: list[list[tuple[Entry, str]]] = []
    batch: list[tuple[Entry, str]] = []
    size = 0
    for entry in entries:
        body = entry_json(entry)
        this = len(body.encode())
        if batch and (len(batch) == SQS_MAX_BATCH or size + this > SQS_MAX_BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append((entry, body))
        size += this
    if batch:
        batches.append(batch)
    return batches


class CircuitBreaker:
    """Stops PutEvents calls after `failures_to_open` consecutive call failures; probes after a cool-down.

    A call fails for the breaker when it raised a transient error (network, throttling, 5xx): then
    waiting for retries inside a flush only burns the caller's time. An answer from EventBridge,
    even one with failed entries, closes it (per-entry retries deal with those). While open no
    call is made and `flush` hands pending events to the outbox at once; after `cool_down_seconds`
    one probe call is let through (half-open), and its outcome closes or reopens the breaker.
    Not thread-safe on its own: the publisher calls it under its lock.
    """

    CLOSED: Final = "closed"
    OPEN: Final = "open"
    HALF_OPEN: Final = "half-open"

    def __init__(
        self,
        *,
        failures_to_open: int = 3,
        cool_down_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cool_down_seconds = cool_down_seconds
        self._clock = clock
        self.state: str = self.CLOSED
        self.openings = 0  # how many times it has opened, ever
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False

    def allow_call(self) -> bool:
        """Whether a PutEvents call may start now; in half-open, only the one probe may."""
        if self.state == self.OPEN:
            if self._clock() < self._opened_at + self.cool_down_seconds:
                return False
            self._change(self.HALF_OPEN)
        if self.state == self.HALF_OPEN:
            if self._probe_out:
                return False
            self._probe_out = True
        return True

    def is_open(self) -> bool:
        """Open and still cooling down: no call will be made before `reopens_at()`."""
        return self.state == self.OPEN and self._clock() < self._opened_at + self.cool_down_seconds

    def reopens_at(self) -> float | None:
        """When the open breaker lets a probe through (a clock value); None unless open."""
        return self._opened_at + self.cool_down_seconds if self.state == self.OPEN else None

    def record(self, result: CallResult) -> None:
        """Count the outcome of a finished call."""
        self._probe_out = False
        failure = result.call_failure
        if failure is None or not failure.retryable:
            self._failures = 0
            if self.state != self.CLOSED:
                self._change(self.CLOSED)
            return
        self._failures += 1
        if self.state == self.HALF_OPEN or (
            self.state == self.CLOSED and self._failures >= self.failures_to_open
        ):
            self._opened_at = self._clock()
            self._change(self.OPEN, last_error=f"{failure.code}: {failure.message}")

    def _change(self, state: str, last_error: str = "") -> None:
        logger.warning(
            f"status publisher circuit breaker {self.state} -> {state}",
            extra={
                "circuitState": state,
                "consecutiveFailures": self._failures,
                "coolDownSeconds": self.cool_down_seconds,
                "lastError": last_error or None,
            },
        )
        if state == self.OPEN:
            self.openings += 1
        self.state = state


@dataclass(slots=True)
class _Pending:
    item: StatusEntry
    attempts: int = 0
    not_before: float = 0.0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What happened to the events since the previous flush."""

    published: int
    retried: int
    undelivered: int  # handed to the outbox, or lost when the outbox refused them too
    lost: int
    circuit_open: bool = False  # the breaker was open at some point since the previous flush


@dataclass(slots=True)
class _Counters:
    published: int = 0
    retried: int = 0
    undelivered: int = 0
    lost: int = 0


@dataclass(slots=True)
class _State:
    pending: dict[str, _Pending] = field(default_factory=dict)  # by eventId, in publish order
    in_flight: set[str] = field(default_factory=set)
    outbox_busy: int = 0
    counters: _Counters = field(default_factory=_Counters)
    reported: _Counters = field(default_factory=_Counters)
    reported_openings: int = 0
    outbox_seconds: float = 0.0  # EWMA of the outbox hand-over's duration


class StatusPublisher:
    """Publishes status events from a small pool of background senders; see the module docstring."""

    def __init__(
        self,
        events: EventsPort,
        outbox: OutboxPort,
        *,
        bus_name: str,
        source: str,
        metrics: MetricsPort | None = None,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
        rng: random.Random | None = None,
        senders: int = 3,
        breaker: CircuitBreaker | None = None,
        outbox_reserve_seconds: float = 0.015,
        outbox_reserve_cap_seconds: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._outbox = outbox
        self.bus_name = bus_name
        self.source = source
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        self._max_attempts = max_attempts
        self._rng = rng or random.Random()  # jitter, not security
        self._senders = max(1, senders)
        self._clock = clock
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._reserve_cap = outbox_reserve_cap_seconds
        self._state = _State(outbox_seconds=min(outbox_reserve_seconds, outbox_reserve_cap_seconds))
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

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
                self._state.pending[item.event.event_id] = _Pending(item)
                self._ensure_workers()
                self._cond.notify_all()
        except Exception as error:  # e.g. no thread can be started: straight to the fallback
            with self._cond:
                self._state.pending.pop(item.event.event_id, None)
            self._give_up([_Pending(item, last_error=f"{type(error).__name__}: {error}")], "enqueue failed")

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
            self._stopping = True
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)

    def _wait(self, deadline: float) -> tuple[list[_Pending], str]:
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
            self._state.reported = _Counters(now.published, now.retried, now.undelivered, now.lost)
            self._state.reported_openings = self.breaker.openings
        if self._metrics is not None:
            self._metrics.add_metric("StatusEventsPublished", MetricUnit.Count, report.published)
            self._metrics.add_metric("StatusEventsRetried", MetricUnit.Count, report.retried)
            self._metrics.add_metric("StatusEventsUndelivered", MetricUnit.Count, report.undelivered)
            self._metrics.add_metric("StatusPublisherCircuitOpen", MetricUnit.Count, int(report.circuit_open))
        return report

    # -- the background side -------------------------------------------------------------

    def _ensure_workers(self) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        if len(self._threads) < self._senders:
            self._stopping = False
        while len(self._threads) < self._senders:
            thread = threading.Thread(
                target=self._run, name=f"status-publisher-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._send(batch)
            except Exception:  # the sender must outlive any surprise
                logger.exception("status publisher worker error")
                with self._cond:  # give the entries back to the others
                    for pending in batch:
                        self._state.in_flight.discard(pending.item.event.event_id)
                    self._cond.notify_all()

    def _next_batch(self) -> list[_Pending] | None:
        state = self._state
        with self._cond:
            while not self._stopping:
                now = self._clock()
                ready = [
                    p
                    for key, p in state.pending.items()
                    if key not in state.in_flight and p.not_before <= now
                ]
                timeout: float | None
                if ready and self.breaker.allow_call():
                    first = next(chunks([p.item.entry for p in ready]))
                    batch = ready[: len(first)]
                    state.in_flight.update(p.item.event.event_id for p in batch)
                    return batch
                if ready:  # held by the breaker: until its cool-down ends, or a probe's outcome
                    reopens = self.breaker.reopens_at()
                    timeout = None if reopens is None else max(reopens - now, 0.001)
                else:
                    waiting = [p.not_before for k, p in state.pending.items() if k not in state.in_flight]
                    timeout = max(min(waiting) - now, 0.0) if waiting else None
                self._cond.wait(timeout=timeout)
            return None

    def _send(self, batch: list[_Pending]) -> None:
        result = put_call(self._events, [p.item.entry for p in batch])
        state = self._state
        exhausted: list[_Pending] = []
        with self._cond:
            self.breaker.record(result)
            now = self._clock()
            for pending, outcome in zip(batch, result.outcomes, strict=True):
                key = pending.item.event.event_id
                if key not in state.in_flight:
                    continue  # abandoned by a flush deadline: the outbox has it already
                state.in_flight.discard(key)
                if outcome is None:
                    del state.pending[key]
                    state.counters.published += 1
                    continue
                pending.attempts += 1
                pending.last_error = f"{outcome.code}: {outcome.message}"
                if outcome.retryable and pending.attempts < self._max_attempts:
                    pending.not_before = now + self._backoff.delay(pending.attempts, self._rng)
                    state.counters.retried += 1
                    logger.debug(
                        "status event retry scheduled",
                        extra={"jobId": pending.item.job_id, "eventId": key, "error": pending.last_error},
                    )
                else:
                    del state.pending[key]
                    exhausted.append(pending)
            if exhausted:
                state.outbox_busy += 1
            self._cond.notify_all()
        if exhausted:
            try:
                self._give_up(exhausted, "attempts exhausted or permanent error")
            finally:
                with self._cond:
                    state.outbox_busy -= 1
                    self._cond.notify_all()

    def _give_up(self, items: list[_Pending], reason: str) -> None:
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
        for pending in items:
            entry = pending.item.entry
            outbox_error = refused.get(id(entry))
            logger.error(
                "status event not delivered to EventBridge"
                + (
                    "; outbox refused it too, this line is the only record"
                    if outbox_error
                    else "; sent to outbox"
                ),
                extra={
                    "jobId": pending.item.job_id,
                    "eventId": pending.item.event.event_id,
                    "status": pending.item.event.status.value,
                    "reason": reason,
                    "lastError": pending.last_error,
                    "attempts": pending.attempts,
                    "fallback": "none" if outbox_error else "outbox",
                    "outboxError": outbox_error,
                    "entry": dict(entry),
                },
            )
