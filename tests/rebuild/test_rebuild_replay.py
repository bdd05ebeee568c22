"""Rebuild by replay, end to end: moto server (EventBridge, SQS), DynamoDB Local, ProjectorFn's handler.

A history is published live and projected by the handler; the table is wiped (or damaged);
`jobstatus rebuild --since` replays the archive; the projector queue is drained through the
handler; the items are exactly those of the pure fold.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from jobstatus.events import JobStatusChanged
from ops.template import Template
from projector.fold import project
from projector.handler import ProjectorDeps, handle
from projector.store import JobStore
from tests.conftest import create_jobs_table

from .helpers import TTL_DAYS, create_bus, drain, history, publish, run, scan_items

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_aws")]

NOW = datetime.now(UTC)
BATCH_SIZE = 100  # ProjectorFn's, as template.yaml configures it


@pytest.fixture
def stack(moto_server, template):
    """The template's bus, archive, projector rule and queue on moto server, for a fresh stage."""
    stage = f"r{uuid.uuid4().hex[:8]}"
    events = boto3.client("events", endpoint_url=moto_server, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    return stage, events, sqs, create_bus(events, sqs, Template.read(Stage=stage))


def project_through_handler(ddb, table: str, records: list[dict[str, Any]], seed: int) -> None:
    """Feed records to ProjectorFn's handler in shuffled batches; every record must be applied."""
    random.Random(seed).shuffle(records)
    deps = ProjectorDeps(store=JobStore(ddb, table, TTL_DAYS), ttl_days=TTL_DAYS)
    for start in range(0, len(records), BATCH_SIZE):
        answer = handle({"Records": records[start : start + BATCH_SIZE]}, None, deps)
        assert answer == {"batchItemFailures": []}


@dataclass(frozen=True)
class Projected:
    events: list[JobStatusChanged]
    items: dict[str, dict[str, Any]]


@pytest.fixture
def projected(ddb, jobs_table, stack):
    """A history published live and projected by the handler; the items match the pure fold."""
    _, events, sqs, bus = stack
    published = history(30, seed=31, now=NOW)
    publish(events, bus.name, published)
    project_through_handler(ddb, jobs_table, drain(sqs, bus.queue_url), seed=1)
    expected = project(published, ttl_days=TTL_DAYS, now=time.time())
    assert scan_items(ddb, jobs_table) == expected
    return Projected(published, expected)


def replay_and_project(ddb, jobs_table, stack) -> list[dict[str, Any]]:
    stage, _, sqs, bus = stack
    name = f"rebuild-{uuid.uuid4().hex}"
    code = run("--since", "3d", "--stage", stage, "--account", "123456789012", "--poll", "0", "--name", name)
    assert code == 0
    records = drain(sqs, bus.queue_url)
    project_through_handler(ddb, jobs_table, list(records), seed=2)
    return records


def test_a_wiped_table_is_rebuilt_identically_by_replay(ddb, jobs_table, template, stack, projected):
    # Given the table deleted and made again from the template
    ddb.delete_table(TableName=jobs_table)
    create_jobs_table(ddb, template, jobs_table)
    assert scan_items(ddb, jobs_table) == {}

    # When the archive is replayed and the projector drains its queue
    records = replay_and_project(ddb, jobs_table, stack)

    # Then every archived event came back as a replayed one, and the items are the fold's
    bodies = [json.loads(r["body"]) for r in records]
    assert all("replay-name" in body for body in bodies)
    assert sorted(b["detail"]["eventId"] for b in bodies) == sorted(e.event_id for e in projected.events)
    assert scan_items(ddb, jobs_table) == projected.items


def test_a_damaged_table_is_repaired_by_replay(ddb, jobs_table, stack, projected):
    # Given items deleted, items without fill-in fields, items rolled back to an older winner
    ids = sorted(projected.items)
    for job_id in ids[:6]:
        ddb.delete_item(TableName=jobs_table, Key={"jobId": {"S": job_id}})
    for job_id in ids[6:12]:
        ddb.update_item(
            TableName=jobs_table,
            Key={"jobId": {"S": job_id}},
            UpdateExpression="REMOVE #c, #t",
            ExpressionAttributeNames={"#c": "createdAt", "#t": "ttl"},
        )
    for job_id in ids[12:18]:
        ddb.update_item(
            TableName=jobs_table,
            Key={"jobId": {"S": job_id}},
            UpdateExpression="SET #s = :s, #v = :v",
            ExpressionAttributeNames={"#s": "status", "#v": "version"},
            ExpressionAttributeValues={
                ":s": {"S": "PROCESSING"},
                ":v": {"S": "0001#2#2000-01-01T00:00:00.000Z#x"},
            },
        )
    assert scan_items(ddb, jobs_table) != projected.items

    # When the archive is replayed and the projector drains its queue
    replay_and_project(ddb, jobs_table, stack)

    # Then the table is whole again, and another replay changes nothing
    assert scan_items(ddb, jobs_table) == projected.items
    replay_and_project(ddb, jobs_table, stack)
    assert scan_items(ddb, jobs_table) == projected.items
