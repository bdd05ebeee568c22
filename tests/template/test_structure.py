"""template.yaml's invariants: Rules (archive outlives the TTL, an API is given), queues, alarms, names.

Checked on the template as written, for every parameter value the Rules are meant to refuse.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ops.template import Template
from tests.template import sam

pytestmark = pytest.mark.unit

EXISTING_API = {
    "RestApiId": "a1b2c3d4e5",
    "ApiParentResourceId": "v1res0",
    "ApiAuthorizerId": "auth01",
    "RestApiName": "video-backend",
}
SECONDS_PER_DAY = 86400


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def allowed(raw: dict[str, Any], parameter: str) -> list[int]:
    return [int(value) for value in raw["Parameters"][parameter]["AllowedValues"]]


def test_rules_refuse_exactly_an_archive_shorter_than_the_ttl(raw):
    for ttl, retention in itertools.product(allowed(raw, "JobTtlDays"), allowed(raw, "ArchiveRetentionDays")):
        failed = sam.failed_rules(
            raw, {**EXISTING_API, "JobTtlDays": str(ttl), "ArchiveRetentionDays": str(retention)}
        )
        outlives = retention == 0 or retention >= ttl
        assert (failed == []) == outlives, (ttl, retention, failed)


def test_defaults_keep_the_archive_forever_and_jobs_30_days(raw):
    assert raw["Parameters"]["ArchiveRetentionDays"]["Default"] == 0
    assert raw["Parameters"]["JobTtlDays"]["Default"] == 30
    assert raw["Resources"]["JobStatusArchive"]["Properties"]["RetentionDays"] == {
        "Ref": "ArchiveRetentionDays"
    }
    assert 0 in allowed(raw, "ArchiveRetentionDays")
    # Every TTL has a retention that outlives it besides "forever".
    assert max(allowed(raw, "ArchiveRetentionDays")) >= max(allowed(raw, "JobTtlDays"))


@pytest.mark.parametrize(
    ("parameters", "passes"),
    [
        ({}, False),  # the defaults: neither an existing API nor CreateRestApi
        (EXISTING_API, True),
        ({**EXISTING_API, "ApiAuthorizerId": ""}, False),
        ({**EXISTING_API, "RestApiName": ""}, False),
        ({"CreateRestApi": "true"}, False),  # no user pool for the authorizer
        ({"CreateRestApi": "true", "CognitoUserPoolArn": "arn:aws:cognito-idp:us-east-1:1:userpool/x"}, True),
        ({**EXISTING_API, "CreateRestApi": "true", "CognitoUserPoolArn": "arn:aws:cognito-idp:::x"}, False),
    ],
)
def test_rules_need_an_existing_api_or_an_explicit_creation(raw, parameters, passes):
    assert (sam.failed_rules(raw, parameters) == []) is passes, sam.failed_rules(raw, parameters)


def test_rule_evaluator_refuses_functions_it_does_not_know(raw):
    broken = {**raw, "Rules": {"X": {"Assertions": [{"Assert": {"Fn::EachMemberIn": [[], []]}}]}}}
    with pytest.raises(ValueError, match="EachMemberIn"):
        sam.failed_rules(broken, {})


def test_archive_keeps_every_event_the_projector_receives(raw):
    archive = raw["Resources"]["JobStatusArchive"]["Properties"]
    rule = raw["Resources"]["JobStatusToProjectorRule"]["Properties"]
    assert archive["EventPattern"] == rule["EventPattern"]
    assert archive["EventPattern"]["detail-type"] == ["JobStatusChanged"]
    assert archive["SourceArn"] == {"Fn::GetAtt": ["JobsBus", "Arn"]}


def test_replays_never_run_jobs_again(raw):
    pattern = raw["Resources"]["VideoRequestedToInvokerRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["VideoGenerationRequested"]
    assert pattern["source"] == ["jobs.submit"]
    assert pattern["replay-name"] == [{"exists": False}]


def _function_timeout(raw: dict[str, Any], function: dict[str, Any]) -> int:
    default = raw["Globals"]["Function"]["Timeout"]
    return int(function["Properties"].get("Timeout", default))


def _sqs_sources(raw: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, function in of_type(raw["Resources"], "AWS::Serverless::Function").items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                found.append((name, event["Properties"]["Queue"]["Fn::GetAtt"][0], function))
    return found


def test_queues_feeding_functions_redrive_and_outlast_the_function_timeout(raw):
    sources = _sqs_sources(raw)
    assert {queue for _, queue, _ in sources} == {
        "ProjectorQueue",
        "InvokerQueue",
        "StatusOutboxQueue",
        "WebhookDeliveryQueue",
    }
    for name, queue, function in sources:
        props = raw["Resources"][queue]["Properties"]
        assert props["VisibilityTimeout"] >= 6 * _function_timeout(raw, function), (name, queue)
        dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        # The webhook sender counts attempts itself (its redrive is a safety net above its 13 receives):
        # tests/template/test_webhooks.py checks it.
        most = 30 if queue == "WebhookDeliveryQueue" else 10
        assert 1 <= props["RedrivePolicy"]["maxReceiveCount"] <= most, queue
        # A redriven message keeps its first enqueue time: the DLQ must keep it longer.
        dlq_retention = raw["Resources"][dlq]["Properties"]["MessageRetentionPeriod"]
        assert dlq_retention > props["MessageRetentionPeriod"], queue


def test_invoker_settings_from_the_shared_interfaces(raw):
    function = raw["Resources"]["FalInvokerFn"]
    queue = raw["Resources"]["InvokerQueue"]["Properties"]
    assert _function_timeout(raw, function) == 900
    assert queue["VisibilityTimeout"] == 5400
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3


def test_every_queue_is_encrypted(raw):
    for name, queue in of_type(raw["Resources"], "AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, name


def test_rule_targets_retry_and_dead_letter_with_a_queue_policy_for_both(raw):
    resources = raw["Resources"]
    policies = of_type(resources, "AWS::SQS::QueuePolicy").values()
    granted = {
        (
            policy["Properties"]["Queues"][0]["Ref"],
            entry["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0],
        )
        for policy in policies
        for entry in policy["Properties"]["PolicyDocument"]["Statement"]
        if entry["Principal"] == {"Service": "events.amazonaws.com"} and entry["Action"] == "sqs:SendMessage"
    }
    for rule_name, rule in of_type(resources, "AWS::Events::Rule").items():
        (target,) = rule["Properties"]["Targets"]
        queue = target["Arn"]["Fn::GetAtt"][0]
        dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert {(queue, rule_name), (dlq, rule_name)} <= granted, rule_name


def test_tables(raw):
    jobs = raw["Resources"]["JobsTable"]["Properties"]
    assert jobs["KeySchema"] == [{"AttributeName": "jobId", "KeyType": "HASH"}]
    assert jobs["BillingMode"] == "PAY_PER_REQUEST"
    assert jobs["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert jobs["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert jobs["SSESpecification"] == {"SSEEnabled": True}
    # The table outlives the stack and refuses a DeleteTable (issue 10).
    assert jobs["DeletionProtectionEnabled"] is True
    assert raw["Resources"]["JobsTable"]["DeletionPolicy"] == "Retain"
    assert raw["Resources"]["JobsTable"]["UpdateReplacePolicy"] == "Retain"
    (index,) = jobs["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "ByUser"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["userId", "createdAt"]
    idempotency = raw["Resources"]["IdempotencyTable"]["Properties"]
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def _alarms(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res["Properties"] for name, res in of_type(raw["Resources"], "AWS::CloudWatch::Alarm").items()
    }


def test_every_dlq_has_a_depth_alarm(raw):
    watched = {
        alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in _alarms(raw).values()
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    dlqs = {name for name in of_type(raw["Resources"], "AWS::SQS::Queue") if name.endswith("DLQ")}
    assert dlqs == {
        "ProjectorDLQ",
        "InvokerDLQ",
        "StatusOutboxDLQ",
        "NotifierDLQ",
        "WebhookDeliveryDLQ",
        "WebhookDispatchDLQ",
    }
    assert watched == dlqs


def test_service_metric_alarms(raw):
    alarms = _alarms(raw)
    service = [{"Name": "service", "Value": "jobstatus"}]
    undelivered = alarms["StatusEventsUndeliveredAlarm"]
    assert (undelivered["Namespace"], undelivered["MetricName"], undelivered["Dimensions"]) == (
        "JobStatus",
        "StatusEventsUndelivered",
        service,
    )
    assert (undelivered["Statistic"], undelivered["Threshold"]) == ("Sum", 0)
    latency = alarms["ApiLatencyAlarm"]
    assert (latency["Namespace"], latency["MetricName"], latency["Dimensions"]) == (
        "JobStatus",
        "Latency",
        service,
    )
    assert (latency["ExtendedStatistic"], latency["Threshold"]) == ("p99", 5000)
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"


def test_conflicting_events_alarm_on_the_projectors_metric(raw):
    alarm = _alarms(raw)["ProjectorEventsConflictingAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == (
        "JobStatus",
        "EventsConflicting",
        [{"Name": "service", "Value": "jobstatus"}],
    )
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_api_5xx_rate_alarm_is_metric_math_over_the_stage(raw):
    alarm = _alarms(raw)["Api5xxRateAlarm"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert [m["Id"] for m in alarm["Metrics"] if m["ReturnData"]] == ["rate"]
    assert metrics["rate"]["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (5, "GreaterThanThreshold")


def test_every_alarm_notifies_the_given_topic_or_the_one_the_stack_makes(raw):
    # Changed on purpose (issue 10): with no AlarmTopicArn the alarms used to notify nobody.
    for name, alarm in _alarms(raw).items():
        assert alarm["AlarmActions"] == [
            {"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}
        ], name
        assert alarm["TreatMissingData"] == "notBreaching", name
    topic = raw["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Condition"] == "CreatesAlarmTopic"
    assert raw["Conditions"]["CreatesAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    assert raw["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert raw["Outputs"]["AlarmTopicArn"]["Value"] == {
        "Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]
    }


@pytest.mark.parametrize(
    ("given", "topic_made"), [("", True), ("arn:aws:sns:us-east-1:123456789012:ops", False)]
)
def test_the_alarm_topic_is_made_only_when_none_is_given(given, topic_made):
    template = Template.read(Stage="t", AlarmTopicArn=given)
    assert template.condition("CreatesAlarmTopic") is topic_made
    actions = template.properties("ProjectorDLQDepthAlarm")["AlarmActions"]
    assert actions == ([template.physical_name("AlarmTopic")] if topic_made else [given])


def test_parameters_of_the_shared_interfaces(raw):
    parameters = raw["Parameters"]
    assert parameters["ModelAllowList"]["Default"] == (
        "fal-ai/kling-video/v2/master/text-to-video,fal-ai/kling-video/v2/master/image-to-video"
    )
    assert parameters["FalKeySecretArn"]["Default"] == ""
    for name in ("RestApiId", "ApiParentResourceId", "ApiAuthorizerId", "CognitoUserPoolArn"):
        assert parameters[name]["Type"] == "String", name
    assert raw["Conditions"]["HasFalKeySecret"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FalKeySecretArn"}, ""]}]
    }


def test_outputs_for_operators(raw):
    assert set(raw["Outputs"]) >= {
        "JobsTableName",
        "EventBusName",
        "EventBusArn",
        "ArchiveArn",
        "ProjectorRuleArn",
        "ProjectorQueueUrl",
        "ProjectorDLQUrl",
        "InvokerQueueUrl",
        "InvokerDLQUrl",
        "StatusOutboxQueueUrl",
        "StatusOutboxDLQUrl",
        "IdempotencyTableName",
        "JobsApiUrl",
    }


@pytest.mark.parametrize(
    "parameters",
    [
        {"Stage": "local"},
        {"Stage": "local", "CreateRestApi": "true", "CognitoUserPoolArn": "arn:aws:cognito-idp:::x"},
        {
            "Stage": "local",
            "FalKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:fal-AbCdEf",
        },
    ],
    ids=["defaults", "created-api", "fal-secret"],
)
def test_the_local_stack_resolves_every_intrinsic(parameters):
    template = Template.read(**parameters)
    for logical_id in template.resources:
        template.properties(logical_id)
    outputs = template.resolve(template.data["Outputs"])
    assert outputs["JobsApiUrl"]["Value"].endswith("/local/v1/jobs")
    invoker = template.properties("FalInvokerFn")
    statements = invoker.get("Policies", [])  # the role holds them; the function only names it
    assert statements == []
    role = template.properties("FalInvokerFnRole")
    sids = [s["Sid"] for s in role["Policies"][0]["PolicyDocument"]["Statement"]]
    assert ("ReadFalKey" in sids) is ("FalKeySecretArn" in parameters)


def test_samconfig_deploys_with_the_capability_the_roles_need(raw):
    config = tomllib.loads((Path(__file__).resolve().parents[2] / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    # Unnamed roles: a RoleName would need CAPABILITY_NAMED_IAM.
    roles = of_type(raw["Resources"], "AWS::IAM::Role").values()
    assert roles and all("RoleName" not in role["Properties"] for role in roles)
    overrides = dict(pair.split("=", 1) for pair in deploy["parameter_overrides"].split())
    assert set(overrides) <= set(raw["Parameters"])
