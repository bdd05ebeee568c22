"""moto with `local.moto_tuning` installed answers as EventBridge and SQS do (and as moto did)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws

from local import moto_tuning

REGION = "us-east-1"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    moto_tuning.install()
    with mock_aws():
        yield boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while answer := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in answer]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(answer)],
        )
    return bodies


def test_install_twice_changes_nothing_more() -> None:
    import jsonpath_ng.ext

    moto_tuning.install()
    parse = jsonpath_ng.ext.parse  # type: ignore[attr-defined]
    moto_tuning.install()

    assert moto_tuning.installed()
    assert jsonpath_ng.ext.parse is parse  # type: ignore[attr-defined]


def test_every_entry_reaches_each_target_whole_or_transformed_as_its_rule_says(aws: tuple[Any, Any]) -> None:
    # Given a bus whose rule sends the whole event to one queue and the detail's jobId to another
    events, sqs = aws
    whole_url, whole_arn = _queue(sqs, "whole")
    picked_url, picked_arn = _queue(sqs, "picked")
    events.create_event_bus(Name="bus")
    events.put_rule(
        Name="status", EventBusName="bus", EventPattern=json.dumps({"detail-type": ["JobStatusChanged"]})
    )
    transformer = {"InputPathsMap": {"job": "$.detail.jobId"}, "InputTemplate": '{"job": "<job>"}'}
    events.put_targets(
        Rule="status",
        EventBusName="bus",
        Targets=[
            {"Id": "whole", "Arn": whole_arn},
            {"Id": "picked", "Arn": picked_arn, "InputTransformer": transformer},
        ],
    )
    entries = [
        {
            "Source": "jobs.fal-invoker",
            "DetailType": "JobStatusChanged",
            "Detail": json.dumps({"jobId": f"j{n}"}),
            "EventBusName": "bus",
        }
        for n in range(12)
    ]

    # When they are put in two calls (the second parses the same paths again)
    ids = [e["EventId"] for e in events.put_events(Entries=entries[:10])["Entries"]]
    ids += [e["EventId"] for e in events.put_events(Entries=entries[10:])["Entries"]]

    # Then each queue has one message per entry: the whole event, or the transformed input
    whole = [json.loads(body) for body in _drain(sqs, whole_url)]
    assert sorted((w["id"], w["detail"]["jobId"]) for w in whole) == sorted(
        (event_id, f"j{n}") for n, event_id in enumerate(ids)
    )
    assert {(w["source"], w["detail-type"]) for w in whole} == {("jobs.fal-invoker", "JobStatusChanged")}
    assert sorted(json.loads(body)["job"] for body in _drain(sqs, picked_url)) == sorted(
        f"j{n}" for n in range(12)
    )


def test_a_received_message_stays_hidden_until_its_visibility_runs_out(aws: tuple[Any, Any]) -> None:
    _, sqs = aws
    url, _ = _queue(sqs, "work", VisibilityTimeout="30")
    sqs.send_message(QueueUrl=url, MessageBody="m")
    first = sqs.receive_message(QueueUrl=url)["Messages"]

    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]

    assert [m["MessageId"] for m in again] == [m["MessageId"] for m in first]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


@pytest.mark.parametrize(("age", "received"), [(59, ["m"]), (61, [])])
def test_a_message_is_received_only_within_its_queues_retention_period(
    aws: tuple[Any, Any], age: int, received: list[str]
) -> None:
    from moto.sqs.models import sqs_backends

    _, sqs = aws
    url, _ = _queue(sqs, "short", MessageRetentionPeriod="60")
    sqs.send_message(QueueUrl=url, MessageBody="m")
    # SQS has no way to age a message: moto's own record of when it was sent is moved back.
    messages: list[Any] = sqs_backends["123456789012"][REGION].queues["short"]._messages
    for message in messages:
        message.sent_timestamp -= age * 1000

    assert _drain(sqs, url) == received


def test_the_backends_moto_serves_are_its_package_folders() -> None:
    from moto import backends

    moto_tuning.install()
    folder = os.path.dirname(moto.__file__)
    expected = sorted(
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name)) and not name.startswith("__")
    )

    assert list(backends.list_of_moto_modules()) == expected


def test_a_queues_counts_split_its_messages_into_visible_in_flight_and_delayed(aws: tuple[Any, Any]) -> None:
    _, sqs = aws
    url, _ = _queue(sqs, "counted", VisibilityTimeout="30")
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)

    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    assert counts["ApproximateNumberOfMessages"] == "3"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "2"
    assert counts["ApproximateNumberOfMessagesDelayed"] == "1"
