"""Items between plain Python values and DynamoDB's attribute values.

Floats become `Decimal` on the way in (DynamoDB has no float) and integral numbers come back
as `int`, so a stored item reads back equal to the item the pure fold computed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_decimals(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_decimals(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_decimals(v) for v in value]
    return value


def _from_decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_decimals(v) for v in value]
    return value


def to_attribute_value(value: Any) -> Any:
    """One Python value as a DynamoDB attribute value (`{"S": ...}`, `{"M": ...}`, ...)."""
    return _serializer.serialize(_to_decimals(value))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """A Python dict as a DynamoDB item."""
    return {name: to_attribute_value(value) for name, value in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (integral numbers as int, others as float)."""
    return {name: _from_decimals(_deserializer.deserialize(value)) for name, value in item.items()}
