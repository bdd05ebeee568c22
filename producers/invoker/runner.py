"""FalInvokerFn's job run: QUEUED, submit to Fal, PROCESSING, poll, then COMPLETED or FAILED.

No I/O of its own (Fal, the status publisher and the idempotency store are passed in). The job
and, inside it, the Fal submission are each idempotent on the jobId: a redelivered request never
submits twice, and one of a finished job re-publishes the status entries its outcome recorded
(same eventIds), so events an invocation died before delivering still arrive.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import (
    Status,
    utc_now,
)
from jobstatus.metrics import MetricsSink
from producers.invoker.fal import FalError, FalGateway
from producers.invoker.falresult import FAL_RESULT_INVALID, video_output
from producers.invoker.falretry import DeadlineReached, RetryingFal
from producers.invoker.request import Job
from producers.publishing.delivery import FlushReport
from producers.publishing.entries import InvalidStatusEvent, JobRef, StatusEntry, status_entry_from
from producers.publishing.publisher import StatusPublisher

logger = Logger(child=True)

INVALID_INPUT: Final = "INVALID_INPUT"
DEADLINE_EXCEEDED: Final = "DEADLINE_EXCEEDED"
JOB_KEY_PREFIX: Final = "fal-invoker.job"
SUBMIT_KEY_PREFIX: Final = "fal-invoker.submit"


@dataclass
class RunnerConfig:
    """The invoker's tunables (from `ProducerSettings`)."""

    poll_seconds: float = 2.0
    max_attempts: int = 3
    retry_base_seconds: float = 1.0
    deadline_margin_seconds: float = 20.0
    flush_seconds: float = 0.05
    flush_after_response_seconds: float = 0.5
    idempotency_expiry_seconds: int = 2 * 24 * 3600


@dataclass
class JobRunner:
    """Runs jobs on Fal and publishes their statuses; one per process, reused across invocations."""

    fal: FalGateway
    publisher: StatusPublisher
    persistence_job: BasePersistenceLayer
    persistence_submit: BasePersistenceLayer
    metrics: MetricsSink | None = None
    config: RunnerConfig = field(default_factory=RunnerConfig)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._fal = RetryingFal(
            self.fal,
            poll_seconds=self.config.poll_seconds,
            max_attempts=self.config.max_attempts,
            retry_base_seconds=self.config.retry_base_seconds,
            clock=self.clock,
            sleep=self.sleep,
            rng=self.rng,
        )
        expiry = self.config.idempotency_expiry_seconds
        self._job_config = IdempotencyConfig(event_key_jmespath="jobId", expires_after_seconds=expiry)
        self._submit_config = IdempotencyConfig(event_key_jmespath="jobId", expires_after_seconds=expiry)
        self._run_once = idempotent_function(
            self._run,
            data_keyword_argument="key",
            persistence_store=self.persistence_job,
            config=self._job_config,
            key_prefix=JOB_KEY_PREFIX,
        )
        self._submit_once = idempotent_function(
            self._submit,
            data_keyword_argument="key",
            persistence_store=self.persistence_submit,
            config=self._submit_config,
            key_prefix=SUBMIT_KEY_PREFIX,
        )
        self._local = threading.local()  # the run in progress on this thread (the local stack runs several)

    def handle(self, job: Job, context: LambdaContext) -> dict[str, Any]:
        """Run `job` once; a redelivery of a finished job re-publishes its stored events instead.

        The events are only enqueued: `flush` (at the end of the invocation) delivers them.
        Raises the Powertools idempotency errors (another run of this job is in progress, the
        store is down): the record is then retried later rather than risking a double submission.
        """
        self._job_config.register_lambda_context(context)
        self._submit_config.register_lambda_context(context)
        deadline = (
            self.clock() + context.get_remaining_time_in_millis() / 1000 - self.config.deadline_margin_seconds
        )
        self._local.ran = False
        outcome: dict[str, Any] = self._run_once(key=job.key, job=job, deadline=deadline)
        if not self._local.ran:
            self._republish(job.ref, outcome)
        return outcome

    def flush(self, after_response: bool = False) -> FlushReport:
        """Deliver what was published, within `flush_seconds` (`flush_after_response_seconds`
        when it runs after the response); the rest goes to the outbox."""
        config = self.config
        seconds = config.flush_after_response_seconds if after_response else config.flush_seconds
        return self.publisher.flush(self.clock() + seconds)

    def _republish(self, ref: JobRef, outcome: dict[str, Any]) -> None:
        stored = outcome.get("events")
        recorded = stored if isinstance(stored, list) else []
        entries = [status_entry_from(entry) for entry in recorded]
        items = [item for item in entries if item is not None and item.job_id == ref.job_id]
        logger.info(
            "job already ran; its recorded status events are published again",
            extra={"jobId": ref.job_id, "events": len(items), "recorded": len(recorded)},
        )
        for item in items:
            self.publisher.publish(item)

    # -- the job, run once -------------------------------------------------------------------

    def _run(self, key: dict[str, str], job: Job, deadline: float) -> dict[str, Any]:
        self._local.ran = True
        self._local.entries = []
        outcome = self._run_job(job, key, deadline)
        outcome["events"] = [dict(item.entry) for item in self._local.entries]
        return outcome

    def _emit(self, job: Job, status: Status, **details: Any) -> None:
        self._publish(self.publisher.build(job.ref, status, request=job.request, **details))

    def _publish(self, item: StatusEntry) -> None:
        self._local.entries.append(item)
        self.publisher.publish(item)

    def _run_job(self, job: Job, key: dict[str, str], deadline: float) -> dict[str, Any]:
        ref = job.ref
        self._emit(job, Status.QUEUED)
        if job.problem is not None:
            return self._fail(job, FalError(INVALID_INPUT, job.problem, retryable=False))
        model: str = job.model
        try:
            submitted = self._submit_once(key=key, job=job, deadline=deadline)
        except FalError as error:
            return self._fail(job, error)
        except DeadlineReached:
            return self._fail(
                job, FalError(DEADLINE_EXCEEDED, "no time left to submit to Fal", retryable=True)
            )
        request_id, started_at = str(submitted["requestId"]), str(submitted["startedAt"])
        submitted_clock = self.clock()
        logger.info(
            "submitted to Fal", extra={"jobId": ref.job_id, "falRequestId": request_id, "model": model}
        )
        self._emit(job, Status.PROCESSING, started_at=started_at, result={"falRequestId": request_id})
        try:
            queue_wait = self._fal.wait(model, request_id, deadline, submitted_clock, ref.job_id)
            result = self._fal.result(model, request_id, deadline)
        except FalError as error:
            return self._fail(job, error, started_at, request_id)
        except DeadlineReached:
            message = f"Fal request {request_id} not finished before the function's deadline"
            return self._fail(
                job, FalError(DEADLINE_EXCEEDED, message, retryable=True), started_at, request_id
            )
        latency_ms = round((self.clock() - submitted_clock) * 1000, 3)
        if self.metrics is not None:
            self.metrics.add_metric("FalLatency", MetricUnit.Milliseconds, latency_ms)
        logger.info(
            "Fal finished",
            extra={"jobId": ref.job_id, "falRequestId": request_id, "falLatencyMs": latency_ms},
        )
        return self._complete(
            job, result, request_id, started_at, {"falLatencyMs": latency_ms, "queueWaitMs": queue_wait}
        )

    def _submit(self, key: dict[str, str], job: Job, deadline: float) -> dict[str, str]:
        started_at = utc_now()
        request_id = self._fal.submit(str(job.model), job.arguments, deadline)
        return {"requestId": request_id, "startedAt": started_at}

    # -- the outcome -------------------------------------------------------------------------

    def _complete(
        self, job: Job, result: dict[str, Any], request_id: str, started_at: str, metrics: dict[str, float]
    ) -> dict[str, Any]:
        ref = job.ref
        try:
            output = video_output(result, request_id, ref.job_id)
        except FalError as unusable:
            return self._fail(job, unusable, started_at, request_id)
        try:
            item = self.publisher.build(
                ref,
                Status.COMPLETED,
                started_at=started_at,
                output_url=output.output_url,
                result=output.result,
                metrics=metrics,
                request=job.request,
            )
        except InvalidStatusEvent as invalid:
            message = f"the Fal result cannot be published: {invalid}"
            return self._fail(
                job, FalError(FAL_RESULT_INVALID, message, retryable=False), started_at, request_id
            )
        self._publish(item)
        return {"jobId": ref.job_id, "status": Status.COMPLETED.value, "falRequestId": request_id}

    def _fail(
        self, job: Job, error: FalError, started_at: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        ref = job.ref
        logger.warning(
            "job failed",
            extra={
                "jobId": ref.job_id,
                "code": error.code,
                "error": error.message,
                "retryable": error.retryable,
            },
        )
        self._emit(
            job,
            Status.FAILED,
            started_at=started_at,
            result={"falRequestId": request_id} if request_id else None,
            error={"code": error.code, "message": error.message, "retryable": error.retryable},
        )
        return {"jobId": ref.job_id, "status": Status.FAILED.value, "code": error.code}
