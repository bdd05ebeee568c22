"""ProjectorFn end to end on real engines: EventBridge → SQS delivery through moto server, the
handler writing to DynamoDB Local, and concurrent projectors racing on the same histories."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from typing import Any

import boto3
import pytest

from jobstatus.codec import from_item
from jobstatus.events import RANK, SOURCE_FAL_INVOKER, SOURCES, JobStatusChanged, Status
from projector import handler as projector
from projector.fold import project
from projector.store import JobStore
from tests.core.factories import NOW, TTL_DAYS, history
from tests.core.sqs import batch, failures, record
from tests.core.test_handler import FakeContext

pytestmark = pytest.mark.integration

LONG_TTL_DAYS = 3650  # the histories are dated 2026: keep them alive whenever the test runs


def items_of(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {i["jobId"]["S"]: from_item(i) for page in pages for i in page["Items"]}


def test_eventbridge_to_sqs_deliveries_are_projected(
    local_aws: dict[str, str], jobs_table: str, ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bus with a rule sending JobStatusChanged events to a queue (moto server)
    events_api = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    name = f"jobs-test-{uuid.uuid4().hex[:8]}"
    events_api.create_event_bus(Name=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"detail-type": ["JobStatusChanged"], "source": list(SOURCES)}
    events_api.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps(pattern))
    events_api.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "projector", "Arn": queue_arn}])
    # And the histories of 6 jobs, plus one event no producer of ours would send
    rnd = random.Random(3)
    events = [e for j in range(6) for e in history(f"job-{j}", rnd)]
    bad_detail = {**events[0].to_detail(), "jobId": "bad/id"}
    details = [json.dumps(e.to_detail()) for e in events] + [json.dumps(bad_detail)]
    entries: list[Any] = [
        {"EventBusName": name, "Source": SOURCE_FAL_INVOKER, "DetailType": "JobStatusChanged", "Detail": d}
        for d in details
    ]
    for start in range(0, len(entries), 10):
        assert events_api.put_events(Entries=entries[start : start + 10])["FailedEntryCount"] == 0
    # When the queue's messages reach the handler as Lambda would hand them over
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    while len(messages) < len(entries) and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages += got.get("Messages", [])
    assert len(messages) == len(entries)
    bad_ids = [m["MessageId"] for m in messages if "bad/id" in m["Body"]]
    monkeypatch.setenv("JOB_TTL_DAYS", str(LONG_TTL_DAYS))
    projector.dependencies.cache_clear()
    try:
        response = projector.lambda_handler(
            batch(*(record(m["Body"], m["MessageId"]) for m in messages)),
            FakeContext(),  # type: ignore[arg-type]
        )
    finally:
        projector.dependencies.cache_clear()
    # Then only the bad one failed, and the table holds the fold's items
    assert failures(response) == bad_ids
    assert items_of(ddb, jobs_table) == project(events, ttl_days=LONG_TTL_DAYS, now=time.time())


class NullMetrics:
    def add_metric(self, name: str, unit: Any, value: float) -> None:
        pass


def test_concurrent_projectors_converge_and_a_reader_never_sees_status_go_back(
    dynamodb_endpoint: str, jobs_table: str, ddb: Any
) -> None:
    # Given 50 jobs' histories (4-6 events each) and 4 projectors, each given its own shuffled,
    # duplicated delivery of all of them in batches of up to 25 records
    rnd = random.Random(11)
    events = [e for j in range(50) for e in history(f"job-{j:02d}", rnd)]
    workers = 4
    errors: list[BaseException] = []
    responses: list[dict[str, Any]] = []
    start = threading.Barrier(workers + 1)
    done = threading.Event()

    def deliveries(seed: int) -> list[list[JobStatusChanged]]:
        r = random.Random(seed)
        delivered = events + r.sample(events, len(events) // 3)
        r.shuffle(delivered)
        sizes = [r.randint(1, 25) for _ in delivered]
        out, i = [], 0
        for size in sizes:
            if i >= len(delivered):
                break
            out.append(delivered[i : i + size])
            i += size
        return out

    def project_all(seed: int) -> None:
        try:
            client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
            deps = projector.ProjectorDeps(
                store=JobStore(client, jobs_table, TTL_DAYS),
                ttl_days=TTL_DAYS,
                clock=lambda: NOW,
                metrics=NullMetrics(),
            )
            plan = deliveries(seed)
            start.wait()
            for chunk in plan:
                responses.append(projector.handle(batch(*(record(e) for e in chunk)), None, deps))
        except BaseException as error:  # surfaced by the main thread
            errors.append(error)

    seen: dict[str, tuple[int, int, str]] = {}
    backwards: list[str] = []
    reads = 0

    def read_all_the_time() -> None:
        nonlocal reads
        client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")
        r = random.Random(5)
        start.wait()
        while not done.is_set():
            job_id = f"job-{r.randrange(50):02d}"
            item = client.get_item(
                TableName=jobs_table, Key={"jobId": {"S": job_id}}, ConsistentRead=True
            ).get("Item")
            reads += 1
            if item is None:
                continue
            now = (int(item["attempt"]["N"]), RANK[Status(item["status"]["S"])], item["version"]["S"])
            before = seen.get(job_id)
            if before is not None and (now[0] < before[0] or (now[0] == before[0] and now[1] < before[1])):
                backwards.append(f"{job_id}: {before} then {now}")
            if before is not None and now[2] < before[2]:
                backwards.append(f"{job_id}: version {before[2]} then {now[2]}")
            seen[job_id] = now

    threads = [threading.Thread(target=project_all, args=(seed,)) for seed in range(workers)]
    reader = threading.Thread(target=read_all_the_time)
    for t in [*threads, reader]:
        t.start()
    # When they all run at once
    for t in threads:
        t.join(timeout=240)
    done.set()
    reader.join(timeout=30)
    # Then nothing failed, the reader saw no job go backwards, and the items are the fold's
    assert not errors, errors
    assert all(r == {"batchItemFailures": []} for r in responses)
    assert reads > 0 and not backwards, backwards
    assert items_of(ddb, jobs_table) == project(events, ttl_days=TTL_DAYS, now=NOW)
