"""SubmitJobFn's rules: a `POST /v1/jobs` body made a valid submission and its two entries, or refused.

Pure: no AWS calls, no Powertools. Every refusal is an `HttpError` (400 with the DESIGN §4 error
body and field errors; never the resolver's 422) that the handler answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from jobstatus.errors import validation_errors
from jobstatus.events import (
    EVENTBRIDGE_MAX_ENTRY_BYTES,
    MAX_INPUT_BYTES,
    REQUEST_DETAIL_TYPE,
    SOURCE_SUBMIT,
    Status,
)
from jobstatus.http import HttpError
from jobstatus.requests import VideoGenerationRequested
from producers.outside import json_size, request_field
from producers.publishing.entries import InvalidStatusEvent, JobRef, StatusEntry
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Entry, entry_size
from producers.submit.strictjson import NotStrictJson, loads_strict

IDEMPOTENCY_KEY_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
# No acceptable body is larger than the event it becomes (input is at most 16 KiB as JSON;
# this leaves room for whitespace and escapes) and none is read past it.
MAX_BODY_BYTES: Final = EVENTBRIDGE_MAX_ENTRY_BYTES


class SubmitJobRequest(BaseModel):
    """The body of `POST /v1/jobs`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=256)
    input: dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class Submission:
    """A valid request, and the `request` field its events carry (input made storable)."""

    request: SubmitJobRequest
    job_request: dict[str, Any]
    changes: list[str]  # what making the input storable changed


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The two entries of one submission: QUEUED and VideoGenerationRequested."""

    queued: StatusEntry
    requested: Entry


def bad_request(code: str, message: str, field: str | None = None, problem: str | None = None) -> HttpError:
    """A 400 with `code`, naming `field` (and what is wrong with it) when given."""
    fields = [{"field": field, "message": problem or message}] if field else None
    return HttpError(HTTPStatus.BAD_REQUEST, code, message, fields=fields)


def too_large(message: str, field: str) -> HttpError:
    """400 `INPUT_TOO_LARGE`."""
    return bad_request("INPUT_TOO_LARGE", message, field, "too large")


def parse_body(text: str) -> SubmitJobRequest:
    """The body as a request; 400 when too large, not strict JSON, or its fields are wrong."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise too_large(f"the body is over {MAX_BODY_BYTES} bytes", "body")
    try:
        payload = loads_strict(text)
    except NotStrictJson as error:
        raise bad_request(
            "INVALID_REQUEST", "the body must be a strict JSON object", error.field, error.message
        ) from error
    try:
        return SubmitJobRequest.model_validate(payload)
    except ValidationError as error:
        fields = [
            {"field": name, "message": message} for name, message in validation_errors(error, root="body")
        ]
        raise HttpError(
            HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", "the request body is invalid", fields=fields
        ) from error


def parse_submission(
    allowed_models: tuple[str, ...], body: str | None, idempotency_key: str | None
) -> Submission:
    """The validated request; 400 saying what is wrong with it otherwise."""
    request = parse_body(body or "")
    if request.model not in allowed_models:
        allowed = ", ".join(allowed_models) or "none"
        message = f"model {request.model!r} is not allowed; allowed models: {allowed}"
        raise bad_request("MODEL_NOT_ALLOWED", message, "model", "not in the allowed models")
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        raise bad_request("INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-255 visible ASCII characters")
    made = request_field(request.model, request.input)
    size = max(json_size(request.input), made.input_bytes)
    if size > MAX_INPUT_BYTES:
        raise too_large(f"input is {size} bytes as JSON; at most {MAX_INPUT_BYTES} allowed", "input")
    if made.value is None:  # the event model refuses what making it storable did not repair
        problem = made.problem or "input cannot be recorded"
        raise bad_request("INVALID_REQUEST", problem, "input")
    return Submission(request, made.value, made.changes)


def build_outgoing(
    publisher: StatusPublisher, bus_name: str, job: JobRef, submission: Submission
) -> Outgoing:
    """The entries announcing `job`; 400 when they cannot be sent."""
    request = submission.request
    try:
        queued = publisher.build(
            job, Status.QUEUED, occurred_at=job.created_at, request=submission.job_request
        )
    except InvalidStatusEvent as invalid:  # only a user id over the contract's length gets here
        raise bad_request("INVALID_REQUEST", str(invalid)) from invalid
    detail = VideoGenerationRequested(
        job_id=job.job_id,
        user_id=job.user_id,
        created_at=job.created_at,
        model=request.model,
        input=request.input,
    )
    requested: Entry = {
        "Source": SOURCE_SUBMIT,
        "DetailType": REQUEST_DETAIL_TYPE,
        "Detail": detail.detail_json(),
        "EventBusName": bus_name,
    }
    if entry_size(requested) > EVENTBRIDGE_MAX_ENTRY_BYTES:
        raise too_large(f"the request is over EventBridge's {EVENTBRIDGE_MAX_ENTRY_BYTES} bytes", "input")
    return Outgoing(queued, requested)


def accepted(job: JobRef) -> dict[str, str]:
    """The 202 body (also what Powertools stores for a key, and replays)."""
    return {"jobId": job.job_id, "status": Status.QUEUED.value, "createdAt": job.created_at}
