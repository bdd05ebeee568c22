"""SubmitJobFn: `POST /v1/jobs` (DESIGN §4) — validate, then publish QUEUED and the request in one PutEvents.

- The caller is the Cognito `sub` of `requestContext.authorizer.claims` (401 without it).
- `{model, input}` is validated with pydantic: 400 with the field errors in the DESIGN §4 error
  body (never the resolver's 422); a model outside `MODEL_ALLOW_LIST` is 400.
- `Idempotency-Key`: the jobId is a UUID5 of (user, key), so the same key from the same user
  always names the same job, with no storage; FalInvokerFn's idempotency on the jobId then
  keeps a repeated request from running twice.
- One PutEvents carries `JobStatusChanged` (QUEUED) and `VideoGenerationRequested`. If the
  request event cannot be put on the bus (after short retries) the answer is 503 with
  `Retry-After` (the job cannot run; the QUEUED is then dropped too). If only QUEUED fails, the
  answer is still 202 and the status publisher takes it (retries, then the outbox).
- 202 `{"jobId", "status": "QUEUED", "createdAt"}` and `Location: /v1/jobs/{jobId}`.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from jobstatus.events import (
    EVENTBRIDGE_MAX_ENTRY_BYTES,
    REQUEST_DETAIL_TYPE,
    SOURCE_SUBMIT,
    Status,
    utc_now,
)
from producers.publisher import InvalidStatusEvent, JobRef, MetricsPort, SqsOutbox, StatusPublisher
from producers.putevents import Backoff, Entry, EventsPort, entry_size, put_with_retries
from producers.settings import ProducerSettings

logger = Logger()
metrics = Metrics()

# The namespace of jobIds derived from Idempotency-Key (never change it: ids would change).
IDEMPOTENCY_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://deepfoundai.com/jobs/idempotency-key")
IDEMPOTENCY_KEY_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
RETRY_AFTER_SECONDS: Final = 2


class SubmitJobRequest(BaseModel):
    """The body of `POST /v1/jobs`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=256)
    input: dict[str, JsonValue]


@dataclass
class SubmitDeps:
    """What the handler needs; built once per cold start."""

    events: EventsPort
    publisher: StatusPublisher
    settings: ProducerSettings
    metrics: MetricsPort | None = None
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], str] = utc_now
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.05, cap_seconds=0.2))


def job_id_for(user_id: str, idempotency_key: str | None) -> str:
    """The jobId: a UUID5 of (user, key) when a key is given, else a new UUID4."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}\x00{idempotency_key}"))


def error_response(
    status: HTTPStatus,
    code: str,
    message: str,
    *,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    """The DESIGN §4 error body: `{"error": {"code", "message"[, "fields"]}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": error}),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `[{"field": "input.prompt", "message": ...}]`."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def parse_submission(
    settings: ProducerSettings, body: str | None, idempotency_key: str | None
) -> SubmitJobRequest | Response[str]:
    """The validated request, or the 400 answer saying what is wrong with it."""
    try:
        payload = json.loads(body or "")
    except ValueError:
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", "the body must be a JSON object")
    try:
        request = SubmitJobRequest.model_validate(payload)
    except ValidationError as error:
        message = "the request body is invalid"
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", message, fields=field_errors(error))
    if request.model not in settings.model_allow_list:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "MODEL_NOT_ALLOWED",
            f"model {request.model!r} is not allowed",
            fields=[{"field": "model", "message": "not in the allowed models"}],
        )
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        message = "Idempotency-Key must be 1-255 visible ASCII characters"
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY", message)
    return request


def submit_job(
    deps: SubmitDeps, user_id: str, body: str | None, idempotency_key: str | None
) -> Response[str]:
    """The answer to one `POST /v1/jobs` from `user_id`."""
    request = parse_submission(deps.settings, body, idempotency_key)
    if isinstance(request, Response):
        return request
    job = JobRef(job_id_for(user_id, idempotency_key), user_id, deps.now())
    logger.append_keys(jobId=job.job_id)
    try:
        queued = deps.publisher.build(job, Status.QUEUED, occurred_at=job.created_at)
    except InvalidStatusEvent as invalid:  # only a user id over the contract's length gets here
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", str(invalid))
    requested: Entry = {
        "Source": SOURCE_SUBMIT,
        "DetailType": REQUEST_DETAIL_TYPE,
        "Detail": json.dumps(
            {
                "jobId": job.job_id,
                "userId": user_id,
                "createdAt": job.created_at,
                "model": request.model,
                "input": request.input,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ),
        "EventBusName": deps.settings.event_bus_name,
    }
    if entry_size(requested) > EVENTBRIDGE_MAX_ENTRY_BYTES:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "INPUT_TOO_LARGE",
            f"the request is over EventBridge's {EVENTBRIDGE_MAX_ENTRY_BYTES} bytes",
            fields=[{"field": "input", "message": "too large"}],
        )

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
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the job could not be queued; try again with the same Idempotency-Key",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if id(queued.entry) in failed:
        logger.warning("QUEUED not published with the request; the status publisher takes it over")
        deps.publisher.publish(queued)
    elif deps.metrics is not None:
        deps.metrics.add_metric("StatusEventsPublished", MetricUnit.Count, 1)
    logger.info("job submitted", extra={"model": request.model})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"jobId": job.job_id, "status": Status.QUEUED.value, "createdAt": job.created_at}),
        headers={"Location": f"/v1/jobs/{job.job_id}", "Cache-Control": "no-store"},
    )


def build_app(deps: SubmitDeps) -> APIGatewayRestResolver:
    """The resolver with `POST /v1/jobs` and CORS for the configured origins."""
    origins = list(deps.settings.allowed_origins)
    cors = CORSConfig(
        allow_origin=origins[0] if origins else "",
        extra_origins=origins[1:],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Location", "Retry-After"],
        max_age=600,
    )
    app = APIGatewayRestResolver(cors=cors)

    @app.post("/v1/jobs")
    def post_job() -> Response[str]:
        claims = app.current_event.request_context.authorizer.claims
        user_id = claims.get("sub") if isinstance(claims, dict) else None
        if not isinstance(user_id, str) or not user_id:
            return error_response(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", "no authenticated user")
        key = app.current_event.headers.get("Idempotency-Key")  # case-insensitive in Powertools v3
        try:
            return submit_job(deps, user_id, app.current_event.decoded_body, key)
        except Exception:  # a bug of ours: a JSON 500 with the traceback in the log, not a bare 502
            logger.exception("unexpected error")
            return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")

    @app.not_found
    def not_found(_: Exception) -> Response[str]:
        return error_response(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such route")

    return app


def _vary_on_origin(response: dict[str, Any]) -> dict[str, Any]:
    # The CORS answer depends on Origin, so caches must key on it; Powertools never says so.
    if isinstance(response.get("multiValueHeaders"), dict):
        response["multiValueHeaders"]["Vary"] = ["Origin"]
    else:
        response.setdefault("headers", {})["Vary"] = "Origin"
    return response


@dataclass
class Handler:
    """A built resolver and its dependencies."""

    deps: SubmitDeps
    app: APIGatewayRestResolver


def make_handler(deps: SubmitDeps) -> Handler:
    """Bind `deps` to a resolver."""
    return Handler(deps, build_app(deps))


def handle(event: dict[str, Any], context: LambdaContext, handler: Handler) -> dict[str, Any]:
    """Resolve the request, then flush status events (bounded) before answering."""
    try:
        return _vary_on_origin(handler.app.resolve(event, context))
    finally:
        logger.remove_keys(["jobId"])
        handler.deps.publisher.flush(handler.deps.clock() + handler.deps.settings.status_flush_seconds)


@functools.cache
def dependencies() -> Handler:
    """The handler for Lambda, built once per cold start."""
    from producers.aws import events_client, sqs_client

    settings = ProducerSettings()
    events = events_client()
    publisher = StatusPublisher(
        events,
        SqsOutbox(sqs_client(), settings.outbox_queue_url),
        bus_name=settings.event_bus_name,
        source=SOURCE_SUBMIT,
        metrics=metrics,
    )
    return make_handler(SubmitDeps(events=events, publisher=publisher, settings=settings, metrics=metrics))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())
