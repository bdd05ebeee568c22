"""Fixtures of the webhook tests: the deliveries table in moto (in-process), a master secret, a receiver."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from local.template import Template
from tests.webhooks.receiver import Receiver
from webhooks.signing import user_secret
from webhooks.store import DeliveryLedgerStore

MASTER = b"m" * 48
USER = "user-1"


@pytest.fixture
def ledger(template: Template) -> Iterator[DeliveryLedgerStore]:
    """A DeliveryLedgerStore on the template's deliveries table, in moto."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        definition = template.table_definition("WebhookDeliveriesTable")
        client.create_table(**definition)
        yield DeliveryLedgerStore(client, definition["TableName"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver holding USER's secret."""
    running = Receiver(secret=user_secret(MASTER, USER)).start()
    try:
        yield running
    finally:
        running.stop()
