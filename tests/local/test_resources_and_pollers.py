"""Resources made from the template on moto, and SQS pollers driving functions as Lambda does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.poller import KillOutcome, SqsPoller, failed_ids, sqs_record
from local.resources import provision
from ops.template import Template

pytestmark = pytest.mark.unit


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            "dynamodb": boto3.client("dynamodb", region_name="us-east-1"),
            "sqs": boto3.client("sqs", region_name="us-east-1"),
            "events": boto3.client("events", region_name="us-east-1"),
        }


def test_provision_makes_every_resource_from_the_template(aws: dict[str, Any]) -> None:
    template = Template.read(Stage="unit", CreateRestApi="true", CognitoUserPoolArn="arn:aws:cognito-idp:x")
    made = provision(template, aws["dynamodb"], aws["sqs"], aws["events"])

    # Tables: keys, GSI and TTL as the template says.
    table = aws["dynamodb"].describe_table(TableName="Jobs-unit")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "jobId", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "ByUser"
    ttl = aws["dynamodb"].describe_time_to_live(TableName="Jobs-unit")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert set(made.tables) == set(template.of_type("AWS::DynamoDB::Table"))

    # Queues: attributes and redrive policies.
    projector = made.queues["ProjectorQueue"]
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=projector.url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "180"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == made.queues["ProjectorDLQ"].arn
    assert int(redrive["maxReceiveCount"]) == 5
    assert projector.max_receive_count == 5 and projector.dead_letter_queue == "ProjectorDLQ"
    assert made.queues["InvokerQueue"].visibility_timeout == 5400
    assert template.refs["ProjectorQueue"] == projector.url

    # Bus, archive and rules with their targets.
    assert made.buses["JobsBus"].endswith(":event-bus/jobs-unit")
    archive = aws["events"].describe_archive(ArchiveName="jobs-unit-status")
    assert json.loads(archive["EventPattern"])["detail-type"] == ["JobStatusChanged"]
    targets = aws["events"].list_targets_by_rule(
        Rule="jobs-unit-status-to-projector", EventBusName="jobs-unit"
    )
    (target,) = targets["Targets"]
    assert target["Arn"] == projector.arn
    assert target["DeadLetterConfig"]["Arn"] == made.queues["ProjectorDLQ"].arn

    # A JobStatusChanged put on the bus reaches the projector's queue.
    aws["events"].put_events(
        Entries=[
            {
                "EventBusName": "jobs-unit",
                "Source": "jobs.submit",
                "DetailType": "JobStatusChanged",
                "Detail": "{}",
            }
        ]
    )
    messages = aws["sqs"].receive_message(QueueUrl=projector.url).get("Messages", [])
    assert len(messages) == 1

    # Again, as after a restart with DynamoDB Local's tables kept: no error, same names.
    again = provision(template, aws["dynamodb"], aws["sqs"], aws["events"])
    assert again.tables == made.tables


def test_provision_makes_the_cursor_key_secret_and_get_job_fn_gets_its_arn(aws: dict[str, Any]) -> None:
    from local.functions import functions_from_template

    # Given the template (its CursorSigningKey has GenerateSecretString: 64 characters, no punctuation)
    template = Template.read(Stage="unit", CreateRestApi="true", CognitoUserPoolArn="arn:aws:cognito-idp:x")
    # When the local stack provisions it
    made = provision(template, aws["dynamodb"], aws["sqs"], aws["events"])
    # Then the secret exists with a generated value of that shape
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = made.secrets["CursorSigningKey"]
    value = secrets.get_secret_value(SecretId=arn)["SecretString"]
    assert len(value) == 64 and value.isalnum()
    assert secrets.describe_secret(SecretId=arn)["Name"] == "jobs-unit/cursor-signing-key"
    # And GetJobFn's environment holds its ARN (Ref of a secret), not its value
    environment = functions_from_template(template)["GetJobFn"].environment
    assert environment["CURSOR_KEY_SECRET_ARN"] == arn
    assert value not in environment.values()
    # And a second start keeps the secret and its value
    again = provision(template, aws["dynamodb"], aws["sqs"], aws["events"])
    assert again.secrets == made.secrets
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == value


def test_sqs_record_has_lambdas_shape() -> None:
    record = sqs_record(
        {
            "MessageId": "m1",
            "ReceiptHandle": "r1",
            "Body": "{}",
            "Attributes": {"ApproximateReceiveCount": "2"},
        },
        "arn:q",
        "us-east-1",
    )
    assert record["messageId"] == "m1" and record["receiptHandle"] == "r1"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == "arn:q"
    assert len(record["md5OfBody"]) == 32


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": ["a"]}, None),
        ({"batchItemFailures": "a"}, None),
    ],
)
def test_failed_ids_reads_partial_batch_answers_as_lambda_does(response: Any, expected: Any) -> None:
    assert failed_ids(response, ["a", "b"]) == expected


def _queue(sqs: Any, visibility: int = 1, max_receive: int = 2) -> tuple[str, str, str]:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq


def _poller(
    sqs: Any,
    url: str,
    arn: str,
    invoke: Any,
    *,
    batch_size: int = 10,
    batching_window: float = 0.0,
    report_batch_item_failures: bool = True,
    concurrency: int = 1,
) -> SqsPoller:
    """A poller named F on the test queue; the settings a test does not name are the usual ones."""
    return SqsPoller(
        name="F",
        sqs=sqs,
        queue_url=url,
        queue_arn=arn,
        invoke=invoke,
        batch_size=batch_size,
        batching_window=batching_window,
        report_batch_item_failures=report_batch_item_failures,
        concurrency=concurrency,
    )


def test_partial_failures_come_back_after_the_visibility_timeout_then_go_to_the_dlq(
    aws: dict[str, Any],
) -> None:
    sqs = aws["sqs"]
    url, arn, dlq = _queue(sqs)
    for body in ("ok", "bad", "ok2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    seen: list[list[str]] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        seen.append([r["body"] for r in event["Records"]])
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
        }

    poller = _poller(sqs, url, arn, function)
    first = poller.poll_once()
    assert first is not None and (first.delivered, first.deleted, first.failed) == (3, 2, 1)
    assert poller.poll_once() is None  # "bad" is in flight until its visibility timeout ends
    time.sleep(1.1)
    second = poller.poll_once()
    assert second is not None and second.failed == 1 and seen[-1] == ["bad"]
    time.sleep(1.1)
    # Received twice = maxReceiveCount: SQS moves it to the DLQ instead of delivering it again.
    assert poller.poll_once() is None
    moved = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in moved] == ["bad"]


def test_a_raising_function_or_bad_answer_fails_the_whole_batch(aws: dict[str, Any]) -> None:
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=60)
    sqs.send_message(QueueUrl=url, MessageBody="x")

    def raising(event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    poller = _poller(sqs, url, arn, raising, batch_size=5)
    outcome = poller.poll_once()
    assert outcome is not None and outcome.deleted == 0 and poller.errors == 1
    sqs.send_message(QueueUrl=url, MessageBody="y")
    poller = _poller(
        sqs, url, arn, lambda e: {"batchItemFailures": [{"itemIdentifier": "unknown"}]}, batch_size=5
    )
    outcome = poller.poll_once()
    assert outcome is not None and outcome.deleted == 0 and outcome.failed == 1


def test_without_report_batch_item_failures_every_record_is_deleted(aws: dict[str, Any]) -> None:
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=60)
    for i in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    batches: list[int] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        batches.append(len(event["Records"]))
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    poller = _poller(
        sqs, url, arn, function, batch_size=20, batching_window=0.5, report_batch_item_failures=False
    )
    first = poller.poll_once()
    assert first is not None and first.delivered == 20 and first.deleted == 20  # window filled the batch
    second = poller.poll_once()
    assert second is not None and second.delivered == 5
    assert batches == [20, 5]


def test_a_started_poller_delivers_until_stopped(aws: dict[str, Any]) -> None:
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=60)
    delivered: list[str] = []
    poller = _poller(sqs, url, arn, lambda e: delivered.extend(r["body"] for r in e["Records"]))
    poller.start()
    poller.start()  # a second start while running changes nothing
    try:
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        deadline = time.monotonic() + 10
        while not delivered and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()
    assert delivered == ["hello"]
    assert not poller.running


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _in_flight(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def test_a_killed_poller_abandons_its_batch_which_comes_back_after_the_visibility_timeout(
    aws: dict[str, Any],
) -> None:
    sqs = aws["sqs"]
    url, arn, dlq = _queue(sqs, visibility=1, max_receive=5)
    entered, release = threading.Event(), threading.Event()
    delivered: list[list[tuple[str, str]]] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        delivered.append([(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]])
        if len(delivered) == 1:  # the first invocation is mid-way when the kill comes
            entered.set()
            release.wait(10)
        return {"batchItemFailures": []}

    poller = _poller(sqs, url, arn, function)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": b, "MessageBody": b} for b in ("a", "b")])
    poller.start()
    assert entered.wait(10)
    killed = poller.kill()
    assert (killed.batches, killed.messages) == (1, 2)
    assert not poller.running and poller.kills == 1
    release.set()  # the invocation ends in the background; its result is thrown away
    _wait_for(lambda: poller.abandoned_batches == 1)
    assert poller.abandoned_messages == 2
    assert _in_flight(sqs, url) == 2  # not deleted: still in flight until the visibility timeout
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None

    time.sleep(1.1)  # the visibility timeout (1 s) ends; SQS gives the batch out again
    poller.start()  # `enable`: fresh threads
    try:
        _wait_for(lambda: len(delivered) == 2)
        _wait_for(lambda: _in_flight(sqs, url) == 0)
    finally:
        poller.stop()
    assert sorted(delivered[1]) == [("a", "2"), ("b", "2")]
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages") is None
    assert poller.abandoned_batches == 1  # the redelivered batch was deleted normally


def test_a_kill_counts_a_message_held_in_two_batches_once(aws: dict[str, Any]) -> None:
    # Given: a slow invocation holding a message past its visibility timeout (1 s), so the other
    # polling thread receives the same message again while the first still holds it
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=1, max_receive=5)
    release = threading.Event()
    delivered: list[str] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        delivered.extend(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"])
        release.wait(10)
        return {"batchItemFailures": []}

    poller = _poller(sqs, url, arn, function, concurrency=2)
    sqs.send_message(QueueUrl=url, MessageBody="slow")
    poller.start()
    try:
        _wait_for(lambda: delivered == ["1", "2"])
        # When
        killed = poller.kill()
    finally:
        release.set()
    # Then: two batches were in hand, but they held one message
    assert (killed.batches, killed.messages) == (2, 1)


def test_a_kill_does_not_count_a_message_another_batch_already_deleted(aws: dict[str, Any]) -> None:
    # Given: a message received twice (its visibility ran out during a slow first invocation)
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=1, max_receive=5)
    releases = {"1": threading.Event(), "2": threading.Event()}
    delivered: list[str] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        count = event["Records"][0]["attributes"]["ApproximateReceiveCount"]
        delivered.append(count)
        releases[count].wait(10)
        return {"batchItemFailures": []}

    poller = _poller(sqs, url, arn, function, concurrency=2)
    sqs.send_message(QueueUrl=url, MessageBody="slow")
    poller.start()
    try:
        _wait_for(lambda: delivered == ["1", "2"])
        # the first invocation ends and its batch deletes the message (SQS takes the older handle)
        releases["1"].set()
        _wait_for(lambda: _in_flight(sqs, url) == 0)
        # When
        killed = poller.kill()
    finally:
        releases["2"].set()
    # Then: the second batch was in hand, but nothing it held is left in flight
    assert (killed.batches, killed.messages) == (1, 0)


def test_a_kill_during_the_batching_window_abandons_what_was_gathered_without_invoking(
    aws: dict[str, Any],
) -> None:
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=60)
    invoked: list[Any] = []
    # The batch stays open far longer than the test.
    poller = _poller(sqs, url, arn, invoked.append, batching_window=30)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    poller.start()
    # The poller's own view: SQS counts the message in flight a moment before the poller holds it.
    _wait_for(lambda: poller.in_hand == 1)
    assert _in_flight(sqs, url) == 1
    killed = poller.kill()
    assert (killed.batches, killed.messages) == (1, 1)
    _wait_for(lambda: poller.abandoned_batches == 1)
    assert invoked == [] and poller.abandoned_messages == 1
    assert _in_flight(sqs, url) == 1


def test_a_failing_invocation_of_a_killed_poller_is_abandoned_too(aws: dict[str, Any]) -> None:
    sqs = aws["sqs"]
    url, arn, _ = _queue(sqs, visibility=60)
    entered, release = threading.Event(), threading.Event()

    def raising(event: dict[str, Any]) -> Any:
        entered.set()
        release.wait(10)
        raise RuntimeError("the container died")

    poller = _poller(sqs, url, arn, raising)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    poller.start()
    assert entered.wait(10)
    assert poller.kill().messages == 1
    release.set()
    _wait_for(lambda: poller.abandoned_batches == 1)
    assert poller.errors == 1 and _in_flight(sqs, url) == 1
    assert poller.kill() == KillOutcome(0, 0)  # killing a killed poller abandons nothing more
