"""Histories of jobs, and the bus, archive, rule and queue of template.yaml on moto."""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobstatus.codec import from_item
from jobstatus.events import (
    DETAIL_TYPE,
    SOURCE_FAL_INVOKER,
    SOURCE_SUBMIT,
    JobStatusChanged,
    format_timestamp,
)
from ops import rebuild_cli
from ops.template import Template
from projector.rebuild import ARCHIVE_ID, BUS_ID, PROJECTOR_RULE_ID
from tests.core import sqs

TTL_DAYS = 30


def history(jobs: int, *, seed: int, now: datetime, expired_jobs: int = 1) -> list[JobStatusChanged]:
    """Every event of `jobs` jobs (queued, processing, then completed or failed; some retried),
    plus `expired_jobs` jobs created long before the TTL, in time order."""
    rng = random.Random(seed)
    events: list[JobStatusChanged] = []
    for n in range(jobs + expired_jobs):
        age = timedelta(days=TTL_DAYS + 5) if n >= jobs else timedelta(hours=rng.randint(1, 48))
        events.extend(_job_events(rng, f"job-{n:04d}", f"user-{n % 7}", now - age))
    return sorted(events, key=lambda e: e.occurred_at)


def _job_events(rng: random.Random, job_id: str, user_id: str, created: datetime) -> list[JobStatusChanged]:
    clock = created
    events: list[JobStatusChanged] = []

    def add(status: str, attempt: int, **fields: Any) -> str:
        nonlocal clock
        clock += timedelta(milliseconds=rng.randint(1, 90_000))
        events.append(
            JobStatusChanged(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                job_id=job_id,
                user_id=user_id,
                status=status,
                occurred_at=format_timestamp(clock),
                created_at=format_timestamp(created),
                attempt=attempt,
                **fields,
            )
        )
        return format_timestamp(clock)

    attempts = 2 if rng.random() < 0.2 else 1
    for attempt in range(1, attempts + 1):
        add("QUEUED", attempt)
        started = add("PROCESSING", attempt, progress=rng.randint(0, 90))
        events[-1] = events[-1].model_copy(update={"started_at": started})
        if attempt < attempts or rng.random() < 0.25:
            error = {"code": "FAL_ERROR", "message": "model crashed", "retryable": True}
            add("FAILED", attempt, started_at=started, error=error)
        else:
            add(
                "COMPLETED",
                attempt,
                progress=100,
                started_at=started,
                output_url=f"https://cdn.example.com/{job_id}.mp4",
                result={"seconds": 5, "fps": 24},
                metrics={"falLatencyMs": rng.randint(1000, 90_000), "queueWaitMs": 1.5},
            )
    return events


def envelope(event: JobStatusChanged) -> dict[str, Any]:
    """The EventBridge event that carries `event`, from its producer, at its time."""
    source = SOURCE_SUBMIT if event.status == "QUEUED" else SOURCE_FAL_INVOKER
    return {**sqs.envelope(event.to_detail(), source=source), "time": event.occurred_at[:19] + "Z"}


def entry(event: JobStatusChanged, bus: str) -> dict[str, Any]:
    """The PutEvents entry that publishes `event` on `bus`."""
    return {
        "EventBusName": bus,
        "Source": SOURCE_SUBMIT if event.status == "QUEUED" else SOURCE_FAL_INVOKER,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(event.to_detail()),
    }


def scan_items(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every item of the table as plain values, by jobId."""
    items: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = from_item(raw)
            items[item["jobId"]] = item
    return items


@dataclass(frozen=True)
class Bus:
    """The template's bus, archive, projector rule and queue, made on moto."""

    name: str
    queue_url: str
    archive_arn: str
    bus_arn: str
    rule_arn: str


def create_bus(events: Any, sqs: Any, template: Template) -> Bus:
    """Make the template's JobsBus, JobStatusArchive, ProjectorQueue and JobStatusToProjectorRule."""
    bus = template.physical_name(BUS_ID)
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    archive = template.properties(ARCHIVE_ID)
    archive_arn = events.create_archive(
        ArchiveName=archive["ArchiveName"],
        EventSourceArn=bus_arn,
        EventPattern=json.dumps(archive["EventPattern"]),
        RetentionDays=int(archive["RetentionDays"]),
    )["ArchiveArn"]
    queue = template.properties("ProjectorQueue")
    queue_url = sqs.create_queue(QueueName=queue["QueueName"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = template.properties(PROJECTOR_RULE_ID)
    rule_arn = events.put_rule(
        Name=rule["Name"], EventBusName=bus, EventPattern=json.dumps(rule["EventPattern"]), State="ENABLED"
    )["RuleArn"]
    target = {"Id": "ProjectorQueue", "Arn": queue_arn}
    events.put_targets(Rule=rule["Name"], EventBusName=bus, Targets=[target])
    return Bus(bus, queue_url, archive_arn, bus_arn, rule_arn)


def publish(events: Any, bus: str, history: list[JobStatusChanged]) -> None:
    """Put every event of `history` on the bus, ten at a time (PutEvents' limit)."""
    for start in range(0, len(history), 10):
        response = events.put_events(Entries=[entry(e, bus) for e in history[start : start + 10]])
        assert response["FailedEntryCount"] == 0, response


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete every message of the queue: the SQS records Lambda would be given."""
    from local.poller import sqs_record

    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
        if not messages.get("Messages"):
            return records
        records.extend(sqs_record(m, arn, "us-east-1") for m in messages["Messages"])
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages["Messages"])
            ],
        )


def parse(*argv: str) -> argparse.Namespace:
    """`jobstatus rebuild ARGV` parsed as the jobstatus command line parses it."""
    parser = argparse.ArgumentParser(prog="jobstatus")
    rebuild_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["rebuild", *argv])


def run(*argv: str) -> int:
    """Run `jobstatus rebuild ARGV`; its exit code."""
    args = parse(*argv)
    return int(args.run(args))


class ScriptedReplays:
    """Answers DescribeReplay from a script; an exception in it is raised."""

    def __init__(self, *answers: Any) -> None:
        self.answers: list[Any] = list(answers)
        self.cancelled: list[str] = []

    def describe(self, name: str) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def cancel(self, name: str) -> None:
        self.cancelled.append(name)
