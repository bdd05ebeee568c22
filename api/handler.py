"""GetJobFn: `GET /v1/jobs/{id}` and `GET /v1/jobs` for the frontend (DESIGN §4).

Thin: claims and parameters in, `api.core` rules, `api.store.JobReader` reads; the HTTP edge is
`jobstatus.http`, shared with SubmitJobFn. Cold start is a budget (bench/api.py): no Tracer, no
request validation, no pydantic, botocore's client without boto3;
`tests/api/test_store_settings.py` fails when one of them comes back on this path.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.session import Session

from api.core import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    ApiError,
    CursorCodec,
    caller_from_claims,
    cors_headers,
    etag_of,
    job_view,
    listed_user,
    may_read,
    none_match,
    not_found,
    parse_job_id,
    parse_list_query,
)
from api.settings import ApiSettings
from api.store import JobReader, StoreUnavailable
from jobstatus.http import Caller, add_headers, claims_of, error_body, header
from jobstatus.logkeys import names_its_function

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

JOBS_PATH: Final = "/v1/jobs"
JOB_PATH: Final = "/v1/jobs/<job_id>"
NO_STORE: Final = {"Cache-Control": "no-store"}
RETRY_AFTER_SECONDS: Final = "1"
# Paths this function answers, whatever the method: another method there is 405, not 404.
_KNOWN_PATH = re.compile(r"/v1/jobs(?:/[^/]+)?")

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

_ErrorHandler = TypeVar("_ErrorHandler", bound=Callable[[Any], "Response[Any]"])


def _handles(error: type[Exception]) -> Callable[[_ErrorHandler], _ErrorHandler]:
    # Powertools' `exception_handler` is unannotated; this keeps the handlers typed.
    return cast("Callable[[_ErrorHandler], _ErrorHandler]", app.exception_handler(error))


@dataclass(frozen=True)
class Dependencies:
    """What the handler needs from outside: settings, the table adapter, the cursor key, a clock."""

    settings: ApiSettings
    jobs: JobReader
    cursors: CursorCodec
    clock: Callable[[], float] = time.time


def dynamodb_client(session: Session | None = None) -> DynamoDBClient:
    """A DynamoDB client (its endpoint from `AWS_ENDPOINT_URL*`), with timeouts for a 30 s API.

    botocore's own, not `boto3.client`: the same client (boto3 adds nothing to a DynamoDB
    client), without importing boto3 and s3transfer at cold start.
    """
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    return cast("DynamoDBClient", (session or Session()).create_client("dynamodb", config=config))


def read_secret(session: Session, secret_arn: str) -> str | None:
    """The SecretString of one Secrets Manager secret (botocore's client: no boto3 at cold start)."""
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    client: Any = session.create_client("secretsmanager", config=config)
    value = client.get_secret_value(SecretId=secret_arn).get("SecretString")
    return value if isinstance(value, str) else None


WARM_KEY: Final = "__warm-up__"  # no job has this id (job ids are UUIDs): the read finds nothing


def warm_up(deps: Dependencies) -> None:
    """Open the DynamoDB connection (TCP, TLS) with a GetItem of a key no job has.

    Lambda's init runs this, so the first request does not pay the handshakes. It is a
    warm-up: failing it logs and leaves the first request to connect.
    """
    started = time.perf_counter()
    try:
        deps.jobs.get(WARM_KEY)
    except Exception as error:  # a warm-up must never fail the init
        logger.warning("warming the DynamoDB connection failed", extra={"error": type(error).__name__})
        return
    logger.debug("DynamoDB connection warm", extra={"ms": round((time.perf_counter() - started) * 1000, 1)})


@functools.cache
def dependencies() -> Dependencies:
    """The production dependencies, built once per container on first use (tests set env first).

    The cursor key is read here, once per container, from the secret CURSOR_KEY_SECRET_ARN names.
    """
    settings = ApiSettings.from_env()
    session = Session()
    secret = settings.cursor_key_secret_arn
    cursor_key = settings.cursor_key(read_secret(session, secret) if secret else None)
    logger.info("cursor key ready", extra={"fromSecret": bool(secret)})
    return Dependencies(
        settings=settings,
        jobs=JobReader(dynamodb_client(session), settings.jobs_table_name),
        cursors=CursorCodec(cursor_key),
    )


def _deps() -> Dependencies:
    return cast(Dependencies, app.context["deps"])


def _caller() -> Caller:
    return caller_from_claims(claims_of(app.current_event.raw_event))


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={**NO_STORE, **(headers or {})},
    )


@app.get(JOB_PATH)
def get_job(job_id: str) -> Response[Any]:
    """One job of the caller (any job for an admin), with a strong ETag; 304 when unchanged."""
    deps = _deps()
    caller = _caller()
    job_id = parse_job_id(job_id)
    logger.thread_safe_append_keys(jobId=job_id)  # this thread only (locally, functions share a process)
    item = deps.jobs.get(job_id)
    if item is None or not may_read(item, caller, deps.clock()):
        logger.info("job not readable by caller", extra={"found": item is not None})
        raise not_found()
    etag = etag_of(str(item.get("version", "")))
    if none_match(header(app.current_event.raw_event, "If-None-Match"), etag):
        return Response(status_code=304, headers={**NO_STORE, "ETag": etag})
    return _json(200, job_view(item), {"ETag": etag})


@app.get(JOBS_PATH)
def list_jobs() -> Response[Any]:
    """The caller's own jobs (an admin's: any user's, by `userId`), newest first, a page at a time."""
    deps = _deps()
    caller = _caller()
    query = parse_list_query(app.current_event.raw_event.get("queryStringParameters"))
    owner = listed_user(query, caller)
    if owner != caller.user_id:
        logger.info("admin lists another user's jobs", extra={"admin": caller.user_id, "listedUser": owner})
    cursors = deps.cursors
    start = cursors.decode(query.cursor, caller, query.status, owner) if query.cursor else None
    page = deps.jobs.list_for_user(
        owner, limit=query.limit, status=query.status, start=start, now=deps.clock()
    )
    next_cursor = (
        cursors.encode(page.next_position, caller, query.status, owner) if page.next_position else None
    )
    return _json(200, {"items": [job_view(item) for item in page.items], "nextCursor": next_cursor})


@app.not_found
def route_not_found(_: NotFoundError) -> Response[Any]:
    """404 for an unknown path; 405 for a known path with a method it does not answer.

    The router matches only ids of URL-safe characters: any other id on the job path is still a
    malformed id (400). OPTIONS is 405 too: API Gateway answers preflights itself (a MOCK).
    """
    path = app.current_event.path
    method = app.current_event.http_method.upper()
    if not _KNOWN_PATH.fullmatch(path):
        return _json(404, error_body(NOT_FOUND, f"No route for {path}"))
    if method == "GET":
        _caller()
        parse_job_id(path.rsplit("/", 1)[1])
        raise not_found()  # pragma: no cover - the router matches every valid id
    return _json(
        405, error_body(METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}"), {"Allow": "GET, OPTIONS"}
    )


@_handles(ApiError)
def api_error(error: ApiError) -> Response[Any]:
    """A refused request: its status and the one error body."""
    return _json(error.status, error.body(), error.headers)


@_handles(StoreUnavailable)
def store_unavailable(error: StoreUnavailable) -> Response[Any]:
    """DynamoDB throttled us: 503, worth retrying."""
    logger.warning("DynamoDB unavailable", extra={"code": str(error)})
    return _json(
        503,
        error_body(SERVICE_UNAVAILABLE, "Try again shortly"),
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


@_handles(Exception)
def unexpected(error: Exception) -> Response[Any]:
    """A bug or an outage: logged with its traceback, answered 500 with the same error body."""
    logger.exception("unexpected error")
    return _json(500, error_body(INTERNAL_ERROR, "Internal error"))


def handle(event: dict[str, Any], context: LambdaContext | None, deps: Dependencies) -> dict[str, Any]:
    """Answer one REST proxy event with injected dependencies (tests, benchmarks, the local stack)."""
    started = time.perf_counter()
    request_context = event.get("requestContext") or {}
    logger.set_correlation_id(request_context.get("requestId"))
    app.context["deps"] = deps
    try:
        response = app.resolve(event, cast("LambdaContext", context))
    except Exception:
        # Only an event that is no REST proxy event gets here (routes' errors are answered above).
        logger.exception("event could not be routed")
        app.context.clear()
        response = {
            "statusCode": 500,
            "body": json.dumps(error_body(INTERNAL_ERROR, "Internal error"), separators=(",", ":")),
            "isBase64Encoded": False,
            "multiValueHeaders": {
                "Content-Type": [content_types.APPLICATION_JSON],
                "Cache-Control": ["no-store"],
            },
        }
    method = str(event.get("httpMethod", ""))
    origin = header(event, "Origin")
    cors = cors_headers(origin, deps.settings.allowed_origins, preflight=False)  # preflights: the MOCK
    add_headers(response, {"Vary": "Origin", **cors})
    logger.info(
        "request answered",
        extra={
            "method": method,
            "resource": event.get("resource"),
            "status": response["statusCode"],
            "latencyMs": round((time.perf_counter() - started) * 1000, 3),
        },
    )
    logger.thread_safe_remove_keys(["jobId"])
    return response


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point; records `Latency` (ms) for every request."""
    started = time.perf_counter()
    try:
        return handle(event, context, dependencies())
    finally:
        metrics.add_metric(
            name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )


def lambda_init() -> None:
    """What Lambda's init does before the first request: build, connect, then freeze the heap.

    The client and its connection spare the first GET their build and handshakes. `gc.freeze()`
    (about a microsecond) moves what init made, which lives as long as the container, out of the
    collector's way: with a warm connection the first GET was still 2-4 ms slower than the second,
    a collection going through the import-time heap (bench/api.py). A `gc.collect()` first would
    cost 20-40 ms of init to save those few ms, so none is made.
    """
    warm_up(dependencies())
    gc.freeze()


# Lambda's init (and only Lambda's: tests and the local stack build their dependencies when they
# need them).
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_init()
