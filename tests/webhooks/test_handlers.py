"""The Lambda entry points: settings, cold-start wiring on moto, and the sender handler's SQS actions."""

from __future__ import annotations

import io
import json
import logging
import os

import boto3
import pytest
from moto import mock_aws

from tests.webhooks.fakes import Clock, FakeQueue
from webhooks import secret_handler, sender_handler
from webhooks.model import Delivery
from webhooks.sender import Outcome, Result
from webhooks.settings import SettingsError, WebhookSettings

pytestmark = pytest.mark.unit


def test_local_mode_is_refused_outside_local_stages():
    assert WebhookSettings.from_env({"STAGE": "dev", "WEBHOOKS_ALLOW_LOCAL": "true"}).allow_local is True
    assert WebhookSettings.from_env({"STAGE": "prod"}).allow_local is False
    with pytest.raises(SettingsError, match="WEBHOOKS_ALLOW_LOCAL"):
        WebhookSettings.from_env({"STAGE": "prod", "WEBHOOKS_ALLOW_LOCAL": "true"})
    with pytest.raises(SettingsError, match="true or false"):
        WebhookSettings.from_env({"WEBHOOKS_ALLOW_LOCAL": "maybe"})
    with pytest.raises(SettingsError, match="DELIVERY_QUEUE_URL"):
        WebhookSettings.from_env({}).require("delivery_queue_url")


class ScriptedSender:
    def __init__(self, results: dict[str, Result | Exception]) -> None:
        self.results = results

    def deliver(self, delivery: Delivery) -> Result:
        outcome = self.results[delivery.job_id]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def record(job_id: str, message_id: str) -> dict[str, str]:
    body = Delivery(job_id, "u", "https://h.example/x", "0001#3#t#e", "COMPLETED", "{}").to_message()
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": body}


def test_sender_handler_hides_retries_dead_letters_and_keeps_what_failed_to_settle():
    clock = Clock()
    queue = FakeQueue(clock)
    results = {
        "ok": Result(Outcome.DELIVERED),
        "retry": Result(Outcome.RETRY, 300, "HTTP 500"),
        "wait": Result(Outcome.WAIT, 60, "an attempt is in flight"),
        "dead": Result(Outcome.DEAD, detail="every scheduled attempt failed"),
        "boom": RuntimeError("DynamoDB unavailable"),
    }
    for job_id in results:
        queue.send([Delivery.from_message(record(job_id, job_id)["body"])])
    records = queue.receive(10)
    by_job = {json.loads(r["body"])["jobId"]: r for r in records}
    bad = {"messageId": "bad", "receiptHandle": "rh-bad", "body": "not json"}
    deps = sender_handler.Dependencies(ScriptedSender(results), queue)  # type: ignore[arg-type]
    answer = sender_handler.handle({"Records": [*records, bad]}, deps)
    kept = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert kept == {by_job["retry"]["messageId"], by_job["wait"]["messageId"], by_job["boom"]["messageId"]}
    messages = {m.message_id: m for m in queue.messages.values()}
    assert messages[by_job["retry"]["messageId"]].visible_at == clock.now + 300
    assert messages[by_job["wait"]["messageId"]].visible_at == clock.now + 60
    assert messages[by_job["boom"]["messageId"]].visible_at == clock.now + 180  # the queue's own timeout
    assert sorted(reason.split(":")[0] for _, reason in queue.dlq) == [
        "bad message",
        "every scheduled attempt failed",
    ]


def test_cold_start_wiring_reads_the_master_secret_once_from_secrets_manager(monkeypatch):
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="jobs-test/webhook-master-secret", SecretString="k" * 64)["ARN"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="d")["QueueUrl"]
        dlq_url = sqs.create_queue(QueueName="d-dlq")["QueueUrl"]
        for name, value in {
            "WEBHOOK_SECRET_ID": arn,
            "DELIVERY_QUEUE_URL": queue_url,
            "DELIVERY_DLQ_URL": dlq_url,
            "DELIVERIES_TABLE_NAME": "JobsWebhookDeliveries-test",
            "STAGE": "test",
        }.items():
            monkeypatch.setenv(name, value)
        sender_handler.dependencies.cache_clear()
        secret_handler.dependencies.cache_clear()
        try:
            deps = sender_handler.dependencies()
            assert deps.sender.allow_local is False
            assert deps.sender.secret_for("alice").startswith("whsec_")
            secret_deps = secret_handler.dependencies()
            assert secret_deps.master == b"k" * 64
            assert (
                deps.sender.secret_for("alice")
                == secret_handler.handle(
                    {"httpMethod": "GET", "requestContext": {"authorizer": {"claims": {"sub": "alice"}}}},
                    secret_deps,
                )["body"].split('"')[3]
            )
        finally:
            sender_handler.dependencies.cache_clear()
            secret_handler.dependencies.cache_clear()


class Context:
    function_name = "jobs-dev-webhook-sender"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:jobs-dev-webhook-sender"
    aws_request_id = "sender-request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def test_sender_lines_name_the_sender_even_when_another_function_is_injected_meanwhile(monkeypatch):
    # Given: the sender delivering while another function (locally, in the same process) sets
    # its process-wide keys, as `inject_lambda_context` does
    class Interrupted(ScriptedSender):
        def deliver(self, delivery: Delivery) -> Result:
            sender_handler.logger.append_keys(function_name="jobs-dev-get-job", jobId="someone-elses")
            return super().deliver(delivery)

    queue = FakeQueue(Clock())
    deps = sender_handler.Dependencies(Interrupted({"job-a": Result(Outcome.DELIVERED)}), queue)  # type: ignore[arg-type]
    monkeypatch.setattr(sender_handler, "dependencies", lambda: deps)
    handler = logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        # When
        sender_handler.lambda_handler({"Records": [record("job-a", "m-1")]}, Context())  # type: ignore[arg-type]
    finally:
        handler.setStream(previous)
        sender_handler.logger.clear_state()
    # Then: the delivery's line names the sender and its own job
    lines = [json.loads(line) for line in output.getvalue().splitlines() if line.startswith("{")]
    delivered = next(line for line in lines if line.get("message") == "delivery delivered")
    assert delivered["function_name"] == "jobs-dev-webhook-sender"
    assert delivered["function_request_id"] == "sender-request-1"
    assert delivered["jobId"] == "job-a"


def test_one_jobs_changes_in_a_batch_go_out_oldest_version_first():
    # Given: a batch holding a job's COMPLETED before its QUEUED and PROCESSING, and another job
    order: list[tuple[str, str]] = []

    class Recording:
        def deliver(self, delivery: Delivery) -> Result:
            order.append((delivery.job_id, delivery.version))
            return Result(Outcome.DELIVERED)

    def change(job_id: str, version: str, message_id: str) -> dict[str, str]:
        body = Delivery(job_id, "u", "https://h.example/x", version, "QUEUED", "{}").to_message()
        return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": body}

    records = [
        change("job-a", "0001#3#2026-11-30T00:00:03.000Z#c", "m-3"),
        change("job-b", "0001#1#2026-11-30T00:00:01.000Z#x", "m-b"),
        change("job-a", "0001#1#2026-11-30T00:00:01.000Z#a", "m-1"),
        change("job-a", "0001#2#2026-11-30T00:00:02.000Z#b", "m-2"),
    ]
    deps = sender_handler.Dependencies(Recording(), FakeQueue(Clock()))  # type: ignore[arg-type]
    # When
    answer = sender_handler.handle({"Records": records}, deps)
    # Then: every change delivered, job-a's in version order
    assert answer == {"batchItemFailures": []}
    assert [version[5] for job, version in order if job == "job-a"] == ["1", "2", "3"]
    assert ("job-b", "0001#1#2026-11-30T00:00:01.000Z#x") in order
