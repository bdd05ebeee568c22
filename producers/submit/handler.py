"""SubmitJobFn: `POST /v1/jobs` (DESIGN §4) — validate, then publish QUEUED and the request in one PutEvents.

- The caller is the Cognito `sub` of `requestContext.authorizer.claims` (401 without it).
- The body must be strict JSON (`producers.strictjson`): 415 `UNSUPPORTED_MEDIA_TYPE` for a
  Content-Type other than `application/json` (charset utf-8 or none; a missing header is taken
  as JSON); 400 `INVALID_REQUEST` for a body that is not base64 when it says so, not UTF-8, not
  JSON, nested deeper than 64 levels, or holding `NaN`, `Infinity`, a number beyond a double
  (`1e400`) or a lone surrogate. No input gets a 5xx, and only strict JSON goes on the bus.
- `{model, input}` is validated with pydantic: 400 with the field errors in the DESIGN §4 error
  body (never the resolver's 422); a model outside `MODEL_ALLOW_LIST` is 400. `input` is at most
  16 KiB as JSON (the event's `request` limit), else 400 `INPUT_TOO_LARGE`.
- The QUEUED event carries `request: {model, input}`, its input made storable (DESIGN §2: numbers
  DynamoDB cannot hold become strings, empty keys are dropped, levels below 32 are cut; logged);
  `VideoGenerationRequested` carries the input as the client sent it, for Fal.
- `Idempotency-Key` (per user, kept `JOB_TTL_DAYS` days; `producers.jobkeys`): the first request
  reserves the job's jobId and createdAt in the idempotency table before publishing, under
  Powertools Idempotency. A repeat with the same body gets the stored 202 (same jobId, createdAt,
  Location) and publishes nothing; a repeat with another body is 400 `IDEMPOTENCY_KEY_REUSED`;
  a repeat while the first is still running is 409 with `Retry-After: 1`. A 503 stores no
  answer, so a retry runs again, with the reserved jobId and createdAt: every event of the job
  carries the same createdAt (DESIGN §2). Without a key every request is a new job (UUID4).
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
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from jobstatus.errors import validation_errors
from jobstatus.events import (
    EVENTBRIDGE_MAX_ENTRY_BYTES,
    MAX_INPUT_BYTES,
    REQUEST_DETAIL_TYPE,
    SOURCE_SUBMIT,
    Status,
    utc_now,
)
from jobstatus.requests import VideoGenerationRequested
from producers.outside import changes_for_log, json_size, request_field
from producers.publishing.entries import InvalidStatusEvent, JobRef, StatusEntry
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import MetricsSink, StatusPublisher
from producers.publishing.putevents import Backoff, Entry, EventsPort, entry_size, put_with_retries
from producers.settings import ProducerSettings
from producers.submit.keys import JobKeys, KeyReused, Reservation, payload_hash
from producers.submit.strictjson import NotStrictJson, decode_body, loads_strict, media_type_problem

logger = Logger()
metrics = Metrics()

IDEMPOTENCY_KEY_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, no spaces
RETRY_AFTER_SECONDS: Final = 2
IN_PROGRESS_RETRY_AFTER_SECONDS: Final = 1
# No acceptable body is larger than the event it becomes (input is at most 16 KiB as JSON;
# this leaves room for whitespace and escapes) and none is read past it.
MAX_BODY_BYTES: Final = EVENTBRIDGE_MAX_ENTRY_BYTES
REQUEST_KEY_PREFIX: Final = "submit.request"
# The key store is on the answer's path: short timeouts, a few quick retries, then a 503.
KEY_STORE_CONFIG: Final = Config(
    connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 3, "mode": "standard"}
)


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
    # The Idempotency-Key store; without one, a request carrying a key is refused (500), never
    # silently treated as a new job.
    keys: JobKeys | None = None
    metrics: MetricsSink | None = None
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], str] = utc_now
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.05, cap_seconds=0.2))


class NotQueued(Exception):
    """The request event could not be put on the bus: the job cannot run (503, nothing stored)."""


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
    return [{"field": name, "message": message} for name, message in validation_errors(error, root="body")]


def parse_body(text: str) -> SubmitJobRequest | Response[str]:
    """The body as a request, or the 400 answer: too large, not strict JSON, or fields wrong."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "INPUT_TOO_LARGE",
            f"the body is over {MAX_BODY_BYTES} bytes",
            fields=[{"field": "body", "message": "too large"}],
        )
    try:
        payload = loads_strict(text)
    except NotStrictJson as error:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "INVALID_REQUEST",
            "the body must be a strict JSON object",
            fields=[{"field": error.field, "message": error.message}],
        )
    try:
        request = SubmitJobRequest.model_validate(payload)
    except ValidationError as error:
        message = "the request body is invalid"
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", message, fields=field_errors(error))
    return request


def parse_submission(
    settings: ProducerSettings, body: str | None, idempotency_key: str | None
) -> Submission | Response[str]:
    """The validated request, or the 400 answer saying what is wrong with it."""
    request = parse_body(body or "")
    if isinstance(request, Response):
        return request
    if request.model not in settings.model_allow_list:
        allowed = ", ".join(settings.model_allow_list) or "none"
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "MODEL_NOT_ALLOWED",
            f"model {request.model!r} is not allowed; allowed models: {allowed}",
            fields=[{"field": "model", "message": "not in the allowed models"}],
        )
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        message = "Idempotency-Key must be 1-255 visible ASCII characters"
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY", message)
    made = request_field(request.model, request.input)
    size = max(json_size(request.input), made.input_bytes)
    if size > MAX_INPUT_BYTES:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "INPUT_TOO_LARGE",
            f"input is {size} bytes as JSON; at most {MAX_INPUT_BYTES} allowed",
            fields=[{"field": "input", "message": "too large"}],
        )
    if made.value is None:  # the event model refuses what making it storable did not repair
        problem = made.problem or "input cannot be recorded"
        fields = [{"field": "input", "message": problem}]
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", problem, fields=fields)
    return Submission(request, made.value, made.changes)


def build_outgoing(deps: SubmitDeps, job: JobRef, submission: Submission) -> Outgoing | Response[str]:
    """The entries announcing `job`, or the 400 answer when they cannot be sent."""
    request = submission.request
    try:
        queued = deps.publisher.build(
            job, Status.QUEUED, occurred_at=job.created_at, request=submission.job_request
        )
    except InvalidStatusEvent as invalid:  # only a user id over the contract's length gets here
        return error_response(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", str(invalid))
    requested: Entry = {
        "Source": SOURCE_SUBMIT,
        "DetailType": REQUEST_DETAIL_TYPE,
        "Detail": VideoGenerationRequested(
            job_id=job.job_id,
            user_id=job.user_id,
            created_at=job.created_at,
            model=request.model,
            input=request.input,
        ).detail_json(),
        "EventBusName": deps.settings.event_bus_name,
    }
    if entry_size(requested) > EVENTBRIDGE_MAX_ENTRY_BYTES:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "INPUT_TOO_LARGE",
            f"the request is over EventBridge's {EVENTBRIDGE_MAX_ENTRY_BYTES} bytes",
            fields=[{"field": "input", "message": "too large"}],
        )
    return Outgoing(queued, requested)


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


def accepted(job: JobRef) -> dict[str, str]:
    """The 202 body (also what Powertools stores for a key, and replays)."""
    return {"jobId": job.job_id, "status": Status.QUEUED.value, "createdAt": job.created_at}


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

    def submit(self, user_id: str, body: str | None, idempotency_key: str | None) -> Response[str]:
        """The answer to one `POST /v1/jobs` from `user_id`."""
        submission = parse_submission(self.deps.settings, body, idempotency_key)
        if isinstance(submission, Response):
            return submission
        # Everything that can make the request a 400 is checked before the key is taken, so a
        # bad request never binds a key (the sizes do not depend on which jobId/createdAt).
        job = JobRef(str(uuid.uuid4()), user_id, self.deps.now())
        logger.append_keys(jobId=job.job_id)
        outgoing = build_outgoing(self.deps, job, submission)
        if isinstance(outgoing, Response):
            return outgoing
        try:
            answer = self._accept(job, submission, outgoing, idempotency_key)
        except Exception as error:
            refusal = refusal_for(error)
            if refusal is None:
                raise
            return refusal
        logger.append_keys(jobId=answer["jobId"])
        if submission.changes:
            logger.warning(
                "the client's input made storable for the request field",
                extra=changes_for_log(submission.changes),
            )
        logger.info("job submitted", extra={"model": submission.request.model})
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type=content_types.APPLICATION_JSON,
            # In the contract's order: a replayed answer comes back from the store with keys sorted.
            body=json.dumps({name: answer[name] for name in ("jobId", "status", "createdAt")}),
            headers={"Location": f"/v1/jobs/{answer['jobId']}", "Cache-Control": "no-store"},
        )

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
            "payload": submission.request.model_dump(mode="json"),
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
        logger.append_keys(jobId=job.job_id)
        outgoing = build_outgoing(self.deps, job, parsed)
        if isinstance(outgoing, Response):  # pragma: no cover - checked with the same sizes before
            raise RuntimeError("the submission became invalid after its reservation")
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


def refusal_for(error: Exception) -> Response[str] | None:
    """The answer to an expected failure of a submission, or None for a bug (a 500)."""
    for errors, status, code, message, retry_after in REFUSALS:
        if isinstance(error, errors):
            if status == HTTPStatus.SERVICE_UNAVAILABLE and not isinstance(error, NotQueued):
                logger.error("the idempotency store failed; answering 503", exc_info=error)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return error_response(status, code, message, headers=headers)
    return None


def _replayed(response: Any, idempotent_data: DataRecord) -> Any:
    logger.info("repeated Idempotency-Key: answering with the stored result")
    return response


def build_app(submitter: Submitter) -> APIGatewayRestResolver:
    """The resolver with `POST /v1/jobs` and CORS for the configured origins."""
    deps = submitter.deps
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
        headers = app.current_event.headers  # case-insensitive in Powertools v3
        unsupported = media_type_problem(headers.get("Content-Type"))
        if unsupported is not None:
            return error_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", unsupported)
        try:
            body = decode_body(app.current_event.body, bool(app.current_event.is_base64_encoded))
        except NotStrictJson as error:
            return error_response(
                HTTPStatus.BAD_REQUEST,
                "INVALID_REQUEST",
                error.message,
                fields=[{"field": error.field, "message": error.message}],
            )
        key = headers.get("Idempotency-Key")
        try:
            return submitter.submit(user_id, body, key)
        except Exception:  # a bug of ours: a JSON 500 with the traceback in the log, not a bare 502
            logger.exception("unexpected error")
            return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error")

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
    submitter: Submitter
    app: APIGatewayRestResolver


def make_handler(deps: SubmitDeps) -> Handler:
    """Bind `deps` to a resolver."""
    submitter = Submitter(deps)
    return Handler(deps, submitter, build_app(submitter))


def handle(event: dict[str, Any], context: LambdaContext, handler: Handler) -> dict[str, Any]:
    """Resolve the request, then flush status events (bounded) before answering."""
    # An in-progress key record lasts as long as this invocation may (then a retry may take over).
    handler.submitter.config.register_lambda_context(context)
    try:
        return _vary_on_origin(handler.app.resolve(event, context))
    finally:
        logger.remove_keys(["jobId"])
        handler.deps.publisher.flush(handler.deps.clock() + handler.deps.settings.status_flush_seconds)


@functools.cache
def dependencies() -> Handler:
    """The handler for Lambda, built once per cold start."""
    import boto3

    from producers.aws import events_client, sqs_client

    settings = ProducerSettings()
    events = events_client()
    keys = JobKeys(
        boto3.client("dynamodb", config=KEY_STORE_CONFIG),
        settings.idempotency_table_name,
        settings.job_ttl_days,
    )
    publisher = StatusPublisher(
        events,
        SqsOutbox(sqs_client(), settings.outbox_queue_url),
        bus_name=settings.event_bus_name,
        source=SOURCE_SUBMIT,
        metrics=metrics,
    )
    return make_handler(
        SubmitDeps(events=events, publisher=publisher, settings=settings, keys=keys, metrics=metrics)
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())
