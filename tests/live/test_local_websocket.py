"""The local WebSocket gateway with a real client (`websockets`), StreamFn and NotifierFn unchanged.

The HTTP server here is the hook the local stack's server needs: an upgrade on `/v1/stream` hands
its socket to `StreamGateway.serve_upgrade`, and `/@connections/...` goes to `answer_management`.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.auth import Authorizer, SigningKey, issue_token
from local.websocket import STREAM_PATH, StreamGateway, local_verify, route_key_of
from notifier.handler import NotifierDeps
from notifier.routes import StreamDeps
from notifier.routes import handle as route
from notifier.sender import ConnectionsApi
from tests.live.asyncapi import check_client_message, check_server_message
from tests.live.support import ALICE, BOB, NOW, job_event

pytestmark = pytest.mark.integration


def _handler(gateway: StreamGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            wants_upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
            if urllib.parse.urlsplit(self.path).path == STREAM_PATH and wants_upgrade:
                self.close_connection = True
                gateway.serve_upgrade(
                    self.path, self.headers.items(), self.connection, self.rfile, self.client_address[0]
                )
                return
            self._manage("GET")

        def do_POST(self) -> None:
            self._manage("POST")

        def do_DELETE(self) -> None:
            self._manage("DELETE")

        def _manage(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, data = gateway.answer_management(method, self.path, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class Stack:
    """The gateway on a loopback port, the route function and the notifier posting through it."""

    def __init__(self, live: Any, key: SigningKey) -> None:
        self.live = live
        self.key = key
        self.gateway = StreamGateway(
            route=lambda event: route(event, self.stream_deps),
            verify=local_verify(Authorizer(key.jwks()).claims_of),
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.gateway))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        client = boto3.client(
            "apigatewaymanagementapi", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1"
        )
        self.sender = ConnectionsApi(client)
        self.stream_deps = StreamDeps(live.connections, live.stream_deps.jobs, self.sender, clock=lambda: NOW)
        self.notifier_deps = NotifierDeps(live.connections, self.sender, clock=lambda: NOW)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def open(self, user: str = ALICE, token: str | None = None) -> ClientConnection:
        token = token if token is not None else issue_token(self.key, user)
        return connect(f"ws://127.0.0.1:{self.port}{STREAM_PATH}?token={token}", open_timeout=5)

    def close(self) -> None:
        self.gateway.close_all()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack(live: Any, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(live, SigningKey.load_or_create(tmp_path))
    try:
        yield running
    finally:
        running.close()


def exchange(ws: ClientConnection, message: dict[str, Any] | str, answers: int = 1) -> list[dict[str, Any]]:
    if isinstance(message, dict):
        check_client_message(message)
    ws.send(message if isinstance(message, str) else json.dumps(message))
    return [receive(ws) for _ in range(answers)]


def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=5))
    check_server_message(message)
    return message


def test_subscribe_then_every_change_through_the_local_connections_api(stack):
    stack.live.project(job_event("job-1"))
    with stack.open() as ws:
        current, subscribed = exchange(ws, {"action": "subscribe", "jobIds": ["job-1"]}, answers=2)
        assert (current["type"], current["job"]["status"]) == ("job", "QUEUED")
        assert subscribed == {"type": "subscribed", "jobIds": ["job-1"], "mine": False}
        stack.live.new_records()
        stack.live.project(job_event("job-1", "PROCESSING", "2026-11-22T07:01:00.000Z", progress=50))
        from notifier.handler import handle

        assert handle({"Records": stack.live.new_records()}, stack.notifier_deps) == {"batchItemFailures": []}
        change = receive(ws)
        assert (change["job"]["status"], change["job"]["progress"]) == ("PROCESSING", 50)


def test_bad_frames_get_errors_and_the_connection_keeps_working(stack):
    with stack.open() as ws:
        assert exchange(ws, "{nope")[0]["error"]["code"] == "INVALID_JSON"
        assert exchange(ws, '{"action": "dance"}')[0]["error"]["code"] == "UNKNOWN_ACTION"
        assert exchange(ws, {"action": "ping"}) == [{"type": "pong"}]


@pytest.mark.parametrize("token", ["", "not-a-jwt", "expired"])
def test_a_missing_bad_or_expired_token_is_refused_with_401(stack, token):
    if token == "expired":
        token = issue_token(stack.key, ALICE, seconds=1, now=NOW - 3600)
    with pytest.raises(InvalidStatus) as refused:
        stack.open(token=token)
    assert refused.value.response.status_code == 401
    assert stack.gateway.connection_ids == []


def test_a_closed_connection_is_gone_410_and_forgotten(stack):
    with stack.open(BOB) as ws:
        exchange(ws, {"action": "subscribe", "mine": True})
        (connection_id,) = stack.gateway.connection_ids
    # The client closed: $disconnect forgot it, and the management API answers 410 GoneException.
    # The socket closes before the $disconnect route has run: wait for both (10 s for a busy machine).
    for _ in range(500):
        if not stack.gateway.connection_ids and stack.live.connections.connection(connection_id) is None:
            break
        threading.Event().wait(0.02)
    assert stack.sender.post(connection_id, b'{"type":"pong"}') is False
    assert stack.live.connections.connection(connection_id) is None


def test_the_management_api_describes_and_deletes_a_connection(stack):
    with stack.open() as ws:
        (connection_id,) = stack.gateway.connection_ids
        status, _, body = stack.gateway.answer_management("GET", f"/@connections/{connection_id}", b"")
        assert status == 200 and set(json.loads(body)) == {"connectedAt", "lastActiveAt", "identity"}
        assert stack.gateway.answer_management("DELETE", f"/@connections/{connection_id}", b"")[0] == 204
        with pytest.raises(Exception, match="1000"):
            ws.recv(timeout=5)
    assert stack.gateway.answer_management("PATCH", "/nowhere", b"")[0] == 404


def test_route_selection_follows_the_action():
    keys = ("subscribe", "unsubscribe", "ping")
    assert route_key_of('{"action": "ping"}', keys) == "ping"
    assert route_key_of('{"action": "$connect"}', (*keys, "$connect")) == "$default"
    assert route_key_of('{"action": "dance"}', keys) == "$default"
    assert route_key_of("[]", keys) == "$default"
    assert route_key_of("nope", keys) == "$default"
