"""Fixtures of the webhook tests: the deliveries table in moto (in-process), a master secret, a receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from moto import mock_aws

from ops.template import Template
from tests.webhooks.receiver import Receiver
from webhooks.signing import user_secret
from webhooks.store import DeliveryLedgerStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MASTER = b"m" * 48
USER = "user-1"


class Serialized:
    """A client whose calls run one at a time.

    DynamoDB applies each conditional write atomically; moto in-process does not lock, so two sender
    threads could both pass one condition there. Serializing the calls gives back DynamoDB's
    guarantee (and only that: the sender's threads still interleave between calls).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@pytest.fixture
def ledger(template: Template) -> Iterator[DeliveryLedgerStore]:
    """A DeliveryLedgerStore on the template's deliveries table, in moto."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        definition = template.table_definition("WebhookDeliveriesTable")
        client.create_table(**definition)
        yield DeliveryLedgerStore(cast("DynamoDBClient", Serialized(client)), definition["TableName"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver holding USER's secret."""
    running = Receiver(secret=user_secret(MASTER, USER)).start()
    try:
        yield running
    finally:
        running.stop()
