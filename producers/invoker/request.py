"""A `VideoGenerationRequested` event made a job to run: who, which job, what to run on Fal.

Parsed with the contract's model (`jobstatus.requests`). A detail that names no job is a
`BadRecord`; one refused only in its model, input or an unknown key still names its job, which
then fails (`INVALID_INPUT`) instead of running.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from jobstatus.errors import validation_errors, validation_summary
from jobstatus.events import REQUEST_DETAIL_TYPE, format_timestamp, parse_timestamp, utc_now
from jobstatus.requests import NAMING_FIELDS, VideoGenerationRequested
from producers.outside import changes_for_log, request_field
from producers.publishing.entries import JobRef

logger = Logger(child=True)


class BadRecord(ValueError):
    """A record that is not a usable VideoGenerationRequested: no job can even be named."""


@dataclass(frozen=True, slots=True)
class Job:
    """A request made concrete: who, which job, and what to run."""

    ref: JobRef
    model: Any
    arguments: Any
    request: dict[str, Any] | None = None  # the events' `request` ({model, input}, made storable)
    problem: str | None = None  # why the contract refuses its model or input: it fails, never runs

    @property
    def key(self) -> dict[str, str]:
        """The idempotency data: the jobId alone."""
        return {"jobId": self.ref.job_id}


def job_id_for(envelope_id: str) -> str:
    """A UUID4 for a request that names no job, derived from the event id so that a redelivery
    of the same event names the same job (a random one would submit it to Fal twice)."""
    digest = hashlib.sha256(envelope_id.encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def parse_request(event: Mapping[str, Any], now: Callable[[], str] = utc_now) -> Job:
    """The job an EventBridge `VideoGenerationRequested` event asks for; `BadRecord` if none.

    A detail the contract refuses only in `model`, `input` or an unknown key still names its
    job: that job fails (`INVALID_INPUT`) instead of running.
    """
    if event.get("detail-type") != REQUEST_DETAIL_TYPE:
        raise BadRecord(f"detail-type is {event.get('detail-type')!r}, not {REQUEST_DETAIL_TYPE}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadRecord("the event has no detail object")
    problem: str | None = None
    model: Any
    arguments: Any
    webhook: tuple[Any, Any]
    try:
        request = VideoGenerationRequested.model_validate(detail)
        job_id, user_id, created_at = request.job_id, request.user_id, request.created_at
        model, arguments = request.model, request.input
        webhook = (request.webhook, request.webhook_events)
    except ValidationError as error:
        naming = [name for name, _ in validation_errors(error) if name.split(".")[0] in NAMING_FIELDS]
        if naming or "userId" not in detail:
            raise BadRecord(f"the detail names no valid job: {error}") from error
        job_id, user_id, created_at = detail.get("jobId"), detail["userId"], detail.get("createdAt")
        model, arguments = detail.get("model"), detail.get("input")
        webhook = (detail.get("webhook"), detail.get("webhookEvents"))
        problem = validation_summary(error)
    envelope_id = str(event.get("id") or "")
    if job_id is None and not envelope_id:
        raise BadRecord("the request has neither a jobId nor an event id to derive one from")
    job_id = job_id or job_id_for(envelope_id)
    if created_at is not None:
        try:
            created_at = format_timestamp(parse_timestamp(created_at))
        except ValueError:
            logger.warning("createdAt unreadable; using the invoker's clock", extra={"jobId": job_id})
            created_at = None
    return Job(
        JobRef(job_id, user_id, created_at or now()),
        model,
        arguments,
        request_of(job_id, model, arguments, *webhook),
        problem,
    )


def request_of(
    job_id: str, model: Any, arguments: Any, webhook: Any = None, webhook_events: Any = None
) -> dict[str, Any] | None:
    """The `request` every event of the job carries (DESIGN §2), logged when made storable or left out."""
    made = request_field(model, arguments, webhook, webhook_events)
    if made.changes:
        logger.warning(
            "the job's input made storable for the request field",
            extra={"jobId": job_id, **changes_for_log(made.changes)},
        )
    if made.value is None:
        logger.warning(
            "the job's events carry no request field", extra={"jobId": job_id, "reason": made.problem}
        )
    return made.value
