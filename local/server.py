"""The local HTTP front door: API Gateway (routes, Cognito-like authorizer, proxy events) and the status page.

Served with the standard library's `ThreadingHTTPServer` on 127.0.0.1 only. Besides the API routes
of the template it serves the status page (`/`, `/static/...`) and a few local-only helpers under
`/local/`: the JWKS, a token for the dev user (so the page can call the API without a login), the
stack description, switching a function's SQS event source off and on, and killing its pollers
abruptly (admin token needed). Those answer only requests whose `Host` is the loopback
(`127.0.0.1`, `localhost`, `[::1]`, any port), so a page of another site that a DNS-rebinding
attack points at 127.0.0.1 cannot read them.

Every error answer carries `{"error": {"code", "message"}}`: the gateway's own through the
template's gateway responses (with their CORS header for an allowed Origin), the rest directly.
With live updates on, a WebSocket upgrade on `/v1/stream` and the local `@connections` API (loopback
`Host` only) go to `local.websocket.StreamGateway`. A request whose `Content-Length` is not a
number, negative or over the limit is answered at once and its connection closed;
a client that leaves early is one quiet log line.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final

from local.apigw import (
    GatewayResponses,
    ProxyResponse,
    RequestData,
    Route,
    find_route,
    proxy_event,
)
from local.auth import ADMIN_GROUP, Authorizer, Unauthorized
from local.functions import FunctionTimeout
from local.websocket import STREAM_PATH, StreamGateway

log = logging.getLogger(__name__)

DEV_USER: Final = "dev"
MAX_BODY_BYTES: Final = 10 * 1024 * 1024  # API Gateway's payload limit
# Seconds a connection may stay silent (mid-request or idle between requests) before it is closed.
SOCKET_TIMEOUT_SECONDS: Final = 30
WEBSOCKET_IDLE_SECONDS: Final = 600  # API Gateway closes an idle WebSocket connection after 10 min
_LOOPBACK_HOST = re.compile(r"^(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?$", re.IGNORECASE)
_DIGITS = re.compile(r"^[0-9]{1,20}$")


def is_loopback_host(host: str | None) -> bool:
    """Whether a `Host` header names the loopback: 127.0.0.1, localhost or [::1], with or without a port."""
    return host is not None and _LOOPBACK_HOST.fullmatch(host.strip()) is not None


class BadContentLength(ValueError):
    """A `Content-Length` that is no single non-negative decimal number."""


def content_length(values: Sequence[str]) -> int:
    """The body length the `Content-Length` header(s) give (0 without one); else BadContentLength."""
    distinct = {value.strip() for value in values}
    if not distinct:
        return 0
    if len(distinct) > 1:
        raise BadContentLength("Content-Length given twice with different values")
    (text,) = distinct
    if not _DIGITS.fullmatch(text):
        raise BadContentLength(f"Content-Length must be a non-negative integer, got {text[:40]!r}")
    return int(text)


@dataclass
class LocalEndpoints:
    """What the local-only helpers under `/local/` need from the stack."""

    jwks: Callable[[], dict[str, Any]]
    dev_token: Callable[[], str]
    describe: Callable[[], dict[str, Any]]
    set_source_enabled: Callable[[str, bool], bool]  # function logical id, enabled -> known?
    kill_source: Callable[[str], dict[str, Any] | None]  # function logical id -> what was abandoned


class Gateway:
    """Turns HTTP requests into answers: local helpers, static files, or an authorized proxy call."""

    def __init__(
        self,
        routes: Sequence[Route],
        authorizer: Authorizer,
        invoke: Callable[[str, dict[str, Any]], Any],
        endpoints: LocalEndpoints,
        responses: GatewayResponses | None = None,
    ):
        self.routes = list(routes)
        self.authorizer = authorizer
        self.invoke = invoke
        self.endpoints = endpoints
        # The template's gateway responses; without them the gateway's errors still have the one body.
        self.responses = responses or GatewayResponses()

    def gateway_error(
        self, kind: str, message: str, request: Request, status: int | None = None
    ) -> ProxyResponse:
        """API Gateway's own answer of response type `kind`, as the template's gateway responses say."""
        return self.responses.answer(kind, message, request.data(), status)

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client_ip: str = "127.0.0.1",
    ) -> ProxyResponse:
        """One request, start to end."""
        parsed = urllib.parse.urlsplit(target)
        request = Request(
            method.upper(), urllib.parse.unquote(parsed.path) or "/", parsed.query, headers, body, client_ip
        )
        if request.path == "/" or request.path.startswith("/static/"):
            return self._static(request)
        if request.path.startswith("/local/"):
            return self._local(request)
        return self._api(request)

    # --- API Gateway -------------------------------------------------------------------------

    def _api(self, request: Request) -> ProxyResponse:
        method, path = request.method, request.path
        found = find_route(self.routes, method, path)
        if found is None:
            # API Gateway's answer for a method or path it does not have (the template maps it).
            return self.gateway_error("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token", request)
        route, parameters = found
        if route.mock is not None:
            # A MOCK integration (the CORS preflights): no authorizer, no function, the template's VTL.
            return route.mock.answer(request.data(parameters))
        claims = None
        if route.authorized:
            try:
                claims = self.authorizer.claims_of(request.header("Authorization"))
            except Unauthorized as refused:
                log.info("401 %s %s: %s", method, path, refused)
                return self.gateway_error("UNAUTHORIZED", "Unauthorized", request)
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(request.query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        event = proxy_event(
            route=route,
            method=method,
            path=path,
            path_parameters=parameters,
            headers=multi_headers,
            query=multi_query,
            body=request.body,
            claims=claims,
            source_ip=request.client_ip,
        )
        return self._invoke(route, request, event)

    def _invoke(self, route: Route, request: Request, event: dict[str, Any]) -> ProxyResponse:
        method, path = request.method, request.path
        try:
            result = self.invoke(route.function, event)
        except FunctionTimeout:
            log.warning("%s timed out on %s %s", route.function, method, path)
            return self.gateway_error("INTEGRATION_TIMEOUT", "Endpoint request timed out", request)
        except Exception:
            log.exception("%s raised on %s %s", route.function, method, path)
            return self.gateway_error("INTEGRATION_FAILURE", "Internal server error", request, 502)
        if not ProxyResponse.is_proxy_answer(result):
            log.warning("%s gave no proxy answer on %s %s", route.function, method, path)
            return self.gateway_error("INTEGRATION_FAILURE", "Internal server error", request, 502)
        return ProxyResponse.parse(result)

    # --- status page -------------------------------------------------------------------------

    def _static(self, request: Request) -> ProxyResponse:
        path = request.path
        if request.method not in {"GET", "HEAD"}:
            return ProxyResponse.error(405, "Method not allowed")
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        if not name or "/" in name or name.startswith("."):
            return ProxyResponse.error(404, "Not found")
        resource = resources.files("local") / "static" / name
        if not resource.is_file():
            return ProxyResponse.error(404, "Not found")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return ProxyResponse(
            200,
            [("Content-Type", f"{kind}; charset=utf-8"), ("Cache-Control", "no-cache")],
            resource.read_bytes(),
        )

    # --- local-only helpers ------------------------------------------------------------------

    def _local(self, request: Request) -> ProxyResponse:
        host = request.header("Host")
        if len([v for k, v in request.headers if k.lower() == "host"]) != 1 or not is_loopback_host(host):
            log.warning(
                "refused %s %s for Host %r: local helpers answer only on the loopback",
                request.method,
                request.path,
                host,
            )
            return ProxyResponse.error(
                403, "Local helpers answer only for Host 127.0.0.1, localhost or [::1]"
            )
        if request.method == "GET":
            answers: dict[str, Callable[[], Any]] = {
                "/local/jwks.json": self.endpoints.jwks,
                # Local only: hands the status page a token for the dev user, so it needs no login.
                "/local/dev-token": lambda: {"user": DEV_USER, "token": self.endpoints.dev_token()},
                "/local/stack": self.endpoints.describe,
            }
            if answer := answers.get(request.path):
                return _json(200, answer())
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and len(parts) == 4 and parts[1] == "functions":
            return self._switch_source(request, parts[2], parts[3])
        return ProxyResponse.error(404, "Not found")

    def _switch_source(self, request: Request, function: str, action: str) -> ProxyResponse:
        """`POST /local/functions/<Fn>/disable|enable|kill`: an admin switches an SQS event source.

        `disable` stops its pollers gracefully; `kill` stops them abruptly, abandoning the batches
        in hand as a dying Lambda container does.
        """
        if action not in {"enable", "disable", "kill"}:
            return ProxyResponse.error(404, "Not found")
        try:
            claims = self.authorizer.claims_of(request.header("Authorization"))
        except Unauthorized:
            return ProxyResponse.error(401, "Unauthorized")
        if ADMIN_GROUP not in claims.get("cognito:groups", "").split(","):
            return ProxyResponse.error(403, "admin group needed")
        if action == "kill":
            answer = self.endpoints.kill_source(function)
        else:
            enabled = action == "enable"
            known = self.endpoints.set_source_enabled(function, enabled)
            answer = {"function": function, "enabled": enabled} if known else None
        if answer is None:
            return ProxyResponse.error(404, f"no SQS-fed function {function}")
        return _json(200, answer)


@dataclass(frozen=True)
class Request:
    """An HTTP request as the gateway sees it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def data(self, path_parameters: dict[str, str] | None = None) -> RequestData:
        """What a mapping template may read of this request."""
        query = dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))
        return RequestData(self.headers, query, path_parameters or {})


def _json(status: int, value: Any) -> ProxyResponse:
    body = json.dumps(value, indent=1).encode()
    return ProxyResponse(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_SECONDS  # a client that stops sending mid-body holds no thread for long

    def _serve(self) -> None:
        if self.server.stream is not None and self._serve_stream(self.server.stream):
            return
        gateway = self.server.gateway
        headers = list(self.headers.items())
        request = Request(self.command, self.path, "", headers, b"", self.client_address[0])
        try:
            if self.headers.get("Transfer-Encoding"):
                # Not read here: its chunks would be taken for the next request on this connection.
                raise BadContentLength("Transfer-Encoding is not accepted: send Content-Length")
            length = content_length(self.headers.get_all("Content-Length") or [])
        except BadContentLength as bad:
            log.info("400 %s %s: %s", self.command, self.path, bad)
            answer = gateway.gateway_error("BAD_REQUEST_BODY", str(bad), request, 400)
            self.close_connection = True  # where the body ends is unknown: no next request here
        else:
            if length > MAX_BODY_BYTES:
                answer = gateway.gateway_error("REQUEST_TOO_LARGE", "Request Too Long", request)
                self.close_connection = True  # the unread body must not be taken for the next request
            else:
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    log.info("%s: client left before sending its whole body", self.client_address[0])
                    self.close_connection = True
                    return
                answer = gateway.handle(self.command, self.path, headers, body, self.client_address[0])
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        payload = b"" if self.command == "HEAD" or answer.status in {204, 304} else answer.body
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _serve_stream(self, stream: StreamGateway) -> bool:
        """The live-update hooks: a WebSocket upgrade on `/v1/stream`, the local `@connections` API."""
        path = urllib.parse.urlsplit(self.path).path
        if path == STREAM_PATH and self.headers.get("Upgrade", "").lower() == "websocket":
            if self.command != "GET":
                return False
            self.close_connection = True  # the socket belongs to the WebSocket connection from now on
            self.connection.settimeout(WEBSOCKET_IDLE_SECONDS)
            stream.serve_upgrade(
                self.path, self.headers.items(), self.connection, self.rfile, self.client_address[0]
            )
            return True
        if "/@connections/" not in path:
            return False
        try:
            length = content_length(self.headers.get_all("Content-Length") or [])
        except BadContentLength:
            length = -1
        if not is_loopback_host(self.headers.get("Host")) or not 0 <= length <= MAX_BODY_BYTES:
            # Only the local functions call it (botocore, Host 127.0.0.1:PORT), never a web page.
            status, answer_headers, body = (
                403,
                {"Content-Type": "application/json"},
                b'{"message": "Forbidden"}',
            )
            self.close_connection = True
        else:
            data = self.rfile.read(length) if length else b""
            status, answer_headers, body = stream.answer_management(self.command, self.path, data)
        self.send_response(status)
        for name, value in answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        return True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many WebSocket clients may connect at once (the default backlog is 5)
    gateway: Gateway
    stream: StreamGateway | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (or went silent) is one quiet line; anything else is logged in full."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.info("%s: client connection ended early (%s)", client_address[0], type(error).__name__)
            return
        log.exception("error serving %s", client_address[0])


class HttpServer:
    """The gateway served on 127.0.0.1:`port` from a background thread."""

    def __init__(self, gateway: Gateway, port: int, host: str = "127.0.0.1"):
        self._server = _Server((host, port), _RequestHandler)
        self._server.gateway = gateway
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served (the one the OS chose when asked for 0)."""
        return int(self._server.server_address[1])

    def serve_stream(self, stream: StreamGateway) -> None:
        """Serve live updates too: WebSocket upgrades on `/v1/stream` and the `@connections` API."""
        self._server.stream = stream

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:3000`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
