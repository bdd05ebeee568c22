"""ProjectorFn: folds SQS batches of `JobStatusChanged` events into the Jobs table (DESIGN §3).

Each SQS record's body is an EventBridge event, live or replayed (`replay-name`); moto leaves
out `account`, which is not needed here. A batch is parsed record by record, coalesced per
jobId and written with one conditional `UpdateItem` per job, the jobs' writes in flight together
on a bounded pool (what they did is logged and counted on the handler's thread). The answer lists in
`batchItemFailures` exactly the records not applied, so SQS redelivers them (and, after
`maxReceiveCount`, parks them in the DLQ):

- a record that is not a valid event fails alone, with a log line saying why;
- a job whose write is throttled or meets a service error fails with all its records;
- a job DynamoDB refuses as malformed is written again event by event, so only the events it
  refuses fail (logged as invalid) and the others are applied as if those were absent;
- events that disagree with the stored item on the job's owner (`userId`, `createdAt`) are
  conflicts: never applied, failed, logged with both values (DESIGN §3);
- events of a job past its `ttl` are skipped as done (a replay must not resurrect it).

No content of a record, however deep, large or malformed, makes the handler raise.

Metrics (EMF), one count per record: `EventsApplied` (the winner of a job whose write took
it), `EventsStale` (every other record of a written job: superseded within the batch, or
older than the item), `EventsInvalid`, `EventsConflicting`, `EventsExpired`; and
`DynamoDBWrites` (requests made).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobstatus.events import DETAIL_TYPE, SOURCES, JobStatusChanged
from jobstatus.logkeys import names_its_function
from jobstatus.metrics import MetricsSink
from jobstatus.settings import Settings
from projector.fold import coalesce, is_expired
from projector.store import Attempt, InvalidForStore, JobStore, JobWriter, Outcome, write_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger()
metrics = Metrics()

# Writes of a batch in flight at once (bench/projector.py measures 8 and 16), and as many HTTP
# connections: a thread waiting for a connection is a write not in flight.
WRITERS: Final = 16
MAX_REASON_CHARS: Final = 1000  # a log line says why, not the whole payload
MAX_PATH_CHARS: Final = 120


class InvalidRecord(ValueError):
    """An SQS record that is not a `JobStatusChanged` event of ours."""

    def __init__(self, reason: str, job_id: str | None = None) -> None:
        super().__init__(reason)
        self.job_id = job_id


class _Envelope(BaseModel):
    """The parts of an EventBridge event the projector reads (others, `account` too, ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    detail_type: str = Field(alias="detail-type")
    source: str
    detail: dict[str, Any]
    id: str | None = None
    replay_name: str | None = Field(default=None, alias="replay-name")


@dataclass(frozen=True, slots=True)
class ProjectorDeps:
    """What the handler needs: the writer, the TTL, a clock (epoch seconds), a metrics sink, and
    the pool that keeps a batch's writes in flight together (none: one write after another)."""

    store: JobWriter
    ttl_days: int
    clock: Callable[[], float] = time.time
    metrics: MetricsSink | None = None
    pool: Executor | None = None


@dataclass(slots=True)
class BatchReport:
    """What one batch did: the records to report as failed, and a count per outcome."""

    failures: list[str] = field(default_factory=list)
    applied: int = 0
    stale: int = 0
    invalid: int = 0
    conflicting: int = 0
    expired: int = 0
    writes: int = 0

    def response(self) -> dict[str, Any]:
        """The answer SQS's partial-batch protocol expects."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failures]}

    def record_metrics(self, sink: MetricsSink) -> None:
        """One data point per metric (zeros too, so dashboards see a steady series)."""
        sink.add_metric("EventsApplied", MetricUnit.Count, self.applied)
        sink.add_metric("EventsStale", MetricUnit.Count, self.stale)
        sink.add_metric("EventsInvalid", MetricUnit.Count, self.invalid)
        sink.add_metric("EventsConflicting", MetricUnit.Count, self.conflicting)
        sink.add_metric("EventsExpired", MetricUnit.Count, self.expired)
        sink.add_metric("DynamoDBWrites", MetricUnit.Count, self.writes)


def parse_record(record: Mapping[str, Any]) -> JobStatusChanged:
    """The event an SQS record carries; `InvalidRecord` saying why when it carries none."""
    body = record.get("body")
    if not isinstance(body, str):
        raise InvalidRecord("the record has no body")
    envelope = _read_envelope_in_one_pass(body) or _read_envelope(body)
    job_id = envelope.detail.get("jobId")
    job_id = job_id if isinstance(job_id, str) else None
    if envelope.detail_type != DETAIL_TYPE or envelope.source not in SOURCES:
        raise InvalidRecord(
            f"not a {DETAIL_TYPE} event of ours: {envelope.source}/{envelope.detail_type}", job_id
        )
    try:
        return JobStatusChanged.from_detail(envelope.detail)
    except ValidationError as error:
        raise InvalidRecord(f"the detail breaks the event contract: {_summary(error)}", job_id) from error
    except RecursionError as error:
        raise InvalidRecord("the detail is nested too deeply to validate", job_id) from error


def _read_envelope_in_one_pass(body: str) -> _Envelope | None:
    """The envelope of a body that is one, parsed and validated in one pass (pydantic's JSON
    parser: about a third of the CPU of `json.loads` and a validation); None for any other body,
    which `_read_envelope` reads again to say why. Only the envelope: the detail is validated as
    before, in Python mode (pydantic's JSON mode does not apply `by_name=False` to unknown keys).
    """
    try:
        return _Envelope.model_validate_json(body)
    except Exception:  # whatever this pass refuses, `_read_envelope` says why
        return None


def _read_envelope(body: str) -> _Envelope:
    """The body as JSON, then as an envelope; `InvalidRecord` saying which it is not."""
    try:
        raw = json.loads(body)
    except ValueError as error:
        raise InvalidRecord(f"the body is not JSON: {error}"[:MAX_REASON_CHARS]) from error
    except RecursionError as error:
        raise InvalidRecord("the body is JSON nested too deeply to read") from error
    try:
        return _Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidRecord(f"the body is not an EventBridge event: {_summary(error)}") from error


def _parse_safely(record: Mapping[str, Any]) -> JobStatusChanged:
    """`parse_record`, with any other failure on a record's content turned into `InvalidRecord`."""
    try:
        return parse_record(record)
    except InvalidRecord:
        raise
    except Exception as error:  # a record must never fail the batch, whatever it holds
        raise InvalidRecord(f"the record cannot be read: {type(error).__name__}") from error


def _summary(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in e["loc"]) or "(root)"
        if len(where) > MAX_PATH_CHARS:  # a deep path must not crowd out the message
            where = where[:MAX_PATH_CHARS] + "..."
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)[:MAX_REASON_CHARS]


def _records(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        logger.error("the invocation is not an SQS batch: no Records list")
        return []
    return [r if isinstance(r, Mapping) else {} for r in records]


def process(records: Iterable[Mapping[str, Any]], deps: ProjectorDeps) -> BatchReport:
    """Parse, skip expired, coalesce per job and write each job once; what happened, counted."""
    report = BatchReport()
    now = deps.clock()
    live: list[tuple[str, JobStatusChanged]] = []
    for record in records:
        message_id = str(record.get("messageId") or "")
        try:
            event = _parse_safely(record)
        except InvalidRecord as error:
            logger.warning(
                "invalid record failed; it reaches the DLQ after maxReceiveCount",
                extra={"messageId": message_id, "jobId": error.job_id, "reason": str(error)},
            )
            report.failures.append(message_id)
            report.invalid += 1
            continue
        if is_expired(event, deps.ttl_days, now):
            logger.info(
                "event of an expired job skipped",
                extra={"messageId": message_id, "jobId": event.job_id, "createdAt": event.created_at},
            )
            report.expired += 1
            continue
        live.append((message_id, event))
    # The writes are in flight together on the pool; what they did is logged and counted here, on
    # the handler's thread (Powertools Logger and Metrics are not made for appends from many).
    for attempt in write_all(deps.store, coalesce(live), deps.pool):
        _record(attempt, report)
    return report


def _record(attempt: Attempt, report: BatchReport) -> None:
    job, error, result = attempt.batch, attempt.error, attempt.result
    about = {"jobId": job.job_id, "messageIds": list(job.record_ids)}
    if isinstance(error, InvalidForStore):
        if len(job.record_ids) > 1:
            # Which event is it? Each alone (the attempts that follow), so that the others are
            # applied as if it were absent.
            logger.warning(
                "DynamoDB refused the job's coalesced write; writing its events one by one",
                extra={**about, "reason": str(error)},
            )
            return
        logger.error("DynamoDB refused the event; its record failed", extra={**about, "reason": str(error)})
        report.failures.extend(job.record_ids)
        report.invalid += len(job.record_ids)
        return
    if isinstance(error, ClientError | BotoCoreError):
        code = (
            error.response.get("Error", {}).get("Code")
            if isinstance(error, ClientError)
            else type(error).__name__
        )
        logger.warning(
            "writing the job failed; SQS will redeliver its records", extra={**about, "errorCode": code}
        )
        report.failures.extend(job.record_ids)
        return
    if error is not None or result is None:
        # A bug must not block the other jobs of the batch: this job's records are retried.
        logger.error("unexpected error writing the job; its records failed", extra=about, exc_info=error)
        report.failures.extend(job.record_ids)
        return
    report.writes += result.requests
    if result.outcome is Outcome.CONFLICT:
        logger.error(
            "events conflict with the job's owner; not applied, their records failed",
            extra={
                **about,
                "userId": job.winner.user_id,
                "createdAt": job.winner.created_at,
                "storedUserId": result.stored_user_id,
                "storedCreatedAt": result.stored_created_at,
            },
        )
        report.failures.extend(job.record_ids)
        report.conflicting += len(job.record_ids)
        return
    applied = 1 if result.outcome is Outcome.APPLIED else 0
    report.applied += applied
    report.stale += len(job.record_ids) - applied
    logger.debug(
        "job written",
        extra={
            **about,
            "outcome": result.outcome.value,
            "version": job.winner.version,
            "requests": result.requests,
        },
    )


def handle(event: Mapping[str, Any], context: LambdaContext | None, deps: ProjectorDeps) -> dict[str, Any]:
    """Project one SQS batch with injected dependencies; the partial-batch answer."""
    records = _records(event)
    report = process(records, deps)
    if deps.metrics is not None:
        report.record_metrics(deps.metrics)
    logger.info(
        "batch projected",
        extra={
            "records": len(records),
            "applied": report.applied,
            "stale": report.stale,
            "invalid": report.invalid,
            "conflicting": report.conflicting,
            "expired": report.expired,
            "failed": len(report.failures),
            "dynamodbWrites": report.writes,
        },
    )
    return report.response()


@functools.cache
def dependencies() -> ProjectorDeps:
    """The dependencies for Lambda, built once per cold start (after tests have set the env)."""
    settings = Settings.from_env()  # pydantic, already on the path for the event model: ~2 ms
    store = JobStore(dynamodb_client(), settings.jobs_table_name, settings.job_ttl_days)
    pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="write")
    return ProjectorDeps(store=store, ttl_days=settings.job_ttl_days, metrics=metrics, pool=pool)


def dynamodb_client() -> DynamoDBClient:
    """botocore's DynamoDB client (its endpoint from `AWS_ENDPOINT_URL*`), tuned for CPU per write.

    botocore's own settings, each measured by bench/projector.py's CPU per request:
    `parameter_validation=False` (every value was validated by the event model and the request's
    shape is ours; DynamoDB still refuses a bad request, and `InvalidForStore` handles that);
    `user_agent` given once, so botocore sends it as it is instead of building its full User-Agent
    string twice per request; standard retries (a token bucket, no per-response CRC32 of legacy
    mode). botocore's own client, not `boto3.client`: the same client without importing boto3.
    """
    import botocore
    from botocore.config import Config
    from botocore.session import get_session

    config = Config(
        parameter_validation=False,
        user_agent=f"jobstatus-projector botocore/{botocore.__version__}",
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=WRITERS,
        connect_timeout=2,
        read_timeout=5,
    )
    return cast("DynamoDBClient", get_session().create_client("dynamodb", config=config))


@logger.inject_lambda_context
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())


def lambda_init() -> None:
    """What Lambda's init does before the first batch: build the dependencies, then freeze the heap.

    `gc.freeze()` (about a microsecond) moves what import and init made, which lives as long as
    the container, out of the collector's way: in a fresh process projecting batches of 100, the
    one full collection of the first 6,000 events took 46-383 ms without it and 3-12 ms with it
    (docs/performance.md). No `gc.collect()` first: it would cost 20-40 ms of init.
    """
    dependencies()
    gc.freeze()


# Lambda's init (and only Lambda's: tests, benches and the local stack build their dependencies
# when they need them).
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_init()
