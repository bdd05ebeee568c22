"""`template.yaml` read as data, so local resources are made from it, not from a second copy.

Resolves the intrinsics the local stack needs (`Ref` to parameters and resources, `Fn::Sub`,
`Fn::GetAtt ... .Arn`, `Fn::If`, `Fn::Equals`, `Fn::Not`) against a stage, a region and an account.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from cfn_tools import load_yaml  # type: ignore[import-untyped]  # cfn-flip: YAML with CFN short tags

TEMPLATE_PATH: Final = Path(__file__).resolve().parent.parent / "template.yaml"
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts and lists, intrinsics in their long form."""
    data: dict[str, Any] = load_yaml(path.read_text())
    return data


@dataclass
class Template:
    """The template with values for its parameters: resolves properties to plain values."""

    data: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "123456789012"
    # What `Ref` gives for resources whose deployed value is not their name (an SQS queue's URL).
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path = TEMPLATE_PATH, **parameters: str) -> Template:
        """Load `path` with the template's defaults, overridden by `parameters`."""
        data = load(path)
        values = {name: str(spec.get("Default", "")) for name, spec in data.get("Parameters", {}).items()}
        values.update(parameters)
        return cls(data, values)

    @property
    def resources(self) -> dict[str, Any]:
        """Every resource, by logical id, unresolved."""
        return dict(self.data["Resources"])

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The resources of one type (`AWS::SQS::Queue`), by logical id."""
        return {name: res for name, res in self.resources.items() if res["Type"] == kind}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic resolved."""
        props: dict[str, Any] = self.resolve(self.resources[logical_id].get("Properties", {}))
        return props

    def physical_name(self, logical_id: str) -> str:
        """What `Ref` gives for a resource, as it would be named when deployed."""
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        name_key = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Events::EventBus": "Name",
            "AWS::Events::Rule": "Name",
            "AWS::Events::Archive": "ArchiveName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Serverless::Function": "FunctionName",
        }.get(kind)
        if name_key and name_key in props:
            return str(self.resolve(props[name_key]))
        return f"{self.parameters.get('Stage', 'dev')}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        """What `Fn::GetAtt X.Arn` gives for a resource."""
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        prefix = f"{self.region}:{self.account}"
        if kind == "AWS::Events::Rule":
            bus = self.properties(logical_id).get("EventBusName", "default")
            return f"arn:aws:events:{prefix}:rule/{bus}/{name}"
        shapes = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{prefix}:table/{name}",
            "AWS::Events::EventBus": f"arn:aws:events:{prefix}:event-bus/{name}",
            "AWS::Events::Archive": f"arn:aws:events:{prefix}:archive/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{prefix}:{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{prefix}:function:{name}",
        }
        return shapes.get(kind, f"arn:aws:local:{prefix}:{logical_id}")

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return None
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        return self.physical_name(name)

    def _get_att(self, target: str | list[str]) -> Any:
        logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in {"QueueName", "Name"}:
            return self.physical_name(logical_id)
        if attribute == "StreamArn":  # a table's stream (the label is the engine's, not known here)
            return f"{self.arn(logical_id)}/stream/local"
        if attribute == "RootResourceId":  # a REST API's `/` resource
            return f"{self.physical_name(logical_id)}-root"
        raise ValueError(f"GetAtt {logical_id}.{attribute} is not known locally")

    def _sub(self, spec: str | list[Any]) -> str:
        text, variables = (spec, {}) if isinstance(spec, str) else (spec[0], self.resolve(spec[1]))

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._get_att(name))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(value, text)

    def condition(self, name: str) -> bool:
        """The value of a named condition."""
        return bool(self.resolve(self.data.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function replaced by its value."""
        if isinstance(value, list):
            resolved = [self.resolve(v) for v in value]
            return [v for v in resolved if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if intrinsic := self._intrinsics.get(key):
                return intrinsic(self, arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _if(self, arg: list[Any]) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _equals(self, arg: list[Any]) -> bool:
        left, right = self.resolve(arg)
        return str(left) == str(right)

    def _join(self, arg: list[Any]) -> str:
        separator, parts = arg
        return str(separator).join(str(p) for p in self.resolve(parts))

    def _split(self, arg: list[Any]) -> list[str]:
        separator, text = arg
        return str(self.resolve(text)).split(separator)

    _intrinsics: ClassVar[dict[str, Callable[[Template, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Equals": _equals,
        "Fn::Not": lambda self, arg: not self.resolve(arg[0]),
        "Fn::If": _if,
        "Fn::Join": _join,
        "Fn::Split": _split,
        "Condition": condition,
    }

    def table_definition(self, logical_id: str = "JobsTable") -> dict[str, Any]:
        """`CreateTable` arguments for a table of the template (keys, GSIs, billing, SSE)."""
        props = self.properties(logical_id)
        definition: dict[str, Any] = {
            "TableName": props["TableName"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if indexes := props.get("GlobalSecondaryIndexes"):
            definition["GlobalSecondaryIndexes"] = indexes
        return definition

    def ttl_attribute(self, logical_id: str = "JobsTable") -> str | None:
        """The table's TTL attribute name, when TTL is enabled."""
        spec = self.properties(logical_id).get("TimeToLiveSpecification", {})
        return str(spec["AttributeName"]) if spec.get("Enabled") else None
