"""The local stack's webhook master secret: kept in the data folder, put where WEBHOOK_SECRET_ID points."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.functions import functions_from_template
from local.resources import kept_secret_values, provision
from ops.template import Template
from webhooks.signing import read_master_secret, user_secret

pytestmark = pytest.mark.unit


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        yield {
            "dynamodb": boto3.client("dynamodb", region_name="us-east-1"),
            "sqs": boto3.client("sqs", region_name="us-east-1"),
            "events": boto3.client("events", region_name="us-east-1"),
            "secretsmanager": boto3.client("secretsmanager", region_name="us-east-1"),
        }


def template() -> Template:
    return Template.read(Stage="unit", CreateRestApi="true", CognitoUserPoolArn="arn:aws:cognito-idp:x")


def test_the_master_secret_is_made_once_in_the_data_folder(tmp_path: Path) -> None:
    first = kept_secret_values(template(), tmp_path)
    path = tmp_path / "webhook-master-secret"
    value = path.read_text().strip()
    assert first == {"WebhookMasterSecret": value}
    assert len(value) == 64 and value.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_secret_values(template(), tmp_path) == first


def test_the_kept_secret_is_what_the_webhook_functions_read(aws: dict[str, Any], tmp_path: Path) -> None:
    # Given: a data folder that already holds a master secret (a previous start)
    (tmp_path / "webhook-master-secret").write_text("m" * 64 + "\n")
    made = template()
    # When: the stack provisions the template twice (moto keeps the secret the second time)
    for _ in range(2):
        resources = provision(
            made,
            aws["dynamodb"],
            aws["sqs"],
            aws["events"],
            aws["secretsmanager"],
            secret_values=kept_secret_values(made, tmp_path),
        )
    # Then: WEBHOOK_SECRET_ID of the sender and the secret route names that secret, holding the kept value
    functions = functions_from_template(made)
    secret_id = functions["WebhookSenderFn"].environment["WEBHOOK_SECRET_ID"]
    assert secret_id == resources.secrets["WebhookMasterSecret"]
    assert functions["WebhookSecretFn"].environment["WEBHOOK_SECRET_ID"] == secret_id
    master = read_master_secret(aws["secretsmanager"], secret_id)
    assert master == b"m" * 64
    assert user_secret(master, "alice").startswith("whsec_")


def test_a_changed_kept_secret_replaces_the_one_in_secrets_manager(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    made = template()
    provision(made, aws["dynamodb"], aws["sqs"], aws["events"], aws["secretsmanager"])
    (tmp_path / "webhook-master-secret").write_text("k" * 64)
    resources = provision(
        made,
        aws["dynamodb"],
        aws["sqs"],
        aws["events"],
        aws["secretsmanager"],
        secret_values=kept_secret_values(made, tmp_path),
    )
    assert read_master_secret(aws["secretsmanager"], resources.secrets["WebhookMasterSecret"]) == b"k" * 64
