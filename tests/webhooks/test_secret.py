"""Per-user secrets and GET /v1/webhooks/secret (WebhookSecretFn)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from standardwebhooks import Webhook

from webhooks.secret_handler import Dependencies, handle
from webhooks.signing import MasterSecretError, read_master_secret, signed_headers, user_secret

pytestmark = pytest.mark.unit

MASTER = b"0123456789abcdef0123456789abcdef0123456789abcdef"
ORIGIN = "https://video.deepfoundai.com"


def expected_secret(user: str) -> str:
    return "whsec_" + base64.b64encode(hmac.new(MASTER, user.encode(), hashlib.sha256).digest()).decode()


def test_user_secret_is_hmac_of_the_user_under_the_master_and_differs_per_user():
    assert user_secret(MASTER, "alice") == expected_secret("alice")
    assert user_secret(MASTER, "alice") != user_secret(MASTER, "bob")
    with pytest.raises(MasterSecretError):
        user_secret(b"short", "alice")


def test_a_signature_made_with_the_secret_verifies_with_the_reference_library():
    body = '{"type":"job.completed"}'
    headers = signed_headers(user_secret(MASTER, "alice"), "job-1.v", body, datetime.now(UTC))
    assert Webhook(expected_secret("alice")).verify(body, headers) == {"type": "job.completed"}


def test_master_secret_from_secrets_manager():
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="jobs-test/webhook-master-secret", SecretString=MASTER.decode())[
            "ARN"
        ]
        assert read_master_secret(client, arn) == MASTER
        short = client.create_secret(Name="short", SecretString="x")["ARN"]
        with pytest.raises(MasterSecretError, match="shorter"):
            read_master_secret(client, short)


def call(method="GET", claims=None, origin=ORIGIN):
    event = {
        "httpMethod": method,
        "resource": "/v1/webhooks/secret",
        "path": "/v1/webhooks/secret",
        "headers": {"Origin": origin},
        "requestContext": {"authorizer": {"claims": claims} if claims is not None else {}},
    }
    return handle(event, Dependencies(MASTER, (ORIGIN,)))


def test_get_answers_the_callers_secret_uncached_with_cors():
    answer = call(claims={"sub": "alice"})
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"secret": expected_secret("alice")}
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert answer["headers"]["Access-Control-Allow-Origin"] == ORIGIN


def test_without_claims_401_with_the_one_error_body():
    answer = call(claims=None)
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"]) == {
        "error": {"code": "UNAUTHORIZED", "message": "Authentication required"}
    }


def test_other_methods_are_refused():
    # Preflights are the gateway's MOCK integration (template.yaml; tests/local/test_apigw.py): an
    # OPTIONS that reaches the function is refused like any other method but GET.
    for method in ("OPTIONS", "POST"):
        refused = call(method, claims={"sub": "alice"})
        assert refused["statusCode"] == 405
        assert refused["headers"]["Allow"] == "GET"
        assert json.loads(refused["body"])["error"]["code"] == "METHOD_NOT_ALLOWED"
