"""Submits a job: one new job per request, or the one its Idempotency-Key already names.

`Idempotency-Key` (per user, kept `JOB_TTL_DAYS` days) reserves the job's jobId and createdAt in
the idempotency table (`producers.submit.keys`) before publishing, under Powertools Idempotency:
a repeat gets the stored 202, another body with the same key 400, a repeat while the first runs
409; a 503 stores no answer, so its retry reuses the reserved jobId and createdAt. One PutEvents
carries QUEUED and the request; if the request fails the answer is 503 (`NotQueued`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from botocore.exceptions import BotoCoreError, ClientError

from jobstatus.events import utc_now
from jobstatus.http import HttpError
from jobstatus.logkeys import append_thread_keys
from jobstatus.metrics import MetricsSink
from producers.outside import changes_for_log
from producers.publishing.entries import JobRef
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff, EventsPort, put_with_retries
from producers.settings import ProducerSettings
from producers.submit.core import (
    Outgoing,
    Submission,
    WebhookPolicy,
    accepted,
    build_outgoing,
    parse_submission,
)
from producers.submit.keys import JobKeys, KeyReused, Reservation, payload_hash
from webhooks.ssrf import Resolver, system_resolver

logger = Logger(child=True)

RETRY_AFTER_SECONDS: Final = 2
IN_PROGRESS_RETRY_AFTER_SECONDS: Final = 1
REQUEST_KEY_PREFIX: Final = "submit.request"


@dataclass
class SubmitDeps:
    """What the handler needs; built once per cold start."""

    events: EventsPort
    publisher: StatusPublisher
    settings: ProducerSettings
    # The Idempotency-Key store; without one, a request carrying a key is refused (500), never
    # silently treated as a new job.
    keys: JobKeys | None = None
    metrics: MetricsSink | None = None
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], str] = utc_now
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.05, cap_seconds=0.2))
    resolver: Resolver = system_resolver  # resolves a webhook's host for the SSRF check


class NotQueued(Exception):
    """The request event could not be put on the bus: the job cannot run (503, nothing stored)."""


def publish_job(deps: SubmitDeps, outgoing: Outgoing) -> None:
    """Put QUEUED and the request on the bus in one PutEvents; `NotQueued` if the request fails.

    A QUEUED that alone fails goes to the status publisher (retries, then the outbox).
    """
    queued, requested = outgoing.queued, outgoing.requested
    sent = put_with_retries(
        deps.events,
        [queued.entry, requested],
        deadline=deps.clock() + deps.settings.submit_publish_seconds,
        backoff=deps.backoff,
        clock=deps.clock,
    )
    failed = {id(entry): failure for entry, failure in sent.failed}
    if id(requested) in failed:
        failure = failed[id(requested)]
        logger.error(
            "VideoGenerationRequested not published; answering 503",
            extra={
                "code": failure.code,
                "error": failure.message,
                "queuedDelivered": id(queued.entry) not in failed,
            },
        )
        raise NotQueued(failure.message)
    if id(queued.entry) in failed:
        logger.warning("QUEUED not published with the request; the status publisher takes it over")
        deps.publisher.publish(queued)
    elif deps.metrics is not None:
        deps.metrics.add_metric("StatusEventsPublished", MetricUnit.Count, 1)


@dataclass
class Submitter:
    """Submits jobs: a new one per request, or the one an Idempotency-Key already names."""

    deps: SubmitDeps
    config: IdempotencyConfig = field(init=False)
    _once: Callable[..., dict[str, str]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        keys = self.deps.keys
        self.config = IdempotencyConfig(
            event_key_jmespath="[userId, idempotencyKey]",
            payload_validation_jmespath="payload",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=keys.expiry_seconds if keys else 3600,
            response_hook=_replayed,
        )
        if keys is not None:
            self._once = idempotent_function(
                self._submit_keyed,
                data_keyword_argument="request",
                persistence_store=keys.persistence,
                config=self.config,
                key_prefix=REQUEST_KEY_PREFIX,
            )

    def submit(self, user_id: str, body: str | None, idempotency_key: str | None) -> dict[str, str]:
        """The 202 body for one `POST /v1/jobs` from `user_id`; `HttpError` when refused."""
        settings = self.deps.settings
        policy = WebhookPolicy(self.deps.resolver, settings.webhooks_allow_local)
        submission = parse_submission(settings.model_allow_list, body, idempotency_key, policy)
        # Everything that can make the request a 400 is checked before the key is taken, so a
        # bad request never binds a key (the sizes do not depend on which jobId/createdAt).
        job = JobRef(str(uuid.uuid4()), user_id, self.deps.now())
        append_thread_keys(jobId=job.job_id)
        outgoing = build_outgoing(self.deps.publisher, self.deps.settings.event_bus_name, job, submission)
        try:
            answer = self._accept(job, submission, outgoing, idempotency_key)
        except Exception as error:
            refusal = refusal_for(error)
            if refusal is None:
                raise
            raise refusal from error
        append_thread_keys(jobId=answer["jobId"])
        if submission.changes:
            logger.warning(
                "the client's input made storable for the request field",
                extra=changes_for_log(submission.changes),
            )
        logger.info("job submitted", extra={"model": submission.request.model})
        # In the contract's order: a replayed answer comes back from the store with keys sorted.
        return {name: answer[name] for name in ("jobId", "status", "createdAt")}

    def _accept(
        self, job: JobRef, submission: Submission, outgoing: Outgoing, idempotency_key: str | None
    ) -> dict[str, str]:
        if idempotency_key is None:
            publish_job(self.deps, outgoing)
            return accepted(job)
        if self._once is None:
            raise RuntimeError("an Idempotency-Key came, but no idempotency store is configured")
        keyed = {
            "userId": job.user_id,
            "idempotencyKey": idempotency_key,
            "payload": submission.payload(),
        }
        return self._once(request=keyed, job=job, parsed=submission)

    def _submit_keyed(self, request: dict[str, Any], job: JobRef, parsed: Submission) -> dict[str, str]:
        # Runs under Powertools' in-progress record; an exception deletes that record (nothing is
        # stored), while the reservation stays, so a retry reuses its jobId and createdAt.
        assert self.deps.keys is not None  # _once exists only with a store
        wanted = Reservation(job.job_id, job.created_at, payload_hash(request["payload"]))
        reserved = self.deps.keys.reserve(job.user_id, request["idempotencyKey"], wanted)
        if reserved != wanted:
            logger.info("retrying a submission whose earlier run failed", extra={"jobId": reserved.job_id})
            job = JobRef(reserved.job_id, job.user_id, reserved.created_at)
        append_thread_keys(jobId=job.job_id)
        # Checked with the same sizes before the reservation: it cannot be refused now.
        outgoing = build_outgoing(self.deps.publisher, self.deps.settings.event_bus_name, job, parsed)
        publish_job(self.deps, outgoing)
        return accepted(job)


UNAVAILABLE_MESSAGE: Final = "the job could not be queued; try again with the same Idempotency-Key"
# What each expected failure of a submission answers: (errors, status, code, message, Retry-After).
REFUSALS: Final[tuple[tuple[tuple[type[Exception], ...], HTTPStatus, str, str, int | None], ...]] = (
    (
        (NotQueued,),
        HTTPStatus.SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        UNAVAILABLE_MESSAGE,
        RETRY_AFTER_SECONDS,
    ),
    (
        (IdempotencyValidationError, KeyReused),
        HTTPStatus.BAD_REQUEST,
        "IDEMPOTENCY_KEY_REUSED",
        "this Idempotency-Key was already used with another request body; use a new key",
        None,
    ),
    (
        (IdempotencyAlreadyInProgressError,),
        HTTPStatus.CONFLICT,
        "REQUEST_IN_PROGRESS",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        IN_PROGRESS_RETRY_AFTER_SECONDS,
    ),
    (
        (IdempotencyPersistenceLayerError, ClientError, BotoCoreError),
        HTTPStatus.SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        UNAVAILABLE_MESSAGE,
        RETRY_AFTER_SECONDS,
    ),
)


def refusal_for(error: Exception) -> HttpError | None:
    """The answer to an expected failure of a submission, or None for a bug (a 500)."""
    for errors, status, code, message, retry_after in REFUSALS:
        if isinstance(error, errors):
            if status == HTTPStatus.SERVICE_UNAVAILABLE and not isinstance(error, NotQueued):
                logger.error("the idempotency store failed; answering 503", exc_info=error)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return HttpError(status, code, message, headers=headers)
    return None


def _replayed(response: Any, idempotent_data: DataRecord) -> Any:
    logger.info("repeated Idempotency-Key: answering with the stored result")
    return response
