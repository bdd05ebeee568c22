"""SQS records whose bodies are EventBridge events, as Lambda hands them to ProjectorFn."""

from __future__ import annotations

import json
import uuid
from typing import Any

from jobstatus.events import DETAIL_TYPE, SOURCE_FAL_INVOKER, JobStatusChanged


def envelope(
    detail: dict[str, Any],
    *,
    detail_type: str = DETAIL_TYPE,
    source: str = SOURCE_FAL_INVOKER,
    replay_name: str | None = None,
    account: bool = True,
) -> dict[str, Any]:
    """An EventBridge event as a rule delivers it to SQS (replayed ones carry `replay-name`)."""
    value: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "time": "2026-11-22T07:00:01Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    if account:
        value["account"] = "123456789012"
    if replay_name is not None:
        value["replay-name"] = replay_name
    return value


def record(body: str | dict[str, Any] | JobStatusChanged, message_id: str | None = None) -> dict[str, Any]:
    """One SQS record; an event or an envelope is serialised into its body."""
    if isinstance(body, JobStatusChanged):
        body = envelope(body.to_detail())
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs-test-projector",
        "awsRegion": "us-east-1",
    }


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event for an SQS batch."""
    return {"Records": list(records)}


def failures(response: dict[str, Any]) -> list[str]:
    """The message ids a partial-batch answer reports as failed."""
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]
