"""Fal's calls as FalInvokerFn makes them: retried with backoff, each cut off at the deadline.

The one thing to know: a call runs on a worker thread so that a hung Fal cannot carry the
invocation past its deadline (`DeadlineReached` is raised instead, the call is abandoned).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aws_lambda_powertools import Logger

from producers.invoker.fal import FalError, FalGateway, FalState, FalStatus
from producers.publishing.putevents import Backoff

logger = Logger(child=True)

FAL_RESULT_ERROR: Final = "FAL_RESULT_ERROR"

T = TypeVar("T")


class DeadlineReached(Exception):
    """The wait on Fal ran into the function's deadline."""


@dataclass
class RetryingFal:
    """A `FalGateway` whose calls take a deadline (a `clock()` value) and retry what may succeed."""

    fal: FalGateway
    poll_seconds: float = 2.0
    max_attempts: int = 3
    retry_base_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        # Fal's own retries: exponential with full jitter and no cap (the deadline bounds them).
        self._backoff = Backoff(base_seconds=self.retry_base_seconds, cap_seconds=math.inf)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="fal-call")

    def submit(self, model: str, arguments: Mapping[str, Any], deadline: float) -> str:
        """Enqueue the request; its Fal request id."""
        return self.call(lambda: self.fal.submit(model, dict(arguments)), deadline)

    def result(self, model: str, request_id: str, deadline: float) -> dict[str, Any]:
        """The output of a COMPLETED request."""
        return self.call(lambda: self.fal.result(model, request_id), deadline)

    def wait(self, model: str, request_id: str, deadline: float, submitted: float, job_id: str) -> float:
        """Poll until COMPLETED; the queue wait in ms (from `submitted` to the first poll past IN_QUEUE).

        A request Fal finished with an error is a `FalError` (FAL_RESULT_ERROR, not retryable).
        """
        queue_wait: float | None = None
        while True:
            status: FalStatus = self.call(lambda: self.fal.status(model, request_id), deadline)
            if status.state is not FalState.IN_QUEUE and queue_wait is None:
                queue_wait = round((self.clock() - submitted) * 1000, 3)
            if status.state is FalState.COMPLETED:
                if status.error is not None:
                    kind = f" ({status.error_type})" if status.error_type else ""
                    raise FalError(
                        FAL_RESULT_ERROR, f"Fal finished with an error{kind}: {status.error}", retryable=False
                    )
                return queue_wait or 0.0
            pause = self.poll_seconds
            if self.clock() + pause >= deadline:
                raise DeadlineReached
            logger.debug("Fal status", extra={"jobId": job_id, "state": status.state.value})
            self.sleep(pause)

    def call(self, call: Callable[[], T], deadline: float) -> T:
        """`call` with retries of retryable `FalError`s, each attempt cut off at the deadline."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise DeadlineReached
            # The call's thread logs with this one's thread-local keys (function, jobId).
            future = self._executor.submit(contextvars.copy_context().run, call)
            try:
                return future.result(timeout=remaining)
            except concurrent.futures.TimeoutError as error:
                raise DeadlineReached from error
            except FalError as error:
                pause = self._backoff.delay(attempt, self.rng)
                if not error.retryable or attempt >= self.max_attempts or self.clock() + pause >= deadline:
                    raise
                logger.warning(
                    "Fal call failed; retrying", extra={"code": error.code, "error": error.message}
                )
                self.sleep(pause)
