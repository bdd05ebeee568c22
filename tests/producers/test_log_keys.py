"""Each log line names the function that wrote it, also from the publisher's background senders.

Powertools' `inject_lambda_context` sets process-wide keys; in the local stack every function
runs in one process, so a sender thread started by FalInvokerFn used to log with whichever
function's context was injected last (`function_name: jobs-dev-get-job` on an invoker line).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import Status
from jobstatus.logkeys import names_its_function
from producers.publishing.breaker import CircuitBreaker
from producers.publishing.entries import JobRef
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff
from tests.producers.fakes import FakeEvents, FakeOutbox, throttled

pytestmark = pytest.mark.unit

JOB = JobRef("job-1", "user-1", "2026-11-22T07:20:31.123Z")
logger = Logger()


@dataclass
class Context:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def context(name: str, request_id: str) -> LambdaContext:
    return cast(LambdaContext, Context(name, request_id))


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The service's JSON log lines, as Lambda would print them."""
    handler = logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        yield lambda: [json.loads(line) for line in output.getvalue().splitlines()]
    finally:
        handler.setStream(previous)
        logger.clear_state()


def test_a_sender_line_names_the_function_that_published_not_the_one_injected_last(
    lines: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given FalInvokerFn publishing while EventBridge hangs, then throttles
    called, release = threading.Event(), threading.Event()

    def hang_then_throttle(call_no: int, entries: list[dict[str, Any]]) -> Exception:
        called.set()
        release.wait(5)
        return throttled()

    publisher = StatusPublisher(
        FakeEvents(script=hang_then_throttle),
        FakeOutbox(),
        bus_name="jobs-test",
        source="jobs.fal-invoker",
        backoff=Backoff(base_seconds=0.001, cap_seconds=0.005),
        max_attempts=1,
        senders=1,
        breaker=CircuitBreaker(failures_to_open=1),
    )

    @logger.inject_lambda_context
    @names_its_function
    def invoker(event: dict[str, Any], context: LambdaContext) -> None:
        publisher.emit(JOB, Status.QUEUED)

    @logger.inject_lambda_context(clear_state=True)
    def get_job(event: dict[str, Any], context: LambdaContext) -> None:
        logger.append_keys(jobId="job-2")  # as GetJobFn names the job it reads
        logger.info("written by get-job")

    try:
        invoker({}, context("jobs-dev-fal-invoker", "req-invoker"))
        assert called.wait(5)
        # When another function's context is injected in the same process before the sender logs
        worker = threading.Thread(target=get_job, args=({}, context("jobs-dev-get-job", "req-get")))
        worker.start()
        worker.join(5)
        release.set()
        publisher.flush(time.monotonic() + 5)
    finally:
        release.set()
        publisher.close()

    # Then the sender's lines name FalInvokerFn and its invocation
    written = {line["message"].split(";")[0]: line for line in lines()}
    undelivered = written["status event not delivered to EventBridge"]
    opened = written["status publisher circuit breaker closed -> open"]
    for line in (undelivered, opened):
        assert line["function_name"] == "jobs-dev-fal-invoker"
        assert line["function_arn"].endswith(":function:jobs-dev-fal-invoker")
        assert line["function_request_id"] == "req-invoker"
    # And jobId stays on the job's line, never borrowed from GetJobFn's
    assert undelivered["jobId"] == "job-1"
    assert "jobId" not in opened
    assert written["written by get-job"]["function_name"] == "jobs-dev-get-job"
    assert written["written by get-job"]["jobId"] == "job-2"


def video_requested(job_id: str) -> dict[str, Any]:
    """An InvokerQueue record of one VideoGenerationRequested event."""
    detail = {
        "jobId": job_id,
        "userId": "user-1",
        "createdAt": "2026-11-22T07:20:31.123Z",
        "model": "fal-ai/kling-video/v2/master/text-to-video",
        "input": {"prompt": "a rabbit"},
    }
    body = {
        "id": "evt-1",
        "detail-type": "VideoGenerationRequested",
        "source": "jobs.submit",
        "detail": detail,
    }
    return {"Records": [{"messageId": "m-1", "body": json.dumps(body)}]}


@dataclass
class LoggingRunner:
    """A job runner that logs during the job, while another thread logs too."""

    metrics: Any = None

    def handle(self, job: Any, context: LambdaContext) -> dict[str, Any]:
        logger.info("inside the job")
        elsewhere = threading.Thread(target=logger.info, args=("another thread, meanwhile",))
        elsewhere.start()
        elsewhere.join(5)
        return {"jobId": job.ref.job_id, "status": "COMPLETED"}

    def flush(self, after_response: bool = False) -> Any:
        return None


def test_the_invokers_job_id_is_on_its_job_lines_only(lines: Callable[[], list[dict[str, Any]]]) -> None:
    from producers.invoker.handler import handle
    from producers.publishing.afterresponse import AfterResponse

    # When FalInvokerFn handles a job while another thread of the process logs
    handle(
        video_requested("job-7"),
        context("jobs-dev-fal-invoker", "r"),
        cast(Any, LoggingRunner()),
        None,
        AfterResponse(),
    )
    logger.info("after the job")

    # Then only the job's own lines carry its jobId
    written = {line["message"]: line for line in lines()}
    assert written["inside the job"]["jobId"] == "job-7"
    assert written["job handled"]["jobId"] == "job-7"
    assert "jobId" not in written["another thread, meanwhile"]
    assert "jobId" not in written["after the job"]


def test_a_fal_call_logs_with_the_calling_threads_function_and_job(
    lines: Callable[[], list[dict[str, Any]]],
) -> None:
    from jobstatus.logkeys import append_thread_keys, remove_thread_keys
    from producers.invoker.falretry import RetryingFal

    class LoggingFal:
        def submit(self, model: str, arguments: Any) -> str:
            # another function's context is injected meanwhile (process-wide)
            logger.append_keys(function_name="jobs-dev-get-job", function_request_id="req-get")
            logger.info("Fal called", extra={"calledOn": threading.current_thread().name})
            return "req-1"

    fal = RetryingFal(cast(Any, LoggingFal()))

    @logger.inject_lambda_context
    @names_its_function
    def invoker(event: dict[str, Any], context: LambdaContext) -> None:
        append_thread_keys(jobId="job-3")
        try:
            fal.submit("m", {}, time.monotonic() + 5)
        finally:
            remove_thread_keys(["jobId"])

    invoker({}, context("jobs-dev-fal-invoker", "req-3"))

    line = next(line for line in lines() if line["message"] == "Fal called")
    assert line["calledOn"].startswith("fal-call")
    assert (line["function_name"], line["function_request_id"], line["jobId"]) == (
        "jobs-dev-fal-invoker",
        "req-3",
        "job-3",
    )
