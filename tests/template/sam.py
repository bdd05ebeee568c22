"""Helpers for the template tests: template.yaml as data, its SAM translation, its API deployment id.

`python -m tests.template.sam` renames the API Deployment after the routes changed (see
`deployment_logical_id`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from ops.template import TEMPLATE_PATH, load

DEPLOYMENT_PREFIX = "ApiDeployment"
# What `sam package` puts in place of a local CodeUri.
PACKAGED_CODE_URI = "s3://jobstatus-artifacts/0123456789abcdef"
# Every change of these resource types (gateway responses too) must reach the stage, which only a new
# Deployment does.
_DEPLOYED_TYPES = (
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Authorizer",
    "AWS::ApiGateway::GatewayResponse",
)
_DEPLOYMENT_ID = re.compile(rf"\b{DEPLOYMENT_PREFIX}[0-9a-f]*\b|\b{DEPLOYMENT_PREFIX}PLACEHOLDER\b")


def read(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts and lists (intrinsics in their long form)."""
    data: dict[str, Any] = json.loads(json.dumps(load(path)))
    return data


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of `template` with every local CodeUri replaced by an S3 URI, as `sam package` does."""
    copied = copy.deepcopy(template)
    for resource in copied["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = PACKAGED_CODE_URI
    return copied


class NoManagedPolicies:
    """A ManagedPolicyLoader that asks IAM nothing: the template names no managed policy by name."""

    def load(self) -> dict[str, str]:
        """No policy names to resolve."""
        return {}


def translate(template: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template AWS's SAM translator makes of `template` (after `packaged`)."""
    from samtranslator.translator.transform import transform

    result: dict[str, Any] = transform(packaged(template), parameters or {}, NoManagedPolicies())
    return result


def deployment_logical_id(template: dict[str, Any]) -> str:
    """`ApiDeployment` + a hash of every API resource, method and authorizer of `template`.

    CloudFormation never re-creates a Deployment whose properties did not change, and a method change
    reaches the stage only through a new deployment: naming the Deployment after what it deploys
    makes a change of a route replace it.
    """
    deployed = {
        name: resource
        for name, resource in sorted(template["Resources"].items())
        if resource["Type"] in _DEPLOYED_TYPES
    }
    digest = hashlib.sha256(json.dumps(deployed, sort_keys=True).encode()).hexdigest()
    return f"{DEPLOYMENT_PREFIX}{digest[:10]}"


def rename_deployment(path: Path = TEMPLATE_PATH) -> str:
    """Give the Deployment in `path` the logical id its routes call for; that id."""
    wanted = deployment_logical_id(read(path))
    path.write_text(_DEPLOYMENT_ID.sub(wanted, path.read_text()))
    return wanted


def failed_rules(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The AssertDescriptions of the template's Rules that `parameters` (over the defaults) break.

    Evaluates the functions CloudFormation allows in Rules that this template uses, as CloudFormation
    does before it creates or updates a stack; an unknown function is an error, not a pass.
    """
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(parameters)
    failed: list[str] = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        failed.extend(
            str(assertion["AssertDescription"])
            for assertion in rule["Assertions"]
            if not _rule_value(assertion["Assert"], values)
        )
    return failed


def _rule_value(expression: Any, values: dict[str, str]) -> Any:
    if isinstance(expression, list):
        return [_rule_value(item, values) for item in expression]
    if not isinstance(expression, dict):
        return str(expression)
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    arguments = _rule_value(argument, values)
    if function == "Fn::Equals":
        return arguments[0] == arguments[1]
    if function == "Fn::Not":
        return not arguments[0]
    if function == "Fn::And":
        return all(arguments)
    if function == "Fn::Or":
        return any(arguments)
    if function == "Fn::Contains":
        return arguments[1] in arguments[0]
    raise ValueError(f"rule function {function} is not evaluated here")


if __name__ == "__main__":
    sys.stdout.write(rename_deployment() + "\n")
