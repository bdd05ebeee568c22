"""moto with `local.moto_tuning` installed answers as EventBridge and SQS do (and as moto did)."""

from __future__ import annotations

import json
import os
import uuid
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


# --- DynamoDB: ProjectorFn's conditional UpdateItems (the same expression texts, other values) ---

WINNER = "SET #status = :status, #version = :version, #userId = if_not_exists(#userId, :userId) REMOVE #error"
NEWER_SAME_OWNER = (
    "attribute_not_exists(#jobId)"
    " OR ((attribute_not_exists(#userId) OR #userId = :userId)"
    " AND (attribute_not_exists(#version) OR #version < :version))"
)
NAMES = {f"#{name}": name for name in ("jobId", "status", "version", "userId", "error")}


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    moto_tuning.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="jobs",
            KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _winner(client: Any, job: str, status: str, version: int, user: str) -> None:
    client.update_item(
        TableName="jobs",
        Key={"jobId": {"S": job}},
        UpdateExpression=WINNER,
        ConditionExpression=NEWER_SAME_OWNER,
        ExpressionAttributeNames=NAMES,
        ExpressionAttributeValues={
            ":status": {"S": status},
            ":version": {"N": str(version)},
            ":userId": {"S": user},
        },
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def _stored(client: Any, job: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName="jobs", Key={"jobId": {"S": job}}, ConsistentRead=True)[
        "Item"
    ]
    return item


def _refused(client: Any, call: Any) -> dict[str, Any]:
    with pytest.raises(client.exceptions.ClientError) as refused:
        call()
    response: dict[str, Any] = refused.value.response
    return response


def test_the_same_conditional_update_text_applies_each_requests_own_values(dynamodb: Any) -> None:
    _winner(dynamodb, "a", "SUBMITTED", 1, "u1")
    _winner(dynamodb, "b", "SUBMITTED", 1, "u2")
    _winner(dynamodb, "a", "PROCESSING", 2, "u1")
    _winner(dynamodb, "a", "COMPLETED", 5, "u1")

    assert _stored(dynamodb, "a") == {
        "jobId": {"S": "a"},
        "status": {"S": "COMPLETED"},
        "version": {"N": "5"},
        "userId": {"S": "u1"},
    }
    assert _stored(dynamodb, "b") == {
        "jobId": {"S": "b"},
        "status": {"S": "SUBMITTED"},
        "version": {"N": "1"},
        "userId": {"S": "u2"},
    }


@pytest.mark.parametrize(
    ("version", "user"),
    [(2, "u1"), (3, "u1"), (4, "intruder")],
    ids=["older", "same version", "other owner"],
)
def test_a_failed_condition_writes_nothing_and_returns_the_stored_item(
    dynamodb: Any, version: int, user: str
) -> None:
    _winner(dynamodb, "a", "PROCESSING", 3, "u1")
    stored = {"jobId": {"S": "a"}, "status": {"S": "PROCESSING"}, "version": {"N": "3"}}
    stored["userId"] = {"S": "u1"}
    _winner(dynamodb, "b", "SUBMITTED", 1, "u1")  # the same texts pass for another item in between

    response = _refused(dynamodb, lambda: _winner(dynamodb, "a", "FAILED", version, user))

    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert response["Item"] == stored
    assert _stored(dynamodb, "a") == stored


def test_a_newer_event_passes_the_condition_an_older_one_failed_under_the_same_text(dynamodb: Any) -> None:
    _winner(dynamodb, "a", "PROCESSING", 3, "u1")
    _refused(dynamodb, lambda: _winner(dynamodb, "a", "SUBMITTED", 1, "u1"))
    _winner(dynamodb, "a", "COMPLETED", 4, "u1")

    assert _stored(dynamodb, "a")["status"] == {"S": "COMPLETED"}


def test_a_failed_condition_on_a_missing_item_returns_no_item(dynamodb: Any) -> None:
    def update() -> None:
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "missing"}},
            UpdateExpression="SET #status = if_not_exists(#status, :status)",
            ConditionExpression="attribute_exists(#jobId)",
            ExpressionAttributeNames={"#jobId": "jobId", "#status": "status"},
            ExpressionAttributeValues={":status": {"S": "SUBMITTED"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    for _ in range(2):
        response = _refused(dynamodb, update)
        assert response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert "Item" not in response
    assert "Item" not in dynamodb.get_item(TableName="jobs", Key={"jobId": {"S": "missing"}})


def test_if_not_exists_keeps_a_stored_value_and_fills_a_missing_one(dynamodb: Any) -> None:
    fill = "SET #userId = if_not_exists(#userId, :userId), #ttl = if_not_exists(#ttl, :ttl)"
    names = {"#userId": "userId", "#ttl": "ttl"}
    dynamodb.put_item(TableName="jobs", Item={"jobId": {"S": "a"}, "userId": {"S": "u1"}})
    for job, ttl in (("a", "100"), ("b", "200")):
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": job}},
            UpdateExpression=fill,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":userId": {"S": f"new-{job}"}, ":ttl": {"N": ttl}},
        )

    assert _stored(dynamodb, "a") == {"jobId": {"S": "a"}, "userId": {"S": "u1"}, "ttl": {"N": "100"}}
    assert _stored(dynamodb, "b") == {"jobId": {"S": "b"}, "userId": {"S": "new-b"}, "ttl": {"N": "200"}}


def test_list_append_and_arithmetic_apply_to_the_item_each_time(dynamodb: Any) -> None:
    # Evaluating these replaces nodes of the expression's tree: each request starts from the text's own tree.
    for n in range(3):
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "a"}},
            UpdateExpression="SET #log = list_append(if_not_exists(#log, :empty), :entry),"
            " #count = if_not_exists(#count, :zero) + :one",
            ExpressionAttributeNames={"#log": "log", "#count": "count"},
            ExpressionAttributeValues={
                ":empty": {"L": []},
                ":entry": {"L": [{"S": f"e{n}"}]},
                ":zero": {"N": "0"},
                ":one": {"N": str(n + 1)},
            },
        )

    assert _stored(dynamodb, "a") == {
        "jobId": {"S": "a"},
        "log": {"L": [{"S": "e0"}, {"S": "e1"}, {"S": "e2"}]},
        "count": {"N": "6"},
    }


def test_the_returned_attributes_are_the_requests_own(dynamodb: Any) -> None:
    answers = [
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "a"}},
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        for status in ("SUBMITTED", "PROCESSING")
    ]

    assert answers == [
        {"jobId": {"S": "a"}, "status": {"S": "SUBMITTED"}},
        {"jobId": {"S": "a"}, "status": {"S": "PROCESSING"}},
    ]


def test_an_update_of_the_key_is_refused_every_time(dynamodb: Any) -> None:
    def update() -> None:
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "a"}},
            UpdateExpression="SET #k = :v",
            ExpressionAttributeNames={"#k": "jobId"},
            ExpressionAttributeValues={":v": {"S": "b"}},
        )

    for _ in range(2):
        assert _refused(dynamodb, update)["Error"]["Code"] == "ValidationException"


def test_the_same_text_is_checked_for_overlapping_paths_with_each_requests_names(dynamodb: Any) -> None:
    def update(second: str) -> None:
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "a"}},
            UpdateExpression="SET #one = :v, #two = :v",
            ExpressionAttributeNames={"#one": "status", "#two": second},
            ExpressionAttributeValues={":v": {"S": "x"}},
        )

    update("progress")
    for _ in range(2):
        response = _refused(dynamodb, lambda: update("status"))
        assert response["Error"]["Code"] == "ValidationException"
        assert "Two document paths" in response["Error"]["Message"]
    update("error")

    assert _stored(dynamodb, "a") == {
        "jobId": {"S": "a"},
        "status": {"S": "x"},
        "progress": {"S": "x"},
        "error": {"S": "x"},
    }


def test_two_clauses_of_one_kind_are_refused_every_time(dynamodb: Any) -> None:
    def update() -> None:
        dynamodb.update_item(
            TableName="jobs",
            Key={"jobId": {"S": "a"}},
            UpdateExpression="SET #a = :v SET #b = :v",
            ExpressionAttributeNames={"#a": "a", "#b": "b"},
            ExpressionAttributeValues={":v": {"S": "x"}},
        )

    for _ in range(2):
        assert _refused(dynamodb, update)["Error"]["Code"] == "ValidationException"
    assert "Item" not in dynamodb.get_item(TableName="jobs", Key={"jobId": {"S": "a"}})


def test_the_projectors_store_writes_through_its_own_expressions(dynamodb: Any) -> None:
    from jobstatus.events import JobStatusChanged
    from projector.fold import coalesce
    from projector.store import JobStore, Outcome

    store = JobStore(dynamodb, "jobs", 30)

    def write(job: str, status: str, second: int, user: str = "u1") -> Outcome:
        event = JobStatusChanged(
            event_id=str(uuid.uuid4()),
            job_id=job,
            user_id=user,
            status=status,
            occurred_at=f"2026-01-01T00:00:{second:02d}.000Z",
            created_at="2026-01-01T00:00:00.000Z",
        )
        return store.write(next(iter(coalesce([("r", event)])))).outcome

    assert write("a", "QUEUED", 1) is Outcome.APPLIED
    assert write("b", "QUEUED", 1) is Outcome.APPLIED
    assert write("a", "PROCESSING", 5) is Outcome.APPLIED
    assert write("a", "QUEUED", 2) is Outcome.STALE
    assert write("a", "COMPLETED", 9, user="intruder") is Outcome.CONFLICT
    assert write("b", "PROCESSING", 3) is Outcome.APPLIED

    assert _stored(dynamodb, "a")["status"] == {"S": "PROCESSING"}
    assert _stored(dynamodb, "a")["userId"] == {"S": "u1"}
    assert _stored(dynamodb, "b")["status"] == {"S": "PROCESSING"}


def test_the_same_filter_and_condition_texts_judge_each_requests_own_values(dynamodb: Any) -> None:
    for job, status in (("a", "QUEUED"), ("b", "PROCESSING"), ("c", "PROCESSING")):
        dynamodb.put_item(TableName="jobs", Item={"jobId": {"S": job}, "status": {"S": status}})

    def matching(status: str) -> list[str]:
        items = dynamodb.scan(
            TableName="jobs",
            FilterExpression="#status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
        )["Items"]
        return sorted(item["jobId"]["S"] for item in items)

    def delete_if(job: str, status: str) -> None:
        dynamodb.delete_item(
            TableName="jobs",
            Key={"jobId": {"S": job}},
            ConditionExpression="#status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
        )

    assert matching("PROCESSING") == ["b", "c"]
    assert matching("QUEUED") == ["a"]
    assert matching("COMPLETED") == []
    delete_if("b", "PROCESSING")
    refused = _refused(dynamodb, lambda: delete_if("c", "QUEUED"))
    assert refused["Error"]["Code"] == "ConditionalCheckFailedException"
    delete_if("a", "QUEUED")
    assert matching("PROCESSING") == ["c"]


def test_the_validators_copy_of_a_parsed_update_expression_is_what_deepcopy_makes() -> None:
    import copy
    import importlib

    # moto's parsing modules are untyped (`# type: ignore` at their top): reached as Any.
    validators: Any = importlib.import_module("moto.dynamodb.parsing.validators")
    Node: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes").Node
    UpdateExpressionParser: Any = importlib.import_module(
        "moto.dynamodb.parsing.expressions"
    ).UpdateExpressionParser

    moto_tuning.install()
    text = "SET #a = :a, #b = if_not_exists(#b, :b), c.d[1] = list_append(c, :l), n = n + :one"
    tree = UpdateExpressionParser.make(text + " ADD s :s DELETE x :x REMOVE #r, q[2]")

    def shape(node: Any, parent: Any) -> Any:
        # Everything a copy holds, with each node's parent checked to be the node holding it.
        if not isinstance(node, Node):
            return (type(node), node)
        assert node.parent is parent
        children = None if node.children is None else [shape(child, node) for child in node.children]
        return (type(node), list(vars(node)), node.type, children)

    copied, expected = validators.deepcopy(tree), copy.deepcopy(tree)

    assert shape(copied, None) == shape(expected, None) == shape(tree, None)
    assert copied is not tree
    assert (
        UpdateExpressionParser.make(text + " ADD s :s DELETE x :x REMOVE #r, q[2]").children[0]
        is not copied.children[0]
    )
