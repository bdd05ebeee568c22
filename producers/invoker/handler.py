"""FalInvokerFn: SQS records of `VideoGenerationRequested` events, each run as a job on Fal.

A record that names no job is a batch item failure (then the DLQ); a job that fails on Fal is a
FAILED event. The status events' flush runs after the response when the Lambda extension runs
(`producers.publishing.afterresponse`); the finished record is then reported as a failure so
the mapping keeps it, and `settle` deletes it once its events are on the bus or in the outbox.
`handle(event, context, runner, records)` takes its dependencies; `use_fal_gateway` is the seam
through which the local stack and benchmarks run the real handler on another Fal.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import SOURCE_FAL_INVOKER
from jobstatus.logkeys import append_thread_keys, names_its_function, remove_thread_keys
from jobstatus.metrics import MetricsSink
from producers.invoker.fal import FalClientGateway, FalGateway, key_from_secret
from producers.invoker.records import FinishedRecord, FinishedRecords, settle
from producers.invoker.request import BadRecord, parse_request
from producers.invoker.runner import JobRunner, RunnerConfig
from producers.publishing.afterresponse import AfterResponse, after_response
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import StatusPublisher
from producers.settings import ProducerSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

logger = Logger()
metrics = Metrics()
# Lambda's init phase is the moment to register the internal extension (no-op elsewhere).
after_response.start()


@dataclass(frozen=True)
class Invoker:
    """What the Lambda entry point needs: the runner, and where finished records are deleted."""

    runner: JobRunner
    records: FinishedRecords | None


def make_runner(
    fal: FalGateway,
    settings: ProducerSettings,
    *,
    events: EventBridgeClient,
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    metrics_sink: MetricsSink | None = metrics,
) -> JobRunner:
    """A `JobRunner` wired to the given Fal gateway and AWS clients."""
    publisher = StatusPublisher(
        events,
        SqsOutbox(sqs, settings.outbox_queue_url),
        bus_name=settings.event_bus_name,
        source=SOURCE_FAL_INVOKER,
        metrics=metrics_sink,
    )
    table = settings.idempotency_table_name
    return JobRunner(
        fal=fal,
        publisher=publisher,
        persistence_job=DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb),
        persistence_submit=DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb),
        metrics=metrics_sink,
        config=RunnerConfig(
            poll_seconds=settings.fal_poll_seconds,
            max_attempts=settings.fal_max_attempts,
            retry_base_seconds=settings.fal_retry_base_seconds,
            deadline_margin_seconds=settings.deadline_margin_seconds,
            flush_seconds=settings.status_flush_seconds,
            flush_after_response_seconds=settings.status_flush_after_response_seconds,
            idempotency_expiry_seconds=settings.idempotency_expiry_seconds,
        ),
    )


def fal_key(settings: ProducerSettings) -> str | None:
    """The Fal key: `FAL_KEY`, else the Secrets Manager secret `FAL_KEY_SECRET_ARN` (read once)."""
    if settings.fal_key is not None:
        return settings.fal_key.get_secret_value()
    if settings.fal_key_secret_arn:
        from aws_lambda_powertools.utilities.parameters import get_secret

        return key_from_secret(get_secret(settings.fal_key_secret_arn))
    return None


def build_invoker(fal: FalGateway, settings: ProducerSettings) -> Invoker:
    """The runner on `fal` with `settings` and the AWS clients of this environment.

    Lambda builds it on fal.ai's gateway (`dependencies`); the local stack on its simulated one.
    """
    import boto3
    from botocore.config import Config

    from producers.aws import events_client, fast_fail, sqs_client

    store_config = Config(
        connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 3, "mode": "standard"}
    )
    sqs = sqs_client(fast_fail(settings))
    runner = make_runner(
        fal,
        settings,
        events=events_client(fast_fail(settings)),
        sqs=sqs,
        dynamodb=boto3.client("dynamodb", config=store_config),
    )
    queue = settings.invoker_queue_url
    return Invoker(runner, FinishedRecords(sqs, queue) if queue else None)


@dataclass
class _FalChoice:
    gateway: FalGateway | None = None  # None: fal.ai, with the configured key


_fal = _FalChoice()


def use_fal_gateway(gateway: FalGateway | None) -> None:
    """Run jobs on `gateway` instead of fal.ai (None: fal.ai again), from the next invocation on."""
    _fal.gateway = gateway
    dependencies.cache_clear()


@functools.cache
def dependencies() -> Invoker:
    """The invoker for Lambda, built once per cold start (lazily, so tests can set env first)."""
    settings = ProducerSettings.from_env()
    return build_invoker(_fal.gateway or FalClientGateway(lambda: fal_key(settings)), settings)


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    runner: JobRunner,
    records: FinishedRecords | None = None,
    after: AfterResponse = after_response,
) -> dict[str, Any]:
    """Run the job of every record; the records that must be retried, as `batchItemFailures`.

    With `records` and a post-response phase (`after.deferring()`), finished records are also
    listed there and deleted by the deferred `settle` instead (see the module docstring).
    """
    deferred = after.deferring()
    deleter = records if deferred else None  # who deletes the finished records: settle, or the mapping
    failures: list[dict[str, str]] = []
    finished: list[FinishedRecord] = []
    handled = 0
    try:
        handled = _run_records(event, context, runner, failures, finished)
    finally:
        flush = functools.partial(runner.flush, after_response=deferred)
        after.defer(functools.partial(settle, flush, finished, deleter))
        if deferred:  # the handler's `log_metrics` has written its metrics by then: the flush's too
            after.defer(_flush_metrics)
    if deleter is not None:
        failures.extend({"itemIdentifier": r.message_id} for r in finished)
    if runner.metrics is not None:  # also keeps the handler's own metric set from being empty
        runner.metrics.add_metric("JobsHandled", MetricUnit.Count, handled)
    return {"batchItemFailures": failures}


def _flush_metrics() -> None:
    if metrics.metric_set:
        metrics.flush_metrics()


def _run_records(
    event: dict[str, Any],
    context: LambdaContext,
    runner: JobRunner,
    failures: list[dict[str, str]],
    finished: list[FinishedRecord],
) -> int:
    """Run each record's job; the records whose jobs were handled are added to `finished`."""
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        try:
            job = parse_request(json.loads(record["body"]))
        except (BadRecord, ValueError, KeyError, TypeError) as error:
            logger.error(
                "record is not a usable VideoGenerationRequested",
                extra={"messageId": message_id, "error": str(error)},
            )
            failures.append({"itemIdentifier": message_id})
            continue
        append_thread_keys(jobId=job.ref.job_id)
        try:
            outcome = runner.handle(job, context)
            logger.info("job handled", extra={"outcome": {k: v for k, v in outcome.items() if k != "events"}})
            finished.append(FinishedRecord(message_id, str(record.get("receiptHandle", "")), job.ref.job_id))
        except IdempotencyAlreadyInProgressError:
            logger.warning("another run of this job is in progress; retrying the record later")
            failures.append({"itemIdentifier": message_id})
        except Exception:  # the record is retried (then DLQ); the job is not submitted twice
            logger.exception("job could not be handled; retrying the record later")
            failures.append({"itemIdentifier": message_id})
        finally:
            remove_thread_keys(["jobId"])
    return len(finished)


@logger.inject_lambda_context
@metrics.log_metrics
@after_response.wrap
@names_its_function
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    invoker = dependencies()
    return handle(event, context, invoker.runner, invoker.records)
