"""WebhookDispatcherFn: the Jobs table's stream (NEW_IMAGE) to the delivery queue (DESIGN §4c).

A sibling of NotifierFn on the same stream. Thin: `webhooks.dispatch.delivery_of` decides, the
queue adapter sends. A record that is not a Jobs image is logged and skipped (it can never
become one); a record SQS did not take is reported, so Lambda retries the stream from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.session import Session

from jobstatus.logkeys import names_its_function
from webhooks.dispatch import delivery_of
from webhooks.model import Delivery
from webhooks.queue import DeliveryQueue
from webhooks.settings import WebhookSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    """The delivery queue."""

    queue: DeliveryQueue


@functools.cache
def dependencies() -> Dependencies:
    """Built once per container from the environment."""
    settings = WebhookSettings.from_env().require("delivery_queue_url")
    client = cast("SQSClient", Session().create_client("sqs"))
    return Dependencies(DeliveryQueue(client, settings.delivery_queue_url))


def handle(event: dict[str, Any], deps: Dependencies) -> dict[str, Any]:
    """One batch of stream records; `batchItemFailures` names the records to retry."""
    pending: list[tuple[str, Delivery]] = []
    for record in event.get("Records") or []:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            delivery = delivery_of(record)
        except (ValueError, TypeError, KeyError) as error:
            logger.error(
                "stream record skipped: not a Jobs image", extra={"sequence": sequence, "why": str(error)}
            )
            metrics.add_metric(name="WebhookRecordsInvalid", unit=MetricUnit.Count, value=1)
            continue
        if delivery is not None:
            pending.append((sequence, delivery))
    failed: set[str] = set()
    if pending:
        try:
            refused = deps.queue.send([delivery for _, delivery in pending])
        except Exception:
            logger.exception("delivery queue unavailable")
            refused = list(range(len(pending)))
        for index in refused:
            sequence, delivery = pending[index]
            logger.warning(
                "delivery not queued", extra={"jobId": delivery.job_id, "version": delivery.version}
            )
            failed.add(sequence)
        for sequence, delivery in pending:
            if sequence not in failed:
                logger.info(
                    "delivery queued",
                    extra={"jobId": delivery.job_id, "version": delivery.version, "status": delivery.status},
                )
        metrics.add_metric(name="WebhooksQueued", unit=MetricUnit.Count, value=len(pending) - len(refused))
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in sorted(failed)]}


@logger.inject_lambda_context(clear_state=True)
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point."""
    return handle(event, dependencies())
