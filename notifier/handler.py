"""NotifierFn: DynamoDB Streams batches of the Jobs table (NEW_IMAGE) to the subscribed browsers.

For each changed item: the connections following its job or its owner (`mine`), kept to those that
may read it (owner or admin), each sent `{"type": "job", ...}` through `@connections`; a connection
that answers 410 is forgotten. A record that could not be handled (a lookup or a post failed) is
reported in `batchItemFailures` by its SequenceNumber, so Lambda retries from it; a resent message is
harmless, since a client keeps per job the greatest version it has seen. A record that can never be
sent (not a job item, a REMOVE) is skipped with a log line.

Metrics: `JobMessagesSent`, `ConnectionsGone`, `StreamRecordsFailed`, `StreamRecordsSkipped`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from api.store import from_item
from jobstatus.logkeys import names_its_function
from notifier.core import Subscriber, encode, is_notifiable, job_message, job_topic, recipients, user_topic
from notifier.sender import Sender

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


class Subscribers(Protocol):
    """What the notifier needs of the connections table (`notifier.store.ConnectionStore`)."""

    def subscribers(self, topic: str) -> list[Subscriber]: ...
    def forget(self, connection_id: str) -> int: ...


@dataclass(frozen=True)
class NotifierDeps:
    """The adapters the notifier uses, built outside."""

    connections: Subscribers
    sender: Sender
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class NotifyReport:
    """What one batch did."""

    failures: list[str] = field(default_factory=list)
    sent: int = 0
    gone: int = 0
    skipped: int = 0

    def response(self) -> dict[str, Any]:
        """The partial-batch answer of a stream event source: failed records by SequenceNumber."""
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in self.failures]}


def _image(record: Mapping[str, Any]) -> dict[str, Any] | None:
    if record.get("eventName") not in {"INSERT", "MODIFY"}:
        return None
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not isinstance(image, dict):
        return None
    try:
        item = from_item(image)
    except (ValueError, TypeError, AttributeError):
        return None
    return item if is_notifiable(item) else None


def process(records: Iterable[Mapping[str, Any]], deps: NotifierDeps) -> NotifyReport:
    """Send every changed job to its readers; the records that failed, by SequenceNumber."""
    report = NotifyReport()
    gone: set[str] = set()
    topics: dict[str, list[Subscriber]] = {}  # per batch: one Query per topic

    def following(topic: str) -> list[Subscriber]:
        if topic not in topics:
            topics[topic] = deps.connections.subscribers(topic)
        return topics[topic]

    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        item = _image(record)
        if item is None:
            logger.info("stream record skipped: not a job change", extra={"sequenceNumber": sequence})
            report.skipped += 1
            continue
        job_id = item["jobId"]
        try:
            subscribers = following(job_topic(job_id)) + following(user_topic(item["userId"]))
            frame = encode(job_message(item))
            readers = recipients(item, subscribers, deps.clock())
            logger.info(
                "job change", extra={"jobId": job_id, "version": item["version"], "recipients": len(readers)}
            )
            for connection_id in readers:
                if connection_id in gone:
                    continue
                if deps.sender.post(connection_id, frame):
                    report.sent += 1
                else:
                    gone.add(connection_id)
                    deps.connections.forget(connection_id)
                    report.gone += 1
                    logger.info(
                        "connection gone (410); forgotten",
                        extra={"jobId": job_id, "connectionId": connection_id},
                    )
        except Exception:
            logger.exception(
                "stream record failed; Lambda retries from it",
                extra={"jobId": job_id, "sequenceNumber": sequence},
            )
            report.failures.append(sequence)
            topics.clear()  # a retry within this batch reads the subscribers afresh
    return report


def handle(event: Mapping[str, Any], deps: NotifierDeps) -> dict[str, Any]:
    """One stream batch: process it, count it, answer the partial-batch response."""
    records = event.get("Records")
    if not isinstance(records, list):
        logger.error("the invocation is not a stream batch: no Records list")
        return NotifyReport().response()
    report = process([r if isinstance(r, Mapping) else {} for r in records], deps)
    metrics.add_metric(name="JobMessagesSent", unit=MetricUnit.Count, value=report.sent)
    metrics.add_metric(name="ConnectionsGone", unit=MetricUnit.Count, value=report.gone)
    metrics.add_metric(name="StreamRecordsFailed", unit=MetricUnit.Count, value=len(report.failures))
    metrics.add_metric(name="StreamRecordsSkipped", unit=MetricUnit.Count, value=report.skipped)
    logger.info(
        "stream batch handled",
        extra={
            "records": len(records),
            "sent": report.sent,
            "gone": report.gone,
            "failed": len(report.failures),
        },
    )
    return report.response()


@functools.cache
def dependencies() -> NotifierDeps:
    """The production adapters, built once per container."""
    from notifier.aws import notifier_deps

    return notifier_deps()


@logger.inject_lambda_context(clear_state=True)
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point of NotifierFn."""
    return handle(event, dependencies())
