"""The status publisher's circuit breaker: no PutEvents calls while EventBridge keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from aws_lambda_powertools import Logger

from producers.publishing.putevents import CallResult

logger = Logger(child=True)


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
