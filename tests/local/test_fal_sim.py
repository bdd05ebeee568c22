"""The simulated Fal: queued, then in progress, then completed or failed, as configured."""

from __future__ import annotations

import random

import pytest

from local.fal_sim import SimulatedFal
from producers.invoker.fal import FalError, FalState

pytestmark = pytest.mark.unit
MODEL = "fal-ai/kling-video/v2/master/text-to-video"


def simulated(failure_rate: float, latency: float = 10.0):
    now = [0.0]
    fal = SimulatedFal(latency, failure_rate, rng=random.Random(7), clock=lambda: now[0])
    return fal, now


def test_a_request_goes_through_the_queue_states_to_a_video() -> None:
    fal, now = simulated(failure_rate=0.0)
    request = fal.submit(MODEL, {"prompt": "x"})
    assert fal.status(MODEL, request).state is FalState.IN_QUEUE
    with pytest.raises(FalError):
        fal.result(MODEL, request)
    now[0] = 4.9  # latency 10 s ±50 %: at least 5 s, the first fifth of it queued
    in_progress = fal.status(MODEL, request)
    assert in_progress.state is FalState.IN_PROGRESS and in_progress.logs
    now[0] = 15.0
    done = fal.status(MODEL, request)
    assert done.state is FalState.COMPLETED and done.error is None
    assert fal.result(MODEL, request)["video"]["url"] == f"https://fal.media/files/local/{request}.mp4"


def test_a_failing_request_completes_with_an_error() -> None:
    fal, now = simulated(failure_rate=1.0)
    request = fal.submit(MODEL, {})
    now[0] = 100.0
    status = fal.status(MODEL, request)
    assert status.state is FalState.COMPLETED
    assert status.error and status.error_type == "SimulatedFailure"
    with pytest.raises(FalError) as raised:
        fal.result(MODEL, request)
    assert raised.value.retryable is False


def test_the_failure_rate_is_about_what_was_asked() -> None:
    fal, now = simulated(failure_rate=0.2, latency=0.0)
    requests = [fal.submit(MODEL, {}) for _ in range(500)]
    now[0] = 1.0
    failed = sum(fal.status(MODEL, r).error is not None for r in requests)
    assert 60 <= failed <= 140


def test_unknown_requests_and_other_models_are_404() -> None:
    fal, _ = simulated(failure_rate=0.0)
    request = fal.submit(MODEL, {})
    for model, request_id in [(MODEL, "nope"), ("fal-ai/other", request)]:
        with pytest.raises(FalError) as raised:
            fal.status(model, request_id)
        assert raised.value.status_code == 404


@pytest.mark.parametrize(("latency", "rate"), [(-1.0, 0.1), (1.0, 1.5), (1.0, -0.1)])
def test_bad_settings_are_refused(latency: float, rate: float) -> None:
    with pytest.raises(ValueError):
        SimulatedFal(latency, rate)
