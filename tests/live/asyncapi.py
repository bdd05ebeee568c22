"""The AsyncAPI document of the live-update protocol as JSON Schema validators, one per direction."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
_URI = "urn:jobstatus:asyncapi"


@cache
def document() -> dict[str, Any]:
    """docs/asyncapi.yaml as data."""
    data: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return data


@cache
def validator(schema_name: str) -> jsonschema.Draft7Validator:
    """A validator of `#/components/schemas/<schema_name>` (refs resolved inside the document)."""
    registry: Registry[Any] = Registry().with_resource(
        _URI, Resource.from_contents(document(), default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(
        {"$ref": f"{_URI}#/components/schemas/{schema_name}"}, registry=registry
    )


def check_server_message(message: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `message` is a server message of the document."""
    validator("ServerMessage").validate(message)


def check_client_message(message: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `message` is a client message of the document."""
    validator("ClientMessage").validate(message)
