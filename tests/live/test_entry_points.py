"""The Lambda entry points of StreamFn and NotifierFn, wired from their settings, on moto."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from notifier import handler, routes
from ops.template import Template
from tests.live.support import ws_event
from tests.producers.fakes import lambda_context

pytestmark = pytest.mark.unit


@pytest.fixture
def wired(monkeypatch, template: Template):
    monkeypatch.setenv("CONNECTIONS_ENDPOINT", "https://abcdef1234.execute-api.us-east-1.amazonaws.com/test")
    monkeypatch.setenv("CONNECTIONS_TABLE_NAME", template.physical_name("ConnectionsTable"))
    monkeypatch.setenv("JOBS_TABLE_NAME", "Jobs-test")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**template.table_definition("ConnectionsTable"))
        ddb.create_table(**template.table_definition("JobsTable"))
        routes.dependencies.cache_clear()
        handler.dependencies.cache_clear()
        try:
            yield ddb
        finally:
            routes.dependencies.cache_clear()
            handler.dependencies.cache_clear()


def test_stream_fn_connects_and_answers_through_the_connections_api(wired):
    authorizer = {"userId": "alice", "admin": "false"}
    assert routes.lambda_handler(ws_event("$connect", "c-1", authorizer=authorizer), lambda_context()) == {
        "statusCode": 200
    }
    # moto's @connections takes any post (DESIGN §8); the answer went out through it.
    assert routes.lambda_handler(ws_event("ping", "c-1", body='{"action":"ping"}'), lambda_context()) == {
        "statusCode": 200
    }
    assert routes.dependencies().connections.connection("c-1") is not None


def test_notifier_fn_answers_a_partial_batch_response(wired):
    assert handler.lambda_handler({"Records": []}, lambda_context()) == {"batchItemFailures": []}
