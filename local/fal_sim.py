"""A simulated Fal queue behind the same `FalGateway` port FalInvokerFn uses with fal.ai.

Each submitted request gets its fate when it is submitted: how long it takes (the configured
latency, ±50 %, the first fifth of it waiting in the queue) and whether it fails (with the
configured probability). `status` and `result` then answer as Fal's queue API does.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from producers.invoker.fal import FalError, FalState, FalStatus, error_for_status

QUEUED_SHARE: Final = 0.2  # the part of a request's time spent IN_QUEUE
UNKNOWN_REQUEST: Final = 404
FAILED_RESULT: Final = 422  # what Fal answers for the result of an app that raised


@dataclass(frozen=True)
class _Request:
    model: str
    arguments: dict[str, Any]
    submitted: float
    duration: float
    fails: bool


class SimulatedFal:
    """An in-memory `FalGateway`: configurable latency and failure rate, thread-safe."""

    def __init__(
        self,
        latency: float = 2.0,
        failure_rate: float = 0.1,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if latency < 0:
            raise ValueError("latency must not be negative")
        self.latency = latency
        self.failure_rate = failure_rate
        self._rng = rng or random.Random()
        self._clock = clock
        self._requests: dict[str, _Request] = {}
        self._lock = threading.Lock()

    def submit(self, model: str, arguments: Mapping[str, Any]) -> str:
        """Enqueue a request; its id."""
        request_id = str(uuid.uuid4())
        with self._lock:
            self._requests[request_id] = _Request(
                model=model,
                arguments=dict(arguments),
                submitted=self._clock(),
                duration=self.latency * self._rng.uniform(0.5, 1.5),
                fails=self._rng.random() < self.failure_rate,
            )
        return request_id

    def _request(self, model: str, request_id: str) -> _Request:
        with self._lock:
            request = self._requests.get(request_id)
        if request is None or request.model != model:
            raise error_for_status(UNKNOWN_REQUEST, f"request {request_id} not found for {model}")
        return request

    def status(self, model: str, request_id: str) -> FalStatus:
        """IN_QUEUE, then IN_PROGRESS, then COMPLETED (with an error when the request fails)."""
        request = self._request(model, request_id)
        elapsed = self._clock() - request.submitted
        if elapsed < request.duration * QUEUED_SHARE:
            return FalStatus(FalState.IN_QUEUE, queue_position=0)
        if elapsed < request.duration:
            share = (elapsed - request.duration * QUEUED_SHARE) / (request.duration * (1 - QUEUED_SHARE))
            log = {"message": f"simulated generation {share:.0%}", "level": "INFO"}
            return FalStatus(FalState.IN_PROGRESS, logs=[log])
        metrics = {"inference_time": round(request.duration * (1 - QUEUED_SHARE), 3)}
        if request.fails:
            return FalStatus(
                FalState.COMPLETED,
                error="simulated failure (jobstatus local --fal-failure-rate)",
                error_type="SimulatedFailure",
                metrics=metrics,
            )
        return FalStatus(FalState.COMPLETED, metrics=metrics)

    def result(self, model: str, request_id: str) -> dict[str, Any]:
        """The output of a finished request: a video URL and metadata, as Kling answers."""
        request = self._request(model, request_id)
        if self._clock() - request.submitted < request.duration:
            raise error_for_status(400, f"request {request_id} is still in progress")
        if request.fails:
            raise FalError(
                "FAL_REJECTED",
                "simulated failure (jobstatus local --fal-failure-rate)",
                retryable=False,
                status_code=FAILED_RESULT,
            )
        return {
            "video": {
                "url": f"https://fal.media/files/local/{request_id}.mp4",
                "content_type": "video/mp4",
                "file_name": f"{request_id}.mp4",
                "file_size": 1_048_576,
            },
            "seed": self._rng.randrange(2**31),
        }


def install_simulated_fal(latency: float, failure_rate: float) -> tuple[str, Callable[[], None]]:
    """Make FalInvokerFn use a `SimulatedFal`; what was installed, and how to undo it.

    Through FalInvokerFn's own seam (`use_fal_gateway`): its next cold start builds the same
    runner (the same settings and AWS clients) on the simulated gateway, and the handler and
    its decorators run unchanged.
    """
    from producers.invoker.handler import use_fal_gateway

    use_fal_gateway(SimulatedFal(latency, failure_rate))

    def uninstall() -> None:
        use_fal_gateway(None)

    return f"simulated (latency {latency:g}s, failure rate {failure_rate:.0%})", uninstall
