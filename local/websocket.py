"""The local WebSocket gateway (DESIGN §4b): `ws://127.0.0.1:PORT/v1/stream?token=JWT`, as API Gateway.

Frames are parsed by `websockets`' sans-I/O `ServerProtocol` (no hand-rolled framing). The upgrade
is refused with 401 unless the token passes the same check as the REST routes; each connection then
drives the route function with API Gateway WebSocket proxy events (`$connect` with the authorizer's
context, a route chosen by `$request.body.action` else `$default`, `$disconnect`). The local
`@connections` management API (`POST`, `GET`, `DELETE /@connections/{id}`) lets StreamFn and
NotifierFn post through botocore's `apigatewaymanagementapi` client unchanged; a connection that is
gone answers 410 `GoneException`.

The HTTP server hands over two things (see `serve_upgrade` and `answer_management`): an upgrade
request on the stream path, with its socket, and any request under `/@connections/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger("jobstatus.local.websocket")

STREAM_PATH: Final = "/v1/stream"
MAX_MESSAGE_BYTES: Final = 128 * 1024  # API Gateway's WebSocket message limit
RECV_BYTES: Final = 65536
MANAGEMENT_PATH: Final = re.compile(r"^(?:/[^/@]+)*/@connections/([^/?]+)/?(?:\?.*)?$")

# route event -> the route function's answer (`{"statusCode": ...}`)
RouteFn = Callable[[dict[str, Any]], Any]
# the `token` query parameter -> the authorizer's context (`{"userId", "admin"}`), or None to refuse
Verify = Callable[[str | None], dict[str, str] | None]


def _now_iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Connection:
    connection_id: str
    protocol: ServerProtocol
    sock: socket.socket
    context: dict[str, str]
    source_ip: str
    user_agent: str
    connected_at: float
    last_active_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    def flush(self) -> None:
        """Write what the protocol has queued (an empty chunk: half-close the socket)."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

    def send_text(self, text: str) -> bool:
        """Send one text frame; False when the connection is no longer open."""
        with self.lock:
            if self.protocol.state is not State.OPEN:
                return False
            self.protocol.send_text(text.encode())
            try:
                self.flush()
            except OSError:
                return False
            return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        with self.lock:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code, reason)
                with contextlib.suppress(OSError):
                    self.flush()


def route_key_of(body: str, route_keys: Iterable[str]) -> str:
    """The route `$request.body.action` selects: the action when it names a route, else `$default`."""
    try:
        data = json.loads(body)
    except ValueError:
        return "$default"
    action = data.get("action") if isinstance(data, dict) else None
    return (
        action
        if isinstance(action, str) and action in set(route_keys) - {"$connect", "$disconnect"}
        else "$default"
    )


class StreamGateway:
    """The local WebSocket API: connections, their route events, and the `@connections` API."""

    def __init__(
        self,
        route: RouteFn,
        verify: Verify,
        route_keys: Iterable[str] = ("subscribe", "unsubscribe", "ping"),
        stage: str = "local",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._route = route
        self._verify = verify
        self._route_keys = tuple(route_keys)
        self._stage = stage
        self._clock = clock
        self._connections: dict[str, _Connection] = {}
        self._lock = threading.Lock()

    @property
    def connection_ids(self) -> list[str]:
        """The ids of the open connections."""
        with self._lock:
            return list(self._connections)

    def _event(self, route: str, connection: _Connection, body: str | None = None) -> dict[str, Any]:
        context = {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection.connection_id,
            "connectedAt": int(connection.connected_at * 1000),
            "requestTimeEpoch": int(self._clock() * 1000),
            "requestId": secrets.token_hex(8),
            "messageDirection": "IN",
            "stage": self._stage,
            "domainName": "127.0.0.1",
            "apiId": "local",
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "authorizer": {**connection.context, "principalId": connection.context.get("userId", "")},
        }
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if body is not None:
            event["body"] = body
        return event

    def _invoke(self, event: dict[str, Any]) -> int:
        try:
            answer = self._route(event)
        except Exception:
            log.exception("route function failed on %s", event["requestContext"]["routeKey"])
            return 500
        status = answer.get("statusCode", 200) if isinstance(answer, Mapping) else 200
        return int(status)

    def serve_upgrade(
        self,
        path: str,
        headers: Iterable[tuple[str, str]],
        sock: socket.socket,
        rfile: io.BufferedIOBase,
        source_ip: str = "127.0.0.1",
    ) -> None:
        """Run one WebSocket connection to its end, from the upgrade request the HTTP server read.

        `rfile` is the server's buffered reader of `sock` (it may already hold the first frames).
        """
        protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES)
        # The HTTP server has read the request already: hand it to the protocol as it came, so its
        # parser moves on to frames (the sans-I/O protocol reads the handshake itself).
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers)
        protocol.receive_data((head + "\r\n").encode("latin-1"))
        received = protocol.events_received()
        request = received[0] if received and isinstance(received[0], Request) else None
        if request is None:  # pragma: no cover - the server only hands over what it parsed as HTTP
            connection_failed = protocol.reject(400, "Bad upgrade request")
            protocol.send_response(connection_failed)
            for chunk in protocol.data_to_send():
                sock.sendall(chunk)
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        tokens = query.get("token") or []
        token = tokens[0] if tokens else None
        context = self._verify(token)
        now = self._clock()
        connection = _Connection(
            connection_id=secrets.token_urlsafe(12),
            protocol=protocol,
            sock=sock,
            context=context or {},
            source_ip=source_ip,
            user_agent=request.headers.get("User-Agent", ""),
            connected_at=now,
            last_active_at=now,
        )
        if context is None:
            self._refuse(connection, request, 401, "Unauthorized")
            return
        response = protocol.accept(request)
        if response.status_code != 101:  # not a valid WebSocket upgrade
            protocol.send_response(response)
            connection.flush()
            return
        status = self._invoke(self._event("$connect", connection))
        if status >= 300:
            self._refuse(connection, request, 403 if status < 400 else status, "Forbidden")
            return
        with self._lock:
            self._connections[connection.connection_id] = connection
        with connection.lock:
            protocol.send_response(response)
            connection.flush()
        log.info("stream connection %s opened for %s", connection.connection_id, context.get("userId"))
        try:
            self._read_frames(connection, rfile)
        finally:
            with self._lock:
                self._connections.pop(connection.connection_id, None)
            self._invoke(self._event("$disconnect", connection))
            log.info("stream connection %s closed", connection.connection_id)

    def _refuse(self, connection: _Connection, request: Request, status: int, text: str) -> None:
        response = connection.protocol.reject(status, json.dumps({"message": text}))
        connection.protocol.send_response(response)
        connection.flush()

    def _read_frames(self, connection: _Connection, rfile: io.BufferedIOBase) -> None:
        protocol = connection.protocol
        parts: list[bytes] = []
        while True:
            try:
                data = rfile.read1(RECV_BYTES)

            except OSError:
                data = b""
            with connection.lock:
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events = protocol.events_received()
                try:
                    connection.flush()  # pongs, close answers, protocol errors
                except OSError:
                    return
            for event in events:
                if not isinstance(event, Frame):
                    continue
                if event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    parts.append(bytes(event.data))
                    if event.fin:
                        body = b"".join(parts).decode(errors="replace")
                        parts.clear()
                        connection.last_active_at = self._clock()
                        route = route_key_of(body, self._route_keys)
                        self._invoke(self._event(route, connection, body))
            if not data or protocol.state is State.CLOSED:
                return

    def answer_management(  # noqa: PLR0911 - one answer per API Gateway outcome
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer a request of the `@connections` API: status, headers and body."""
        found = MANAGEMENT_PATH.match(path)
        if found is None:
            return _error(404, "NotFoundException", "No such management path")
        connection_id = urllib.parse.unquote(found.group(1))
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None:
            return _error(410, "GoneException", f"Connection {connection_id} is gone")
        if method == "POST":
            if len(body) > MAX_MESSAGE_BYTES:
                return _error(413, "PayloadTooLargeException", "Message too large")
            if not connection.send_text(body.decode(errors="replace")):
                return _error(410, "GoneException", f"Connection {connection_id} is gone")
            return 200, {"Content-Type": "application/json"}, b"{}"
        if method == "GET":
            answer = {
                "connectedAt": _now_iso(connection.connected_at),
                "lastActiveAt": _now_iso(connection.last_active_at),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        if method == "DELETE":
            connection.close(1000, "closed by the server")
            return 204, {}, b""
        return _error(405, "MethodNotAllowedException", f"{method} is not allowed")

    def close_all(self) -> None:
        """Close every open connection (the stack is stopping)."""
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close(1001, "going away")


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind}
    return status, headers, json.dumps({"message": message}).encode()


def local_verify(claims_of: Callable[[str | None], Mapping[str, str]], admin_group: str = "admin") -> Verify:
    """A `Verify` from the REST routes' token check (`local.auth.Authorizer.claims_of`)."""

    def verify(token: str | None) -> dict[str, str] | None:
        if not token:
            return None
        try:
            claims = claims_of(f"Bearer {token}")
        except Exception as error:
            log.info("stream connect refused: %s", error)
            return None
        groups = {
            g.strip() for g in str(claims.get("cognito:groups", "")).strip("[]").replace(",", " ").split()
        }
        return {"userId": str(claims["sub"]), "admin": "true" if admin_group in groups else "false"}

    return verify
