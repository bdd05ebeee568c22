"""Helpers of the live-update tests: an in-memory `@connections` API, a browser, stream records from moto.

Every frame the fake API carries is checked against docs/asyncapi.yaml as it is sent, and every
frame a test sends as a valid client message is checked too: the document is checked against
every message the tests exchange.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobstatus.events import JobStatusChanged
from tests.live.asyncapi import check_client_message, check_server_message

ALICE = "alice-sub"
BOB = "bob-sub"
ROOT = "root-sub"  # an admin
CREATED = "2026-11-22T07:00:00.000Z"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC).timestamp()  # an hour after CREATED, 30 days before the ttl


class Gone(Exception):
    """Raised by a fake connection that fails (not 410)."""


@dataclass
class FakeConnectionsApi:
    """The `@connections` API in memory: frames per connection; `gone` ids answer 410, `broken` raise."""

    frames: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    gone: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    posts: int = 0

    def post(self, connection_id: str, data: bytes) -> bool:
        self.posts += 1
        if connection_id in self.broken:
            raise Gone(f"{connection_id} is broken")
        if connection_id in self.gone:
            return False
        message = json.loads(data)
        check_server_message(message)
        self.frames[connection_id].append(message)
        return True

    def take(self, connection_id: str) -> list[dict[str, Any]]:
        """The frames sent to a connection since the last take."""
        frames = list(self.frames[connection_id])
        self.frames[connection_id].clear()
        return frames


@dataclass
class Browser:
    """A client that keeps, per job, the message with the greatest version it has seen."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def receive(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if message["type"] != "job":
                continue
            job_id = message["job"]["jobId"]
            held = self.jobs.get(job_id)
            if held is None or message["version"] > held["version"]:
                self.jobs[job_id] = message


def client_frame(message: dict[str, Any]) -> str:
    """A valid client message as a frame (checked against the document first)."""
    check_client_message(message)
    return json.dumps(message)


def ws_event(
    route: str, connection_id: str, body: str | None = None, authorizer: Any = None
) -> dict[str, Any]:
    """An API Gateway WebSocket proxy event, shaped as AWS documents it."""
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
        "connectionId": connection_id,
        "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "stage": "test",
        "apiId": "abcdef1234",
        "requestId": f"req-{connection_id}",
        "messageDirection": "IN",
        "connectedAt": 1795330000000,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if body is not None:
        event["body"] = body
    return event


def stream_records(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of a moto table stream, in order (DescribeStream, GetShardIterator, GetRecords)."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def as_lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda's event source mapping hands it over (JSON: no datetimes)."""
    dynamodb = {k: v for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"}
    return {
        **{k: v for k, v in record.items() if k != "dynamodb"},
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def job_event(
    job_id: str, status: str = "QUEUED", occurred: str = CREATED, user_id: str = ALICE, **fields: Any
) -> JobStatusChanged:
    """A valid JobStatusChanged event of one job (created at CREATED)."""
    return JobStatusChanged(
        event_id=str(uuid.uuid4()),
        job_id=job_id,
        user_id=user_id,
        status=status,
        occurred_at=occurred,
        created_at=CREATED,
        **fields,
    )
