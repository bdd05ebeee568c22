"""template.yaml's webhook resources (DESIGN §4c): queues, DLQs and alarms, the ledger table, the secret,
the three functions, their least-privilege roles, the stream and queue sources, the secret route.

The EXPECTED_* tables of test_translate.py take the WEBHOOK_* ones below, so every exact check there
(roles, handlers, SQS mappings, routes, invoke permissions) covers these functions too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.unit


def _get_att(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def _statement(sid: str, actions: str | list[str], resource: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


def _logs(function: str) -> dict[str, Any]:
    return _statement(
        "WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], _get_att(f"{function}LogGroup")
    )


MASTER_SECRET = {"Ref": "WebhookMasterSecret"}
STREAM_READ = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
]

WEBHOOK_STATEMENTS: dict[str, list[Any]] = {
    "WebhookDispatcherFn": [
        _logs("WebhookDispatcherFn"),
        _statement("ReadJobsStream", STREAM_READ, _get_att("JobsTable", "StreamArn")),
        _statement("QueueDeliveries", "sqs:SendMessage", _get_att("WebhookDeliveryQueue")),
        _statement("KeepUndispatchedRecords", "sqs:SendMessage", _get_att("WebhookDispatchDLQ")),
    ],
    "WebhookSenderFn": [
        _logs("WebhookSenderFn"),
        _statement(
            "PollDeliveryQueue",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            _get_att("WebhookDeliveryQueue"),
        ),
        _statement("DeadLetterExhaustedDeliveries", "sqs:SendMessage", _get_att("WebhookDeliveryDLQ")),
        _statement(
            "KeepDeliveryLedger",
            ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            _get_att("WebhookDeliveriesTable"),
        ),
        _statement("ReadMasterSecret", "secretsmanager:GetSecretValue", MASTER_SECRET),
    ],
    "WebhookSecretFn": [
        _logs("WebhookSecretFn"),
        _statement("ReadMasterSecret", "secretsmanager:GetSecretValue", MASTER_SECRET),
    ],
}
WEBHOOK_HANDLERS = {
    "WebhookDispatcherFn": "webhooks.dispatcher.lambda_handler",
    "WebhookSenderFn": "webhooks.sender_handler.lambda_handler",
    "WebhookSecretFn": "webhooks.secret_handler.lambda_handler",
}
WEBHOOK_MAPPINGS = {
    "WebhookSenderFn": (
        "WebhookDeliveryQueue",
        {
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 10},
        },
    ),
}
WEBHOOK_ROUTES = {
    ("GET", "/v1/webhooks/secret"): "WebhookSecretFn",
    ("OPTIONS", "/v1/webhooks/secret"): "MOCK",
}


def test_the_jobs_table_streams_new_images(raw):
    assert raw["Resources"]["JobsTable"]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_IMAGE"
    }


def test_the_dispatcher_reads_the_jobs_stream_with_partial_failures_and_a_dead_letter_queue(resources):
    (mapping,) = [
        m["Properties"]
        for m in resources.values()
        if m["Type"] == "AWS::Lambda::EventSourceMapping"
        and m["Properties"]["FunctionName"] == {"Ref": "WebhookDispatcherFn"}
    ]
    assert mapping["EventSourceArn"] == _get_att("JobsTable", "StreamArn")
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": _get_att("WebhookDispatchDLQ")}}
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"request": {"M": {"webhook": {"S": [{"exists": True}]}}}}},
    }


def test_delivery_queue_outlives_the_retry_schedule_and_redrives_to_its_dlq(raw):
    queue = raw["Resources"]["WebhookDeliveryQueue"]["Properties"]
    schedule_seconds = 5 + 300 + 1800 + 7200 + 18000 + 36000 + 50400 + 72000 + 86400
    assert queue["MessageRetentionPeriod"] > schedule_seconds + 86400  # a day of slack
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == _get_att("WebhookDeliveryDLQ")
    # 10 attempts and 3 chained 12 h waits are 13 receives; the redrive must never cut the schedule short.
    assert queue["RedrivePolicy"]["maxReceiveCount"] > 13
    dlq = raw["Resources"]["WebhookDeliveryDLQ"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 1209600


@pytest.mark.parametrize("dlq", ["WebhookDeliveryDLQ", "WebhookDispatchDLQ"])
def test_each_webhook_dlq_is_alarmed_on_its_first_message(raw, dlq):
    (alarm,) = [
        r["Properties"]
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Dimensions", [{}])[0].get("Value") == _get_att(dlq, "QueueName")
    ]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )


def test_deliveries_table_and_master_secret(raw):
    table = raw["Resources"]["WebhookDeliveriesTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "deliveryKey", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    secret = raw["Resources"]["WebhookMasterSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32


def test_sender_and_secret_functions_are_given_their_settings(resources):
    sender = resources["WebhookSenderFn"]["Properties"]["Environment"]["Variables"]
    assert sender["DELIVERY_QUEUE_URL"] == {"Ref": "WebhookDeliveryQueue"}
    assert sender["DELIVERY_DLQ_URL"] == {"Ref": "WebhookDeliveryDLQ"}
    assert sender["DELIVERIES_TABLE_NAME"] == {"Ref": "WebhookDeliveriesTable"}
    assert sender["WEBHOOK_SECRET_ID"] == MASTER_SECRET
    assert "WEBHOOKS_ALLOW_LOCAL" not in sender  # never on AWS
    secret = resources["WebhookSecretFn"]["Properties"]["Environment"]["Variables"]
    assert secret["WEBHOOK_SECRET_ID"] == MASTER_SECRET
    dispatcher = resources["WebhookDispatcherFn"]["Properties"]["Environment"]["Variables"]
    assert dispatcher["DELIVERY_QUEUE_URL"] == {"Ref": "WebhookDeliveryQueue"}


def test_get_job_fn_is_untouched_by_webhooks(resources):
    assert "WebhookMasterSecret" not in repr(resources["GetJobFn"]) + repr(resources["GetJobFnRole"])
