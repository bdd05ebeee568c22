"""SubmitJobFn: `POST /v1/jobs` (DESIGN §4), validate, then publish QUEUED and the request in one PutEvents.

The resolver has GetJobFn's shape (`api.handler`): a module-level `app`, refusals raised as
`HttpError` and answered by `@app.exception_handler`, the submitter injected through `handle`.
The body must be strict JSON (`producers.submit.strictjson`); no input gets a 5xx.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from botocore.config import Config

from jobstatus.events import SOURCE_SUBMIT
from jobstatus.http import NO_STORE, HttpError, caller_from_claims, claims_of, error_body, header, with_cors
from jobstatus.logkeys import names_its_function, remove_thread_keys
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Entry
from producers.settings import ProducerSettings
from producers.submit.keys import JobKeys
from producers.submit.strictjson import NotStrictJson, decode_body, media_type_problem
from producers.submit.submitter import SubmitDeps, Submitter

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

JOBS_PATH: Final = "/v1/jobs"
EXPOSE_HEADERS: Final = "Location, Retry-After"
# The key store is on the answer's path: short timeouts, a few quick retries, then a 503.
KEY_STORE_CONFIG: Final = Config(
    connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 3, "mode": "standard"}
)

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

_ErrorHandler = TypeVar("_ErrorHandler", bound=Callable[[Any], "Response[Any]"])


def _handles(error: type[Exception]) -> Callable[[_ErrorHandler], _ErrorHandler]:
    # Powertools' `exception_handler` is unannotated; this keeps the handlers typed.
    return cast("Callable[[_ErrorHandler], _ErrorHandler]", app.exception_handler(error))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers={**NO_STORE, **(headers or {})},
    )


def _submitter() -> Submitter:
    return cast(Submitter, app.context["submitter"])


@app.post(JOBS_PATH)
def post_job() -> Response[str]:
    """Submit one job for the caller: 202 with its jobId, or the refusal."""
    event = app.current_event.raw_event
    caller = caller_from_claims(claims_of(event))
    if caller is None:
        raise HttpError(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", "no authenticated user")
    unsupported = media_type_problem(header(event, "Content-Type"))
    if unsupported is not None:
        raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", unsupported)
    try:
        body = decode_body(app.current_event.body, bool(app.current_event.is_base64_encoded))
    except NotStrictJson as error:
        fields = [{"field": error.field, "message": error.message}]
        raise HttpError(HTTPStatus.BAD_REQUEST, "INVALID_REQUEST", error.message, fields=fields) from error
    answer = _submitter().submit(caller.user_id, body, header(event, "Idempotency-Key"))
    return _json(HTTPStatus.ACCEPTED, answer, {"Location": f"{JOBS_PATH}/{answer['jobId']}"})


@app.not_found
def route_not_found(_: NotFoundError) -> Response[str]:
    """404 for any other route (preflights are the API's MOCK, never this function)."""
    return _json(HTTPStatus.NOT_FOUND, error_body("NOT_FOUND", "no such route"))


@_handles(HttpError)
def refused(error: HttpError) -> Response[str]:
    """A refused request: its status and the one error body."""
    return _json(error.status, error.body(), error.headers)


@_handles(Exception)
def unexpected(error: Exception) -> Response[str]:
    """A bug of ours: a JSON 500 with the traceback in the log, not a bare 502."""
    logger.exception("unexpected error")
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, error_body("INTERNAL_ERROR", "internal error"))


def handle(event: dict[str, Any], context: LambdaContext, submitter: Submitter) -> dict[str, Any]:
    """Answer one REST proxy event with `submitter`, then flush status events (bounded)."""
    deps = submitter.deps
    # An in-progress key record lasts as long as this invocation may (then a retry may take over).
    submitter.config.register_lambda_context(context)
    app.context["submitter"] = submitter
    try:
        response = app.resolve(event, context)
        return with_cors(response, event, deps.settings.allowed_origins, EXPOSE_HEADERS)
    finally:
        remove_thread_keys(["jobId"])
        deps.publisher.flush(deps.clock() + deps.settings.status_flush_seconds)


class LazySqsOutbox:
    """The SQS outbox, its client built when it is first needed (the bus refused entries).

    A submission that the bus accepts never touches SQS, so the cold start (init and the first
    POST) builds one botocore client fewer; the first fallback pays it instead. Never raises.
    """

    def __init__(self, build: Callable[[], SQSClient], queue_url: str) -> None:
        self._build = build
        self._queue_url = queue_url
        self._outbox: SqsOutbox | None = None
        self._lock = threading.Lock()  # the publisher's sender threads may fall back together

    @property
    def built(self) -> bool:
        """Whether the SQS client exists yet."""
        return self._outbox is not None

    def send(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """`SqsOutbox.send`, after building its client on the first call."""
        with self._lock:
            if self._outbox is None:
                try:
                    self._outbox = SqsOutbox(self._build(), self._queue_url)
                except Exception as error:  # a fallback reports its failure, never raises
                    logger.exception("the outbox's SQS client could not be built")
                    return [(entry, f"{type(error).__name__}: {error}") for entry in entries]
            outbox = self._outbox
        return outbox.send(entries)


@functools.cache
def dependencies() -> Submitter:
    """The submitter for Lambda, built once per cold start."""
    import boto3

    from producers.aws import events_client, fast_fail, sqs_client

    settings = ProducerSettings.from_env()
    events = events_client(fast_fail(settings))
    keys = JobKeys(
        boto3.client("dynamodb", config=KEY_STORE_CONFIG),
        settings.idempotency_table_name,
        settings.job_ttl_days,
    )
    publisher = StatusPublisher(
        events,
        LazySqsOutbox(lambda: sqs_client(fast_fail(settings)), settings.outbox_queue_url),
        bus_name=settings.event_bus_name,
        source=SOURCE_SUBMIT,
        metrics=metrics,
    )
    return Submitter(
        SubmitDeps(events=events, publisher=publisher, settings=settings, keys=keys, metrics=metrics)
    )


@logger.inject_lambda_context
@metrics.log_metrics
@names_its_function
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())


def lambda_init() -> None:
    """What Lambda's init does before the first POST: build the submitter, then freeze the heap.

    `gc.freeze()` (about a microsecond) moves what init made, which lives as long as the
    container, out of the collector's way, as GetJobFn's init does (bench/api.py measures what
    that spares a first request); a `gc.collect()` first would cost 20-40 ms of init. The
    connections open on the first POST: a cold POST waits for init and its first request alike,
    so a warm-up request at init would move the handshakes, not save them (and EventBridge has
    no call this function may make without publishing).
    """
    dependencies()
    gc.freeze()


# Lambda's init only: tests and the local stack build the submitter when they need it.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_init()
