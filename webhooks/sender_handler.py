"""WebhookSenderFn: delivers the delivery queue's messages (DESIGN §4c).

Records of a batch are delivered concurrently per job and URL, so a slow or garbage receiver
holds up only its own deliveries; one job's changes to one URL go out oldest version first.
From each outcome: RETRY and WAIT hide the message with ChangeMessageVisibility
(the schedule's wait, at most 12 h at a time; longer waits are chained, see
`webhooks.ledger.visibility_for`) and report it failed so SQS keeps it; DEAD moves it to the DLQ
(the attempts are counted in the ledger, not in receive counts, so the sender moves it itself;
the queue's RedrivePolicy is the safety net for a message the sender cannot handle at all).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.session import Session

from jobstatus.logkeys import current_function_keys, log_this_thread_as, names_its_function
from webhooks.model import BadMessage, Delivery
from webhooks.queue import DeliveryQueue
from webhooks.sender import Outcome, Sender
from webhooks.settings import WebhookSettings
from webhooks.signing import read_master_secret, user_secret
from webhooks.store import DeliveryLedgerStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

MAX_WORKERS = 10
logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Dependencies:
    """The sender logic and the queue adapter."""

    sender: Sender
    queue: DeliveryQueue


@functools.cache
def dependencies() -> Dependencies:
    """Built once per container: settings, clients, and the master secret (read once)."""
    settings = WebhookSettings.from_env().require(
        "delivery_queue_url", "delivery_dlq_url", "deliveries_table_name", "webhook_secret_id"
    )
    session = Session()
    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    master = read_master_secret(
        cast(Any, session.create_client("secretsmanager", config=config)), settings.webhook_secret_id
    )
    dynamodb = cast("DynamoDBClient", session.create_client("dynamodb", config=config))
    sqs = cast("SQSClient", session.create_client("sqs", config=config))
    sender = Sender(
        ledger=DeliveryLedgerStore(dynamodb, settings.deliveries_table_name),
        secret_for=functools.lru_cache(maxsize=4096)(functools.partial(user_secret, master)),
        allow_local=settings.allow_local,
    )
    return Dependencies(sender, DeliveryQueue(sqs, settings.delivery_queue_url, settings.delivery_dlq_url))


Read = tuple[dict[str, Any], Delivery | BadMessage]  # a record, and its delivery or why it has none


def read(record: dict[str, Any]) -> Read:
    """The record with its delivery, read once (or the reason it cannot be read)."""
    try:
        return record, Delivery.from_message(str(record.get("body", "")))
    except BadMessage as error:
        return record, error


def _one(record: dict[str, Any], delivery: Delivery | BadMessage, deps: Dependencies) -> str | None:
    """Deliver one record; its messageId when SQS must keep it, else None."""
    message_id = str(record.get("messageId", ""))
    body = str(record.get("body", ""))
    if isinstance(delivery, BadMessage):
        logger.error("delivery message refused", extra={"messageId": message_id, "why": str(delivery)})
        deps.queue.dead_letter(body, f"bad message: {delivery}")
        metrics.add_metric(name="WebhooksDeadLettered", unit=MetricUnit.Count, value=1)
        return None
    result = deps.sender.deliver(delivery)
    logger.info(
        "delivery " + result.outcome.value,
        extra={
            "jobId": delivery.job_id,
            "version": delivery.version,
            "attempt": result.attempt,
            "statusCode": result.status_code,
            "detail": result.detail,
        },
    )
    metrics.add_metric(name=f"Webhooks{result.outcome.value.capitalize()}", unit=MetricUnit.Count, value=1)
    if result.outcome in (Outcome.RETRY, Outcome.WAIT):
        deps.queue.hide(str(record["receiptHandle"]), result.visibility)
        return message_id
    if result.outcome is Outcome.DEAD:
        deps.queue.dead_letter(body, result.detail)
    return None


def _guarded(one: Read, deps: Dependencies) -> str | None:
    record, delivery = one
    try:
        return _one(record, delivery, deps)
    except Exception:
        # DynamoDB or SQS failed us: SQS shows the message again after the queue's visibility timeout.
        logger.exception("delivery not settled", extra={"messageId": record.get("messageId")})
        return str(record.get("messageId", ""))


def in_order(records: list[dict[str, Any]]) -> list[list[Read]]:
    """The batch's records, each read once, grouped per job and URL, each group oldest version first.

    Groups are delivered concurrently (a slow receiver holds up only its own), a group's records one
    after another: two changes of one job arriving together go out in their order, instead of the
    newer one winning the claim and the older one being dropped as overtaken. A record that cannot
    be read is a group of its own (`_one` dead-letters it).
    """
    groups: dict[tuple[str, str], list[Read]] = {}
    alone: list[list[Read]] = []
    for one in map(read, records):
        delivery = one[1]
        if isinstance(delivery, BadMessage):
            alone.append([one])
        else:
            groups.setdefault((delivery.job_id, delivery.url), []).append(one)
    ordered = [sorted(group, key=lambda one: cast(Delivery, one[1]).version) for group in groups.values()]
    return ordered + alone


def handle(event: dict[str, Any], deps: Dependencies) -> dict[str, Any]:
    """One SQS batch; `batchItemFailures` names the messages SQS must keep."""
    records = list(event.get("Records") or [])
    if not records:
        return {"batchItemFailures": []}
    keys = current_function_keys()  # the pool's threads log as this function

    def deliver(group: list[Read]) -> list[str | None]:
        log_this_thread_as(keys)
        return [_guarded(one, deps) for one in group]

    groups = in_order(records)
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(groups))) as pool:
        kept = [message_id for group in pool.map(deliver, groups) for message_id in group]
    return {
        "batchItemFailures": [{"itemIdentifier": message_id} for message_id in kept if message_id is not None]
    }


@logger.inject_lambda_context(clear_state=True)
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point."""
    return handle(event, dependencies())
