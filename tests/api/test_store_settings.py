"""The DynamoDB adapter's edges (throttling, other errors, reading items) and GetJobFn's settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from api import handler
from api.settings import DEV_CURSOR_SIGNING_KEY, ApiSettings, SettingsError
from api.store import JobReader, StoreUnavailable, from_attribute_value, from_item
from jobstatus import codec
from jobstatus.settings import Settings
from local.loopback_aws import aws_json_endpoint
from tests.fresh import fresh_env, imported_of, run_fresh

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KEY = "k" * 32


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


# --- items: read as the projector's codec reads them ---------------------------------------------

# What the projector writes: JSON-like values in DynamoDB's number range (its codec turns floats
# into Decimal on the way in).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or 1e-120 < abs(x) < 1e120)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=6))
def test_items_read_as_the_projector_codec_reads_them(values):
    item = codec.to_item(values)
    assert from_item(item) == codec.from_item(item)


def test_numbers_integral_as_int_others_as_float():
    item = {"a": {"N": "3"}, "b": {"N": "3.0"}, "c": {"N": "1E+2"}, "d": {"N": "0.1"}, "e": {"N": "-2.5"}}
    values = from_item(item)
    assert values == {"a": 3, "b": 3, "c": 100, "d": 0.1, "e": -2.5}
    assert [type(v) for v in values.values()] == [int, int, int, float, float]


def test_sets_and_binaries_read_as_python_sets_and_bytes():
    # The projector never writes them; read all the same rather than fail on someone else's item.
    assert from_attribute_value({"SS": ["a", "b"]}) == {"a", "b"}
    assert from_attribute_value({"NS": ["1", "1.5"]}) == {1, 1.5}
    assert from_attribute_value({"BS": [b"x"]}) == {b"x"}
    assert from_attribute_value({"B": b"\x00"}) == b"\x00"
    assert codec.from_item({"n": {"NS": ["1"]}}) == {"n": {Decimal(1)}}  # the codec's own, for the record


def test_unknown_attribute_type_is_refused():
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type 'X'"):
        from_attribute_value({"X": "?"})


# --- settings ------------------------------------------------------------------------------------


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobs-prod/cursor-signing-key-AbCdEf"


def test_settings_dev_default_key_only_in_local_stages():
    assert ApiSettings.from_env({}).cursor_key(None) == DEV_CURSOR_SIGNING_KEY.encode()
    assert ApiSettings(stage="test").cursor_key(None) == DEV_CURSOR_SIGNING_KEY.encode()
    with pytest.raises(SettingsError, match="CURSOR_KEY_SECRET_ARN is required in stage 'prod'"):
        ApiSettings.from_env({"STAGE": "prod"})
    with pytest.raises(SettingsError, match="CURSOR_KEY_SECRET_ARN is required in stage 'prod'"):
        ApiSettings.from_env({"STAGE": "prod", "CURSOR_KEY_SECRET_ARN": ""})


def test_the_key_is_the_secrets_value_and_never_a_short_one():
    settings = ApiSettings.from_env({"STAGE": "prod", "CURSOR_KEY_SECRET_ARN": SECRET_ARN})
    assert settings.cursor_key(KEY) == KEY.encode()
    with pytest.raises(SettingsError, match="at least 16 characters"):
        settings.cursor_key("short")
    # A secret that holds no string (a binary secret) is refused, not replaced by the dev key.
    with pytest.raises(SettingsError, match="holds no SecretString"):
        settings.cursor_key(None)


def test_the_plain_key_variable_is_gone():
    # A key in the environment is ignored: only a secret's ARN is read (issue 10).
    with pytest.raises(SettingsError, match="CURSOR_KEY_SECRET_ARN is required"):
        ApiSettings.from_env({"STAGE": "prod", "CURSOR_SIGNING_KEY": KEY})


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("CURSOR_KEY_SECRET_ARN", SECRET_ARN)
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("JOBS_TABLE_NAME", "Jobs-prod")
    monkeypatch.setenv("JOB_TTL_DAYS", "7")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example,,")
    settings = ApiSettings.from_env()
    assert settings == ApiSettings(
        stage="prod",
        jobs_table_name="Jobs-prod",
        job_ttl_days=7,
        allowed_origins=("https://a.example", "https://b.example"),
        cursor_key_secret_arn=SECRET_ARN,
    )
    with pytest.raises(AttributeError):
        settings.stage = "dev"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOB_TTL_DAYS": "thirty"}, "JOB_TTL_DAYS must be an integer, got 'thirty'"),
        ({"JOB_TTL_DAYS": "0"}, "JOB_TTL_DAYS must be from 1 to 3650, got 0"),
        ({"JOB_TTL_DAYS": "3651"}, "JOB_TTL_DAYS must be from 1 to 3650, got 3651"),
        ({"STAGE": "staging"}, "CURSOR_KEY_SECRET_ARN is required in stage 'staging'"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError, match=message):
        ApiSettings.from_env(env)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"STAGE": "local", "JOBS_TABLE_NAME": "Jobs-x", "JOB_TTL_DAYS": " 12 ", "ALLOWED_ORIGINS": ""},
        {"stage": "test", "jobs_table_name": "lower", "allowed_origins": "https://a.example"},
        {"ALLOWED_ORIGINS": " https://a.example ,https://b.example ", "JOB_TTL_DAYS": "3650"},
        {"STAGE": "prod", "CURSOR_KEY_SECRET_ARN": SECRET_ARN, "JOB_TTL_DAYS": "1"},
    ],
)
def test_settings_agree_with_the_shared_settings_model(env, monkeypatch):
    # The same variables, defaults and parsing as `jobstatus.settings.Settings`.
    for name in ("STAGE", "JOBS_TABLE_NAME", "JOB_TTL_DAYS", "ALLOWED_ORIGINS", "CURSOR_KEY_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours, shared = ApiSettings.from_env(), Settings.from_env()
    assert (ours.stage, ours.jobs_table_name, ours.job_ttl_days, ours.allowed_origins) == (
        shared.stage,
        shared.jobs_table_name,
        shared.job_ttl_days,
        shared.allowed_origins,
    )


# --- dependencies and what the cold start imports -------------------------------------------------


def test_dependencies_are_built_from_the_environment(monkeypatch):
    monkeypatch.setenv("JOBS_TABLE_NAME", "Jobs-from-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    handler.dependencies.cache_clear()
    try:
        deps = handler.dependencies()
        assert deps.settings.jobs_table_name == "Jobs-from-env"
        assert deps.jobs._client.meta.endpoint_url == "http://127.0.0.1:1"
        assert deps.jobs._client.meta.region_name == "eu-west-1"
        assert vars(deps.jobs._client.meta.config)["read_timeout"] == 5
        assert handler.dependencies() is deps
    finally:
        handler.dependencies.cache_clear()


def test_the_cursor_key_is_read_from_its_secret_once_per_container(monkeypatch):
    # Given a secret in (moto's) Secrets Manager and its ARN in the environment
    from moto import mock_aws

    from api.core import ApiError, CursorCodec
    from jobstatus.http import Caller

    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="jobs-prod/cursor-signing-key", SecretString="s" * 64)["ARN"]
        monkeypatch.setenv("STAGE", "prod")
        monkeypatch.setenv("CURSOR_KEY_SECRET_ARN", arn)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        reads: list[str] = []
        real_read = handler.read_secret

        def counted_read(session: Any, secret_arn: str) -> str | None:
            reads.append(secret_arn)
            return real_read(session, secret_arn)

        monkeypatch.setattr(handler, "read_secret", counted_read)
        handler.dependencies.cache_clear()
        try:
            # When the container starts and serves on
            deps = handler.dependencies()
            handler.dependencies()
            # Then the cursors are signed with the secret's value (a cursor of the dev key is refused)
            caller = Caller("alice", False)
            position = {"jobId": {"S": "j"}, "userId": {"S": "alice"}, "createdAt": {"S": "2026-01-01"}}
            signed = CursorCodec(("s" * 64).encode()).encode(position, caller, None)
            assert deps.cursors.decode(signed, caller, None) == position
            forged = CursorCodec(DEV_CURSOR_SIGNING_KEY.encode()).encode(position, caller, None)
            with pytest.raises(ApiError):
                deps.cursors.decode(forged, caller, None)
            # And the secret was read once
            assert reads == [arn]
        finally:
            handler.dependencies.cache_clear()


# Costly packages GetJobFn's cold start does without (bench/api.py prints what each would add).
# Of `jobstatus`, only its pure modules (`errors`, `commalist`, `http`) are on the path.
KEPT_OUT = (
    "pydantic",
    "pydantic_settings",
    "boto3",
    "s3transfer",
    "aws_xray_sdk",
    "ops.cli",
    "jobstatus.codec",
    "jobstatus.events",
    "jobstatus.requests",
    "jobstatus.schema",
    "jobstatus.settings",
    "jobstatus.storable",
    "api.openapi",
)
COLD_START = f"""
import json, sys
import api.handler
api.handler.dependencies()
print(json.dumps({imported_of(KEPT_OUT)}))
"""


@pytest.fixture
def secrets_manager() -> Iterator[str]:
    """A loopback endpoint answering GetSecretValue with KEY, as Secrets Manager would."""

    def answer(target: str, request: dict[str, Any]) -> dict[str, Any]:
        assert target == "secretsmanager.GetSecretValue"
        return {"ARN": request["SecretId"], "Name": "k", "SecretString": KEY}

    with aws_json_endpoint(answer) as url:
        yield url


def test_cold_start_imports_none_of_the_costly_packages(secrets_manager):
    # Given a fresh interpreter (this one has them all imported already)
    env = fresh_env(
        STAGE="prod",
        CURSOR_KEY_SECRET_ARN=SECRET_ARN,
        AWS_ENDPOINT_URL_SECRETS_MANAGER=secrets_manager,
        JOBS_TABLE_NAME="Jobs-prod",
    )
    # When it does what Lambda's init and first request do before routing
    output = run_fresh(COLD_START, env)
    # Then none of them was imported
    *logged, imported = output.splitlines()
    assert json.loads(imported) == []
    # And the key came from the secret (the log line says so, never the key itself)
    assert any(json.loads(line).get("fromSecret") is True for line in logged), logged
    assert KEY not in output
