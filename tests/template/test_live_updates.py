"""The live-update resources of template.yaml (DESIGN §4b), as written and as SAM translates them."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROUTES = {"$connect", "$disconnect", "subscribe", "unsubscribe", "ping", "$default"}
TARGET = {"Fn::Sub": "integrations/${JobStreamIntegration}"}
STAGE_URL = "https://${JobStreamApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def test_the_jobs_table_streams_new_images(raw):
    assert raw["Resources"]["JobsTable"]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_IMAGE"
    }


def test_the_connections_table_expires_rows_and_indexes_subscribers_by_topic(raw):
    table = raw["Resources"]["ConnectionsTable"]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "connectionId", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "ByTopic"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["topic", "connectionId"]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["userId", "admin"]}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_a_websocket_api_routes_on_the_action(raw):
    api = raw["Resources"]["JobStreamApi"]["Properties"]
    assert (api["ProtocolType"], api["RouteSelectionExpression"]) == ("WEBSOCKET", "$request.body.action")


def test_every_route_goes_to_stream_fn_and_only_connect_is_authorized(raw):
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(raw["Resources"], "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == ROUTES
    for key, route in routes.items():
        assert route["ApiId"] == {"Ref": "JobStreamApi"}
        assert route["Target"] == TARGET, key
        if key == "$connect":
            assert (route["AuthorizationType"], route["AuthorizerId"]) == (
                "CUSTOM",
                {"Ref": "JobStreamAuthorizer"},
            )
        else:
            assert "AuthorizationType" not in route and "AuthorizerId" not in route, key
    integration = raw["Resources"]["JobStreamIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${StreamFn.Arn}/invocations" in integration["IntegrationUri"]["Fn::Sub"]


def test_connect_is_guarded_by_the_request_authorizer_on_the_token_parameter(raw):
    authorizer = raw["Resources"]["JobStreamAuthorizer"]["Properties"]
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    assert "${StreamAuthorizerFn.Arn}/invocations" in authorizer["AuthorizerUri"]["Fn::Sub"]
    env = raw["Resources"]["StreamAuthorizerFn"]["Properties"]["Environment"]["Variables"]
    assert env == {
        "COGNITO_ISSUER": {
            "Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${StreamUserPoolId}"
        },
        "COGNITO_CLIENT_IDS": {"Ref": "StreamClientIds"},
    }


def test_the_stage_deploys_every_route(raw):
    deployment = raw["Resources"]["JobStreamDeployment"]
    routes = set(of_type(raw["Resources"], "AWS::ApiGatewayV2::Route"))
    assert set(deployment["DependsOn"]) == routes
    stage = raw["Resources"]["JobStreamStage"]["Properties"]
    assert stage["DeploymentId"] == {"Ref": "JobStreamDeployment"}
    assert stage["StageName"] == {"Ref": "Stage"}


def test_only_this_api_may_invoke_the_stream_functions(resources):
    granted = {
        p["Properties"]["FunctionName"]["Fn::GetAtt"][0]: p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if "JobStreamApi" in repr(p["Properties"])
    }
    assert set(granted) == {"StreamFn", "StreamAuthorizerFn"}
    prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${JobStreamApi}"
    assert granted["StreamFn"]["SourceArn"] == {"Fn::Sub": prefix + "/${Stage}/*"}
    assert granted["StreamAuthorizerFn"]["SourceArn"] == {
        "Fn::Sub": prefix + "/authorizers/${JobStreamAuthorizer}"
    }
    for props in granted.values():
        assert (props["Action"], props["Principal"]) == ("lambda:InvokeFunction", "apigateway.amazonaws.com")


def test_the_notifier_reads_the_stream_with_partial_failures_bisection_bounded_retries_and_a_dlq(resources):
    (mapping,) = [
        m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "NotifierFn"}
    ]
    pattern = mapping.pop("FilterCriteria")["Filters"][0]["Pattern"]
    assert mapping == {
        "EventSourceArn": {"Fn::GetAtt": ["JobsTable", "StreamArn"]},
        "FunctionName": {"Ref": "NotifierFn"},
        "StartingPosition": "LATEST",
        "BatchSize": 50,
        "MaximumBatchingWindowInSeconds": 0,
        "ParallelizationFactor": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["NotifierDLQ", "Arn"]}}},
    }
    # Writes of a job that carry a version; never a TTL deletion (REMOVE).
    assert json.loads(pattern) == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"version": {"S": [{"exists": True}]}}},
    }


def test_the_notifier_dlq_is_alarmed(raw):
    alarm = raw["Resources"]["NotifierDLQDepthAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["NotifierDLQ", "QueueName"]}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_stream_functions_find_the_connections_table_and_the_stage(resources):
    for name in ("StreamFn", "NotifierFn"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["CONNECTIONS_TABLE_NAME"] == {"Ref": "ConnectionsTable"}, name
        assert variables["CONNECTIONS_ENDPOINT"] == {"Fn::Sub": STAGE_URL}, name
        assert variables["JOBS_TABLE_NAME"] == {"Ref": "JobsTable"}, name


def test_manage_connections_is_granted_on_this_stage_only(resources):
    wanted = {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${JobStreamApi}"
        "/${Stage}/POST/@connections/*"
    }
    holders = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for entry in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if "Fn::If" not in entry and entry["Action"] == "execute-api:ManageConnections"
    }
    assert holders == {"StreamFnRole", "NotifierFnRole"}
    for role in holders:
        (entry,) = [
            e
            for e in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            if e["Action"] == "execute-api:ManageConnections"
        ]
        assert entry["Resource"] == wanted


def test_the_stream_url_is_an_output(raw):
    assert raw["Outputs"]["JobStreamUrl"]["Value"] == {
        "Fn::Sub": "wss://${JobStreamApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    }


def test_the_notifier_package_is_built_installed_and_checked():
    assert re.search(r"cp -R [^\n]*\bnotifier\b", (ROOT / "Makefile").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "notifier*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "notifier" in project["tool"]["mypy"]["files"]
    assert "notifier" in project["tool"]["coverage"]["run"]["source"]
    # The authorizer runs PyJWT in Lambda: a runtime dependency, not only the CLI's.
    assert "PyJWT[crypto]==2.15.1" in project["project"]["dependencies"]
