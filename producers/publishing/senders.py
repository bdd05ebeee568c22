"""The status publisher's background senders: PutEvents calls, several in flight, retries scheduled.

They share the publisher's `DeliveryState` under its lock (`cond`); an entry that runs out of
attempts or fails for good is handed back through `give_up` (the outbox).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from aws_lambda_powertools import Logger

from jobstatus.logkeys import log_this_thread_as
from producers.publishing.breaker import CircuitBreaker
from producers.publishing.delivery import DeliveryState, Pending
from producers.publishing.putevents import Backoff, EventsPort, chunks, put_call

logger = Logger(child=True)


class Senders:
    """A pool of daemon threads sending the pending entries of one publisher."""

    def __init__(
        self,
        *,
        events: EventsPort,
        state: DeliveryState,
        cond: threading.Condition,
        breaker: CircuitBreaker,
        backoff: Backoff,
        max_attempts: int,
        rng: random.Random,
        size: int,
        give_up: Callable[[list[Pending], str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._state = state
        self._cond = cond
        self.breaker = breaker
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._rng = rng
        self._senders = max(1, size)
        self._give_up = give_up
        self._clock = clock
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def stop(self) -> list[threading.Thread]:
        """Ask every sender to stop (call it holding the lock); the threads to join."""
        self._stopping = True
        self._cond.notify_all()
        threads, self._threads = self._threads, []
        return threads

    def ensure(self) -> None:
        """Start senders up to the pool's size (call it holding the lock)."""
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
            log_this_thread_as(batch[0].log_keys)  # the lines on this thread name the function that published
            try:
                self._send(batch)
            except Exception:  # the sender must outlive any surprise
                logger.exception("status publisher worker error")
                with self._cond:  # give the entries back to the others
                    for pending in batch:
                        self._state.in_flight.discard(pending.item.event.event_id)
                    self._cond.notify_all()

    def _next_batch(self) -> list[Pending] | None:
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

    def _send(self, batch: list[Pending]) -> None:
        result = put_call(self._events, [p.item.entry for p in batch])
        state = self._state
        exhausted: list[Pending] = []
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
