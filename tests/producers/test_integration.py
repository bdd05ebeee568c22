"""submit → invoker → bus → SQS → projector, over HTTP: moto server (EventBridge, SQS), DynamoDB Local.

Fal is mocked at the HTTP layer (respx); everything else is the real handlers and real engines.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import httpx
import pytest
import respx
from botocore.config import Config

from jobstatus.events import SOURCE_SUBMIT
from jobstatus.settings import Settings
from producers.invoker import handler as fal_invoker
from producers.invoker.fal import FalClientGateway
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import StatusPublisher
from producers.settings import ProducerSettings
from producers.submit import handler as submit
from producers.submit.submitter import SubmitDeps, Submitter
from projector import handler as projector
from projector.store import JobStore
from tests.producers.fakes import lambda_context
from tests.producers.test_submit import post

pytestmark = pytest.mark.integration

MODEL = "fal-ai/kling-video/v2/master/text-to-video"
VIDEO = "https://v3.fal.media/files/rabbit/it.mp4"
# Generous timeouts: the machine is shared; the fast-fail config is tested elsewhere.
PATIENT = Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1, "mode": "standard"})


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        records += [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return records


def queue_with_rule(events: Any, sqs: Any, bus: str, name: str, pattern: dict[str, Any]) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{name}-rule", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"{name}-rule", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def create_idempotency_table(ddb: Any, name: str) -> str:
    """The idempotency table the producers' Powertools persistence layer expects (key `id`)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def test_submit_to_completed_item(local_aws: dict[str, str], jobs_table: str, ddb: Any) -> None:
    # Given: a bus with the template's two rules, an outbox and an idempotency table
    suffix = uuid.uuid4().hex[:8]
    bus = f"jobs-it-{suffix}"
    events = boto3.client("events", config=PATIENT)
    sqs = boto3.client("sqs", config=PATIENT)
    events.create_event_bus(Name=bus)
    invoker_queue = queue_with_rule(
        events,
        sqs,
        bus,
        f"invoker-{suffix}",
        {"detail-type": ["VideoGenerationRequested"], "source": [SOURCE_SUBMIT]},
    )
    projector_queue = queue_with_rule(
        events, sqs, bus, f"projector-{suffix}", {"detail-type": ["JobStatusChanged"]}
    )
    outbox = sqs.create_queue(QueueName=f"outbox-{suffix}")["QueueUrl"]
    idempotency = create_idempotency_table(ddb, f"idem-{suffix}")
    settings = ProducerSettings(
        event_bus_name=bus,
        outbox_queue_url=outbox,
        idempotency_table_name=idempotency,
        status_flush_seconds=5,
        submit_publish_seconds=5,
        fal_poll_seconds=0.001,
    )

    # When: the user submits
    submit_publisher = StatusPublisher(events, SqsOutbox(sqs, outbox), bus_name=bus, source=SOURCE_SUBMIT)
    submit_handler = Submitter(SubmitDeps(events=events, publisher=submit_publisher, settings=settings))
    answer = submit.handle(
        post({"model": MODEL, "input": {"prompt": "a rabbit"}}), lambda_context(), submit_handler
    )
    assert answer["statusCode"] == 202
    job_id = json.loads(answer["body"])["jobId"]

    # ... the invoker runs the request it receives through InvokerQueue, on a mocked Fal
    requests = receive_all(sqs, invoker_queue)
    assert len(requests) == 1
    runner = fal_invoker.make_runner(
        FalClientGateway(lambda: "it-key"), settings, events=events, sqs=sqs, dynamodb=ddb, metrics_sink=None
    )
    base = "https://queue.fal.run/fal-ai/kling-video/requests/it-1"
    with respx.mock(assert_all_called=False) as fal:
        fal.post(f"https://queue.fal.run/{MODEL}").respond(
            200,
            json={
                "request_id": "it-1",
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": base,
            },
        )
        fal.get(f"{base}/status").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETED", "logs": []})
        )
        fal.get(base).respond(200, json={"video": {"url": VIDEO}})
        invoked = fal_invoker.handle({"Records": requests}, lambda_context(), runner)
    assert invoked == {"batchItemFailures": []}
    submit_publisher.close()
    runner.publisher.close()

    # ... and the projector folds what the bus delivered to ProjectorQueue
    records = receive_all(sqs, projector_queue)
    store = JobStore(ddb, jobs_table, Settings.from_env().job_ttl_days)
    deps = projector.ProjectorDeps(store=store, ttl_days=30)
    assert projector.handle({"Records": records}, None, deps) == {"batchItemFailures": []}

    # Then: the item is COMPLETED with its outputUrl, and nothing went to the outbox
    item = ddb.get_item(TableName=jobs_table, Key={"jobId": {"S": job_id}}, ConsistentRead=True)["Item"]
    assert item["status"]["S"] == "COMPLETED" and item["outputUrl"]["S"] == VIDEO
    assert item["userId"]["S"] == "user-1"
    statuses = sorted(json.loads(r["body"])["detail"]["status"] for r in records)
    assert statuses == [
        "COMPLETED",
        "PROCESSING",
        "QUEUED",
        "QUEUED",
    ]  # QUEUED from submit and from the invoker
    assert receive_all(sqs, outbox) == []
    ddb.delete_table(TableName=idempotency)
