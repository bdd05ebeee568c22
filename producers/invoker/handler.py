"""FalInvokerFn: SQS records whose bodies are `VideoGenerationRequested` events → a job on Fal.

The rule `VideoRequestedToInvokerRule` feeds `InvokerQueue` (BatchSize 1, partial batch
failures). A record that names no job goes to failure with a log line (and, after
`maxReceiveCount`, to the DLQ); a job that fails on Fal is a FAILED event, not a failed record.

The status events' flush runs after the response when it can (`producers.publishing.afterresponse`: a
Lambda internal extension), so it adds nothing to the job's wall time. The record of a finished
job is then still reported in `batchItemFailures`, so the event source mapping keeps it, and
deleted by that post-response work once every event of the job is on the bus or in the outbox.
If the environment dies first, SQS hands the record out again after its visibility timeout, and
the job's idempotency record re-publishes its events: none is silently lost. Without the
extension (tests, scripts) the flush runs before the handler returns and the record is reported
done, as before.

`handle(event, context, runner, records)` drives it with injected dependencies (tests, the local
stack, benchmarks: `make_runner(fal, ...)` with any `FalGateway`); `lambda_handler` is the AWS entry.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import SOURCE_FAL_INVOKER
from producers.invoker.fal import FalClientGateway, FalGateway, key_from_secret
from producers.invoker.runner import BadRecord, JobRunner, RunnerConfig, parse_request
from producers.publishing.afterresponse import AfterResponse, after_response
from producers.publishing.delivery import FlushReport
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import MetricsSink, StatusPublisher
from producers.settings import ProducerSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

logger = Logger()
metrics = Metrics()
# Lambda's init phase is the moment to register the internal extension (no-op elsewhere).
after_response.start()


@dataclass(frozen=True, slots=True)
class FinishedRecord:
    """An InvokerQueue record whose job is done, kept until its status events are settled."""

    message_id: str
    receipt_handle: str
    job_id: str


class FinishedRecords:
    """Deletes InvokerQueue records whose jobs are done (the SQS adapter of the post-response work)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def delete(self, records: Sequence[FinishedRecord]) -> list[str]:
        """DeleteMessageBatch (10 a call); the messageIds not deleted, which SQS hands out again."""
        left: list[str] = []
        for start in range(0, len(records), 10):
            batch = records[start : start + 10]
            try:
                answer = self._client.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r.receipt_handle} for i, r in enumerate(batch)],
                )
            except Exception as error:  # post-response work has no caller to raise into
                logger.warning(
                    "finished records not deleted", extra={"error": f"{type(error).__name__}: {error}"}
                )
                left.extend(r.message_id for r in batch)
                continue
            left.extend(batch[int(f["Id"])].message_id for f in answer.get("Failed", []))
        return left


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

    from producers.aws import events_client, sqs_client

    store_config = Config(
        connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 3, "mode": "standard"}
    )
    sqs = sqs_client()
    runner = make_runner(
        fal,
        settings,
        events=events_client(),
        sqs=sqs,
        dynamodb=boto3.client("dynamodb", config=store_config),
    )
    queue = settings.invoker_queue_url
    return Invoker(runner, FinishedRecords(sqs, queue) if queue else None)


@functools.cache
def dependencies() -> Invoker:
    """The invoker for Lambda, built once per cold start (lazily, so tests can set env first)."""
    settings = ProducerSettings()
    return build_invoker(FalClientGateway(lambda: fal_key(settings)), settings)


def settle(
    flush: Callable[[], FlushReport], finished: list[FinishedRecord], records: FinishedRecords | None
) -> None:
    """Flush the status events; then delete `finished` if every one is on the bus or in the outbox.

    When some event is in neither (the outbox refused it: its ERROR line is the record), the
    records stay in the queue, and their redelivery re-publishes the job's recorded events.
    """
    report = flush()
    if not finished or records is None:
        return
    jobs = ", ".join(r.job_id for r in finished)
    if report.lost:
        logger.error(
            "status events neither delivered nor in the outbox; the job records are kept for redelivery",
            extra={"jobId": jobs, "lost": report.lost, "messageIds": [r.message_id for r in finished]},
        )
        return
    left = records.delete(finished)
    if left:
        logger.warning(
            "finished records come back after their visibility timeout",
            extra={"jobId": jobs, "messageIds": left},
        )


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
    keeper = records if deferred else None  # who deletes the finished records: settle, or the mapping
    failures: list[dict[str, str]] = []
    finished: list[FinishedRecord] = []
    handled = 0
    try:
        handled = _run_records(event, context, runner, failures, finished)
    finally:
        flush = functools.partial(runner.flush, after_response=deferred)
        after.defer(functools.partial(settle, flush, finished, keeper))
        if deferred:  # the handler's `log_metrics` has written its metrics by then: the flush's too
            after.defer(_flush_metrics)
    if keeper is not None:
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
        logger.append_keys(jobId=job.ref.job_id)
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
            logger.remove_keys(["jobId"])
    return len(finished)


@logger.inject_lambda_context
@metrics.log_metrics
@after_response.wrap
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    invoker = dependencies()
    return handle(event, context, invoker.runner, invoker.records)
