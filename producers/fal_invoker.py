"""FalInvokerFn: SQS records whose bodies are `VideoGenerationRequested` events → a job on Fal.

The rule `VideoRequestedToInvokerRule` feeds `InvokerQueue` (BatchSize 1, partial batch
failures). A record that names no job goes to failure with a log line (and, after
`maxReceiveCount`, to the DLQ); a job that fails on Fal is a FAILED event, not a failed record.

`handle(event, context, runner)` drives it with injected dependencies (tests, the local stack,
benchmarks: `make_runner(fal, ...)` with any `FalGateway`); `lambda_handler` is the AWS entry.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import SOURCE_FAL_INVOKER
from producers.fal import FalClientGateway, FalGateway, key_from_secret
from producers.jobrun import BadRecord, JobRunner, RunnerConfig, parse_request
from producers.publisher import MetricsPort, SqsOutbox, StatusPublisher
from producers.settings import ProducerSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

logger = Logger()
metrics = Metrics()


def make_runner(
    fal: FalGateway,
    settings: ProducerSettings,
    *,
    events: EventBridgeClient,
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    metrics_sink: MetricsPort | None = metrics,
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


def build_runner(fal: FalGateway, settings: ProducerSettings) -> JobRunner:
    """The runner on `fal` with `settings` and the AWS clients of this environment.

    Lambda builds it on fal.ai's gateway (`dependencies`); the local stack on its simulated one.
    """
    import boto3
    from botocore.config import Config

    from producers.aws import events_client, sqs_client

    store_config = Config(
        connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 3, "mode": "standard"}
    )
    return make_runner(
        fal,
        settings,
        events=events_client(),
        sqs=sqs_client(),
        dynamodb=boto3.client("dynamodb", config=store_config),
    )


@functools.cache
def dependencies() -> JobRunner:
    """The runner for Lambda, built once per cold start (lazily, so tests can set env first)."""
    settings = ProducerSettings()
    return build_runner(FalClientGateway(lambda: fal_key(settings)), settings)


def handle(event: dict[str, Any], context: LambdaContext, runner: JobRunner) -> dict[str, Any]:
    """Run the job of every record; the records that must be retried, as `batchItemFailures`."""
    failures: list[dict[str, str]] = []
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
            logger.info("job handled", extra={"outcome": outcome})
        except IdempotencyAlreadyInProgressError:
            logger.warning("another run of this job is in progress; retrying the record later")
            failures.append({"itemIdentifier": message_id})
        except Exception:  # the record is retried (then DLQ); the job is not submitted twice
            logger.exception("job could not be handled; retrying the record later")
            failures.append({"itemIdentifier": message_id})
        finally:
            logger.remove_keys(["jobId"])
    return {"batchItemFailures": failures}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())
