"""`ops.template`: intrinsics resolved as CloudFormation would, names and ARNs as deployed."""

from __future__ import annotations

import pytest

from ops.template import Template

pytestmark = pytest.mark.unit


@pytest.fixture
def template() -> Template:
    return Template(
        {
            "Conditions": {
                "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
                "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            },
            "Resources": {
                "Bus": {
                    "Type": "AWS::Events::EventBus",
                    "Properties": {"Name": {"Fn::Sub": "jobs-${Stage}"}},
                },
                "Rule": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {"Name": "r", "EventBusName": {"Ref": "Bus"}},
                },
                "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
                "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
                "Table": {
                    "Type": "AWS::DynamoDB::Table",
                    "Properties": {"TableName": "t", "AttributeDefinitions": [], "KeySchema": []},
                },
            },
        },
        parameters={"Stage": "dev", "List": "a,b"},
    )


def test_refs_subs_and_pseudo_parameters(template: Template) -> None:
    assert template.resolve({"Ref": "Bus"}) == "jobs-dev"
    assert template.resolve({"Ref": "AWS::Region"}) == "us-east-1"
    assert template.resolve({"Fn::Sub": "${AWS::AccountId}/${Queue.Arn}"}) == (
        "123456789012/arn:aws:sqs:us-east-1:123456789012:q"
    )
    assert template.resolve({"Fn::Sub": ["${X}-${Stage}", {"X": {"Ref": "Queue"}}]}) == "q-dev"
    template.refs["Queue"] = "http://sqs/q"
    assert template.resolve({"Ref": "Queue"}) == "http://sqs/q"
    assert template.resolve([{"Ref": "AWS::NoValue"}, 1]) == [1]


def test_get_att(template: Template) -> None:
    assert template.resolve({"Fn::GetAtt": ["Queue", "QueueName"]}) == "q"
    assert template.resolve({"Fn::GetAtt": "Bus.Name"}) == "jobs-dev"
    assert template.resolve({"Fn::GetAtt": "Api.RootResourceId"}) == "dev-Api-root"
    assert template.arn("Rule") == "arn:aws:events:us-east-1:123456789012:rule/jobs-dev/r"
    assert template.arn("Api") == "arn:aws:local:us-east-1:123456789012:Api"
    with pytest.raises(ValueError, match="not known locally"):
        template.resolve({"Fn::GetAtt": "Queue.Url"})


def test_conditions_and_list_functions(template: Template) -> None:
    assert template.condition("NotProd") is True
    assert template.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    assert template.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-dev"
    assert template.resolve({"Fn::Split": [",", {"Ref": "List"}]}) == ["a", "b"]
    assert template.resolve({"A": 1, "B": {"Ref": "Stage"}}) == {"A": 1, "B": "dev"}


def test_a_table_without_ttl_or_indexes(template: Template) -> None:
    assert template.ttl_attribute("Table") is None
    assert "GlobalSecondaryIndexes" not in template.table_definition("Table")
