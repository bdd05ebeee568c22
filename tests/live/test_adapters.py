"""The `@connections` adapter (410 through botocore's Stubber) and the settings."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from notifier.sender import ConnectionsApi
from notifier.settings import AuthorizerSettings, SettingsError, StreamSettings

pytestmark = pytest.mark.unit

ENDPOINT = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/test"


def _stubbed() -> tuple[ConnectionsApi, Stubber]:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
    return ConnectionsApi(client), Stubber(client)


def test_a_post_that_answers_410_says_the_connection_is_gone():
    api, stubber = _stubbed()
    stubber.add_client_error("post_to_connection", "GoneException", http_status_code=410)
    with stubber:
        assert api.post("c-1", b"{}") is False
    stubber.assert_no_pending_responses()


def test_a_delivered_post_is_true_and_other_errors_raise():
    api, stubber = _stubbed()
    stubber.add_response("post_to_connection", {}, {"ConnectionId": "c-1", "Data": b'{"type":"pong"}'})
    stubber.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
    with stubber:
        assert api.post("c-1", b'{"type":"pong"}') is True
        with pytest.raises(ClientError):
            api.post("c-1", b"{}")


def test_moto_accepts_any_connection_id_and_never_answers_410():
    # DESIGN §8: which is why the 410 path is tested with the Stubber above and a fake elsewhere.
    with mock_aws():
        client = boto3.client("apigatewaymanagementapi", endpoint_url=ENDPOINT, region_name="us-east-1")
        assert ConnectionsApi(client).post("never-connected", b"{}") is True


def test_stream_settings_are_read_once_from_the_environment():
    settings = StreamSettings.from_env(
        {
            "CONNECTIONS_ENDPOINT": ENDPOINT,
            "jobs_table_name": "Jobs-test",
            "CONNECTIONS_TABLE_NAME": "JobStreamConnections-test",
            "STAGE": "test",
        }
    )
    assert settings == StreamSettings(ENDPOINT, "test", "Jobs-test", "JobStreamConnections-test")
    with pytest.raises(SettingsError, match="CONNECTIONS_ENDPOINT"):
        StreamSettings.from_env({})


def test_authorizer_settings_derive_the_jwks_url_from_the_issuer():
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"
    settings = AuthorizerSettings.from_env({"COGNITO_ISSUER": issuer + "/", "COGNITO_CLIENT_IDS": "a1, b2,"})
    assert settings == AuthorizerSettings(issuer, ("a1", "b2"), issuer + "/.well-known/jwks.json")
    with pytest.raises(SettingsError, match="COGNITO_ISSUER"):
        AuthorizerSettings.from_env({"COGNITO_CLIENT_IDS": "a1"})
    with pytest.raises(SettingsError, match="COGNITO_CLIENT_IDS"):
        AuthorizerSettings.from_env({"COGNITO_ISSUER": issuer})
