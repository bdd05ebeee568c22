"""RepublisherFn: puts the outbox's undelivered status events back on the bus.

Each SQS message of `StatusOutboxQueue` is one PutEvents entry as JSON (written by
`StatusPublisher`). The batch goes out in as few PutEvents calls as the limits allow, with
short retries of the entries that fail transiently; the messages whose entries still fail
are reported as `batchItemFailures`, so SQS tries them again later and, after
`maxReceiveCount`, parks them in `StatusOutboxDLQ`. Nothing is lost on the way to the archive.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobstatus.events import DETAIL_TYPE, SOURCES
from jobstatus.logkeys import names_its_function
from jobstatus.metrics import MetricsSink
from producers.publishing.putevents import Backoff, Entry, EventsPort, put_with_retries

logger = Logger()
metrics = Metrics()

ENTRY_KEYS: Final = frozenset(
    {"Source", "DetailType", "Detail", "EventBusName", "Time", "Resources", "TraceHeader"}
)


class BadOutboxMessage(ValueError):
    """A message that is not a status event's PutEvents entry."""


@dataclass
class RepublisherDeps:
    """What the handler needs."""

    events: EventsPort
    metrics: MetricsSink | None = None
    budget_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.05, cap_seconds=1.0))


def parse_entry(body: str) -> Entry:
    """The PutEvents entry in an outbox message; `BadOutboxMessage` if it is not one of ours."""
    try:
        entry = json.loads(body)
    except ValueError as error:
        raise BadOutboxMessage("the body is not JSON") from error
    if not isinstance(entry, dict) or not set(entry) <= ENTRY_KEYS:
        raise BadOutboxMessage("the body is not a PutEvents entry")
    if entry.get("DetailType") != DETAIL_TYPE or entry.get("Source") not in SOURCES:
        raise BadOutboxMessage(
            f"not a {DETAIL_TYPE} entry of ours: {entry.get('Source')}/{entry.get('DetailType')}"
        )
    if not isinstance(entry.get("Detail"), str) or not entry.get("EventBusName"):
        raise BadOutboxMessage("the entry lacks its Detail or EventBusName")
    return entry  # type: ignore[return-value]  # checked above: the keys of PutEventsRequestEntry


def _job_id(entry: Entry) -> str | None:
    try:
        detail = json.loads(entry.get("Detail", "{}"))
    except ValueError:
        return None
    return detail.get("jobId") if isinstance(detail, dict) else None


def handle(event: dict[str, Any], context: LambdaContext, deps: RepublisherDeps) -> dict[str, Any]:
    """Republish the batch; the messages still undelivered, as `batchItemFailures`."""
    failures: list[dict[str, str]] = []
    entries: list[Entry] = []
    message_of: dict[int, str] = {}
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        try:
            entry = parse_entry(str(record.get("body", "")))
        except BadOutboxMessage as error:
            logger.error(
                "outbox message is not a status event entry",
                extra={"messageId": message_id, "error": str(error)},
            )
            failures.append({"itemIdentifier": message_id})
            continue
        entries.append(entry)
        message_of[id(entry)] = message_id
    sent = put_with_retries(
        deps.events,
        entries,
        deadline=deps.clock() + deps.budget_seconds,
        backoff=deps.backoff,
        clock=deps.clock,
    )
    for entry, failure in sent.failed:
        logger.warning(
            "status event still undelivered; SQS will retry it",
            extra={
                "jobId": _job_id(entry),
                "messageId": message_of[id(entry)],
                "code": failure.code,
                "error": failure.message,
            },
        )
        failures.append({"itemIdentifier": message_of[id(entry)]})
    for entry in sent.delivered:
        logger.info(
            "status event republished", extra={"jobId": _job_id(entry), "messageId": message_of[id(entry)]}
        )
    if deps.metrics is not None:
        deps.metrics.add_metric("StatusEventsRepublished", MetricUnit.Count, len(sent.delivered))
    return {"batchItemFailures": failures}


@functools.cache
def dependencies() -> RepublisherDeps:
    """The dependencies for Lambda, built once per cold start."""
    from producers.aws import events_client

    return RepublisherDeps(events=events_client(), metrics=metrics)


@logger.inject_lambda_context
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """AWS entry point."""
    return handle(event, context, dependencies())
