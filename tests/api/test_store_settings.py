"""The DynamoDB adapter's edges (throttling, other errors) and GetJobFn's settings."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from pydantic import ValidationError

from api import handler
from api.settings import DEV_CURSOR_SIGNING_KEY, ApiSettings
from api.store import JobReader, StoreUnavailable

pytestmark = pytest.mark.unit


def stubbed_reader():
    client = boto3.client("dynamodb", region_name="us-east-1")
    return JobReader(client, "Jobs"), Stubber(client)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_becomes_store_unavailable(code):
    reader, stubber = stubbed_reader()
    stubber.add_client_error("get_item", service_error_code=code)
    stubber.add_client_error("query", service_error_code=code)
    with stubber, pytest.raises(StoreUnavailable):
        reader.get("job-1")
    with stubber, pytest.raises(StoreUnavailable):
        reader.list_for_user("u", limit=1, status=None, start=None, now=0)


def test_other_client_errors_pass_through():
    reader, stubber = stubbed_reader()
    stubber.add_client_error("get_item", service_error_code="ResourceNotFoundException")
    with stubber, pytest.raises(ClientError):
        reader.get("job-1")


def test_settings_dev_default_key_only_in_local_stages(monkeypatch):
    monkeypatch.delenv("CURSOR_SIGNING_KEY", raising=False)
    assert ApiSettings(stage="dev").cursor_key() == DEV_CURSOR_SIGNING_KEY.encode()
    with pytest.raises(ValidationError, match="CURSOR_SIGNING_KEY is required"):
        ApiSettings(stage="prod")
    monkeypatch.setenv("CURSOR_SIGNING_KEY", "k" * 32)
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example")
    settings = ApiSettings()
    assert settings.cursor_key() == b"k" * 32
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert "k" * 32 not in repr(settings)
    with pytest.raises(ValidationError, match="at least"):
        ApiSettings(cursor_signing_key="short")


def test_dependencies_are_built_from_the_environment(monkeypatch):
    monkeypatch.setenv("JOBS_TABLE_NAME", "Jobs-from-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
    handler.dependencies.cache_clear()
    try:
        deps = handler.dependencies()
        assert deps.settings.jobs_table_name == "Jobs-from-env"
        assert deps.jobs._client.meta.endpoint_url == "http://127.0.0.1:1"
        assert handler.dependencies() is deps
    finally:
        handler.dependencies.cache_clear()
