"""The local live-update assembly from template.yaml: gateway, route function, stream poller, notifier."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from websockets.sync.client import connect

from local.auth import Authorizer, SigningKey, issue_token
from local.live import LiveUpdates, connections_endpoint, websocket_routes
from local.streams import StreamMapping, stream_mappings
from notifier.handler import NotifierDeps
from notifier.handler import handle as notify
from notifier.routes import StreamDeps
from notifier.routes import handle as route
from notifier.sender import ConnectionsApi
from tests.live.asyncapi import check_server_message
from tests.live.support import ALICE, NOW, job_event
from tests.live.test_local_websocket import _handler

pytestmark = pytest.mark.integration


def test_the_stream_mapping_and_the_routes_come_from_the_template(template):
    # WebhookDispatcherFn reads the same stream (tests/template/test_webhooks.py checks its mapping).
    assert [m for m in stream_mappings(template) if m.function == "NotifierFn"] == [
        StreamMapping(
            function="NotifierFn",
            table="JobsTable",
            batch_size=50,
            max_retries=5,
            bisect_on_error=True,
            report_batch_item_failures=True,
            patterns=[
                {
                    "eventName": ["INSERT", "MODIFY"],
                    "dynamodb": {"NewImage": {"version": {"S": [{"exists": True}]}}},
                }
            ],
            starting_position="LATEST",
        )
    ]
    function, keys = websocket_routes(template)
    assert (function, sorted(keys)) == (
        "StreamFn",
        ["$connect", "$default", "$disconnect", "ping", "subscribe", "unsubscribe"],
    )


def test_a_subscriber_sees_every_change_of_a_job_in_order(live, template, tmp_path):
    key = SigningKey.load_or_create(tmp_path)
    functions: dict[str, Any] = {}

    def invoke(name: str, event: dict[str, Any]) -> Any:
        return functions[name](event)

    updates = LiveUpdates(
        template, live.streams, {"JobsTable": live.stream_arn}, invoke, Authorizer(key.jwks()).claims_of
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(updates.gateway))
    server.daemon_threads = True
    port = server.server_address[1]
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=connections_endpoint(port), region_name="us-east-1"
    )
    sender = ConnectionsApi(client)
    stream_deps = StreamDeps(live.connections, live.stream_deps.jobs, sender, clock=lambda: NOW)
    notifier_deps = NotifierDeps(live.connections, sender, clock=lambda: NOW)
    functions["StreamFn"] = lambda event: route(event, stream_deps)
    functions["NotifierFn"] = lambda event: notify(event, notifier_deps)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    updates.start(interval=0.01)
    latencies = []
    try:
        with connect(
            f"ws://127.0.0.1:{port}/v1/stream?token={issue_token(key, ALICE)}", open_timeout=5
        ) as ws:
            ws.send(json.dumps({"action": "subscribe", "jobIds": ["job-1"]}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            statuses = []
            for status, at in [
                ("QUEUED", "2026-11-22T07:00:00.000Z"),
                ("PROCESSING", "2026-11-22T07:00:01.000Z"),
                ("COMPLETED", "2026-11-22T07:00:02.000Z"),
            ]:
                extra = {"output_url": "https://cdn.example.com/1.mp4"} if status == "COMPLETED" else {}
                written = time.perf_counter()
                live.project(job_event("job-1", status, at, **extra))
                message = json.loads(ws.recv(timeout=5))
                latencies.append(time.perf_counter() - written)
                check_server_message(message)
                statuses.append(message["job"]["status"])
            assert statuses == ["QUEUED", "PROCESSING", "COMPLETED"]
    finally:
        updates.stop()
        server.shutdown()
        server.server_close()
    # Speed is bench/live.py's to measure; here every change arrived (recv's 5 s timeout is the bound).
    assert len(latencies) == 3


def test_records_given_up_on_go_to_the_mappings_on_failure_queue(tmp_path):
    from local.resources import QueueInfo
    from local.stack import LocalStack, StackConfig

    sent: list[dict[str, Any]] = []

    class Sqs:
        def send_message(self, **kwargs: Any) -> None:
            sent.append(kwargs)

    stack = LocalStack(StackConfig(port=0, data_dir=tmp_path))
    stack.resources.queues = {
        name: QueueInfo(name, name, f"http://sqs.local/{name}", f"arn:{name}", 30)
        for name in ("NotifierDLQ", "WebhookDispatchDLQ", "ProjectorQueue")
    }
    stack._clients = {"sqs": Sqs()}
    records = [
        {"eventSourceARN": "arn:stream", "dynamodb": {"SequenceNumber": "100"}},
        {"eventSourceARN": "arn:stream", "dynamodb": {"SequenceNumber": "101"}},
    ]
    stack._stream_records_failed("NotifierFn", records)
    assert [m["QueueUrl"] for m in sent] == ["http://sqs.local/NotifierDLQ"]
    assert json.loads(sent[0]["MessageBody"]) == {
        "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": "NotifierFn"},
        "DDBStreamBatchInfo": {
            "streamArn": "arn:stream",
            "startSequenceNumber": "100",
            "endSequenceNumber": "101",
            "batchSize": 2,
        },
    }
