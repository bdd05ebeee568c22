"""Shared fixtures: fake credentials, DynamoDB Local, moto server, tables made from template.yaml.

DynamoDB Local (AWS's engine) runs once per session on a free port; where Java is missing the
fixture says so and falls back to moto server. moto server (EventBridge, SQS) runs once per
session on another free port. Every test that needs a table gets its own, so tests never
share state.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

# Before anything builds a boto3 client: never reach real AWS from a test.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "jobstatus",
        "POWERTOOLS_METRICS_NAMESPACE": "JobStatus",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
    del os.environ[_name]

from local.dynamodb_local import DynamoDBLocal, free_port, java_available  # noqa: E402
from local.template import Template  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture(scope="session")
def template() -> Template:
    """template.yaml, stage `test`."""
    return Template.read(Stage="test")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_endpoint(moto_server: str) -> Iterator[str]:
    """DynamoDB Local's endpoint (moto server's, loudly, when Java is missing)."""
    if not java_available():
        warnings.warn("java not found: DynamoDB tests run on moto server, not DynamoDB Local", stacklevel=1)
        yield moto_server
        return
    with DynamoDBLocal() as dynamodb:
        yield dynamodb.endpoint


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch, dynamodb_endpoint: str, moto_server: str) -> dict[str, str]:
    """Point botocore's standard endpoint settings at DynamoDB Local and moto server."""
    endpoints = {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_server,
        "AWS_ENDPOINT_URL_SQS": moto_server,
    }
    for name, value in endpoints.items():
        monkeypatch.setenv(name, value)
    return endpoints


@pytest.fixture
def ddb(dynamodb_endpoint: str) -> DynamoDBClient:
    """A DynamoDB client on DynamoDB Local."""
    return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")


def create_jobs_table(client: DynamoDBClient, template: Template, name: str) -> str:
    """Create the template's Jobs table under `name` and wait until it is active."""
    definition: dict[str, Any] = {**template.table_definition(), "TableName": name}
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


@pytest.fixture
def jobs_table(ddb: DynamoDBClient, template: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh Jobs table on DynamoDB Local, made from template.yaml; `JOBS_TABLE_NAME` set to it."""
    name = create_jobs_table(ddb, template, f"Jobs-test-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("JOBS_TABLE_NAME", name)
    try:
        yield name
    finally:
        ddb.delete_table(TableName=name)
