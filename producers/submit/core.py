"""SubmitJobFn's rules: a `POST /v1/jobs` body made a valid submission and its two entries, or refused.

Pure: no AWS calls, no Powertools. Every refusal is an `HttpError` (400 with the DESIGN §4 error
body and field errors; never the resolver's 422) that the handler answers. A `webhook` is checked
with `webhooks.ssrf` (stdlib only, DESIGN §4c) through the resolver it is given.
"""

from __future__ import annotations

import json
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
from webhooks.ssrf import Resolver, ResolverUnavailable, WebhookRefused, check_webhook_url, system_resolver

IDEMPOTENCY_KEY_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
# No acceptable body is larger than the event it becomes (input is at most 16 KiB as JSON;
# this leaves room for whitespace and escapes) and none is read past it.
MAX_BODY_BYTES: Final = EVENTBRIDGE_MAX_ENTRY_BYTES
WEBHOOK_STATUSES: Final = tuple(status.value for status in Status)
DEFAULT_WEBHOOK_EVENTS: Final = (Status.COMPLETED.value, Status.FAILED.value)
# A resolver that cannot answer for now says nothing about the URL: the client retries.
DNS_RETRY_AFTER_SECONDS: Final = 2


class SubmitJobRequest(BaseModel):
    """The body of `POST /v1/jobs`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=256)
    input: dict[str, JsonValue]
    # Any JSON: what is wrong with them is INVALID_WEBHOOK (`parse_webhook`), not INVALID_REQUEST.
    webhook: JsonValue = None
    webhook_events: JsonValue = Field(default=None, alias="webhookEvents")


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """How a submitted webhook URL is checked: the resolver, and whether local URLs are allowed."""

    resolver: Resolver = system_resolver
    allow_local: bool = False


@dataclass(frozen=True, slots=True)
class Webhook:
    """A checked `webhook` and the statuses it subscribes to (known, deduplicated, in status order)."""

    url: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Submission:
    """A valid request, and the `request` field its events carry (input made storable)."""

    request: SubmitJobRequest
    job_request: dict[str, Any]
    changes: list[str]  # what making the input storable changed
    webhook: Webhook | None = None

    def payload(self) -> dict[str, Any]:
        """What an Idempotency-Key binds: model, input and, when given, the webhook fields."""
        payload: dict[str, Any] = {"model": self.request.model, "input": self.request.input}
        if self.webhook is not None:
            payload["webhook"] = self.webhook.url
            payload["webhookEvents"] = list(self.webhook.events)
        return payload


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


def invalid_webhook(message: str, field: str) -> HttpError:
    """400 `INVALID_WEBHOOK` with the reason."""
    return bad_request("INVALID_WEBHOOK", message, field)


def parse_webhook_events(value: JsonValue) -> tuple[str, ...]:
    """The subscribed statuses: default COMPLETED and FAILED; 400 unless a non-empty list of known ones."""
    if value is None:
        return DEFAULT_WEBHOOK_EVENTS
    known = ", ".join(WEBHOOK_STATUSES)
    if not isinstance(value, list) or not value:
        raise invalid_webhook(f"webhookEvents must be a non-empty list of: {known}", "webhookEvents")
    unknown = [item for item in value if item not in WEBHOOK_STATUSES]
    if unknown:
        raise invalid_webhook(
            f"webhookEvents holds {json.dumps(unknown[0])}, not a status; known: {known}", "webhookEvents"
        )
    return tuple(status for status in WEBHOOK_STATUSES if status in value)


def parse_webhook(request: SubmitJobRequest, policy: WebhookPolicy) -> Webhook | None:
    """The checked webhook (DESIGN §4c), None without one; 400 `INVALID_WEBHOOK` with the reason.

    A host that does not resolve, or resolves to a refused address, is refused (400); a resolver
    that cannot answer for now (`EAI_AGAIN`) is 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
    """
    if request.webhook is None:
        if request.webhook_events is not None:
            raise invalid_webhook("webhookEvents is given without a webhook", "webhookEvents")
        return None
    events = parse_webhook_events(request.webhook_events)
    if not isinstance(request.webhook, str):
        raise invalid_webhook("webhook must be a string (an https URL)", "webhook")
    try:
        checked = check_webhook_url(request.webhook, policy.resolver, policy.allow_local)
    except ResolverUnavailable as unavailable:
        raise HttpError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            f"the webhook could not be checked now ({unavailable.reason}); try again",
            headers={"Retry-After": str(DNS_RETRY_AFTER_SECONDS)},
        ) from unavailable
    except WebhookRefused as refused:
        raise invalid_webhook(refused.reason, "webhook") from refused
    return Webhook(checked.url, events)


def parse_submission(
    allowed_models: tuple[str, ...],
    body: str | None,
    idempotency_key: str | None,
    policy: WebhookPolicy | None = None,
) -> Submission:
    """The validated request; 400 saying what is wrong with it otherwise.

    The webhook is checked last: its DNS lookup is the only slow check.
    """
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
    webhook = parse_webhook(request, policy or WebhookPolicy())
    if webhook is not None:
        made = request_field(request.model, request.input, webhook.url, webhook.events)
    if made.value is None:  # a URL the checks passed but the event's pattern refuses
        raise invalid_webhook(made.problem or "webhook cannot be recorded", "webhook")
    return Submission(request, made.value, made.changes, webhook)


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
        webhook=submission.webhook.url if submission.webhook else None,
        webhook_events=list(submission.webhook.events) if submission.webhook else None,
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
