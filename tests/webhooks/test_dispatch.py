"""The dispatcher: which Jobs stream records become deliveries, and what it reports when SQS refuses."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from tests.webhooks.fakes import Clock, FakeQueue
from tests.webhooks.stream import job_item, stream_record, version
from webhooks.dispatch import delivery_of
from webhooks.dispatcher import Dependencies, handle
from webhooks.model import BadMessage, Delivery
from webhooks.queue import DeliveryQueue

pytestmark = pytest.mark.unit

URL = "https://hooks.example.com/in"


def test_a_completed_job_with_a_webhook_becomes_one_delivery_of_the_get_body():
    item = job_item("job-1", "COMPLETED", 90, 3, webhook=URL)
    delivery = delivery_of(stream_record(item, 1))
    assert delivery is not None
    assert (delivery.job_id, delivery.user_id, delivery.url, delivery.status) == (
        "job-1",
        "user-1",
        URL,
        "COMPLETED",
    )
    assert delivery.version == "0001#3#2026-11-22T07:01:30.000Z#00000000-0000-4000-8000-000000000003"
    body = json.loads(delivery.body)
    assert body["type"] == "job.completed"
    assert body["timestamp"] == "2026-11-22T07:01:30.000Z"
    data = body["data"]
    assert (data["jobId"], data["status"], data["outputUrl"]) == (
        "job-1",
        "COMPLETED",
        "https://cdn.example.com/job-1.mp4",
    )
    assert data["completedAt"] == "2026-11-22T07:01:30.000Z"
    assert "userId" not in data and "ttl" not in data and "version" not in data


@pytest.mark.parametrize(
    ("status", "events", "delivered"),
    [
        ("QUEUED", None, False),
        ("PROCESSING", None, False),
        ("COMPLETED", None, True),
        ("FAILED", None, True),
        ("PROCESSING", ["PROCESSING"], True),
        ("COMPLETED", ["PROCESSING"], False),
        ("QUEUED", ["QUEUED", "FAILED"], True),
    ],
)
def test_only_subscribed_statuses_are_delivered(status, events, delivered):
    record = stream_record(job_item("job-1", status, 10, 1, webhook=URL, events=events), 1)
    assert (delivery_of(record) is not None) is delivered


def test_no_webhook_no_delivery_and_removals_are_ignored():
    assert delivery_of(stream_record(job_item("job-1", "COMPLETED", 10, 1, webhook=None), 1)) is None
    legacy = job_item("job-1", "COMPLETED", 10, 1, webhook=None)
    del legacy["request"]  # an item written before `request` existed
    assert delivery_of(stream_record(legacy, 1)) is None
    assert delivery_of(stream_record(None, 2, event_name="REMOVE")) is None


def test_a_record_without_an_image_is_refused():
    with pytest.raises(ValueError, match="NEW_IMAGE"):
        delivery_of(stream_record(None, 1, event_name="MODIFY"))


def test_handler_skips_bad_records_and_reports_those_sqs_refused():
    queue = FakeQueue(Clock())
    queue.refuse_sends = 1
    records = [
        stream_record(job_item("job-1", "COMPLETED", 10, 1, webhook=URL), 1),
        stream_record(None, 2, event_name="MODIFY"),  # not an image: logged, skipped
        stream_record(job_item("job-2", "FAILED", 11, 2, webhook=URL), 3),
        stream_record(job_item("job-3", "QUEUED", 12, 3, webhook=URL), 4),  # not subscribed
    ]
    answer = handle({"Records": records}, Dependencies(queue))  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"{1:021d}"}]}
    (queued,) = [Delivery.from_message(m.body) for m in queue.messages.values()]
    assert (queued.job_id, queued.status) == ("job-2", "FAILED")


def test_message_round_trip_and_refusals():
    delivery = Delivery("job-1", "user-1", URL, version("COMPLETED", 1, 1), "COMPLETED", '{"a":1}')
    assert Delivery.from_message(delivery.to_message()) == delivery
    for text, why in [
        ("nope", "not JSON"),
        ("[]", "object"),
        ('{"jobId": "j"}', "missing"),
        (
            delivery.to_message().replace('"COMPLETED"', '"DONE"'),
            "unknown status",
        ),
    ]:
        with pytest.raises(BadMessage, match=why):
            Delivery.from_message(text)


def test_delivery_queue_adapter_on_moto_sqs():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="deliveries")["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="deliveries-dlq")["QueueUrl"]
        adapter = DeliveryQueue(sqs, queue_url, dlq_url)
        deliveries = [
            Delivery(f"job-{n}", "user-1", URL, version("COMPLETED", n, n), "COMPLETED", "{}")
            for n in range(12)
        ]
        assert adapter.send(deliveries) == []
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        message = received["Messages"][0]
        sent = Delivery.from_message(message["Body"])
        assert message["MessageAttributes"]["webhookId"]["StringValue"] == f"{sent.job_id}.{sent.version}"
        adapter.hide(message["ReceiptHandle"], 600)
        adapter.dead_letter(message["Body"], "every scheduled attempt failed")
        (dead,) = sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
        assert dead["Body"] == message["Body"]
        assert dead["MessageAttributes"]["reason"]["StringValue"] == "every scheduled attempt failed"
