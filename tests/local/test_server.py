"""The local gateway: authorizer before any function, OPTIONS without auth, the page, local helpers."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.apigw import Route, gateway_responses_from_template, routes_from_template
from local.auth import Authorizer, SigningKey, issue_token
from local.server import DEV_USER, Gateway, HttpServer, LocalEndpoints
from ops.template import Template

pytestmark = pytest.mark.unit

ROUTES = [
    Route("GET", "/v1/jobs/{id}", "GetJobFn"),
    Route("POST", "/v1/jobs", "SubmitJobFn"),
    Route("OPTIONS", "/v1/jobs", "SubmitJobFn", authorized=False),
]


class Recorder:
    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer = (
            answer if answer is not None else {"statusCode": 200, "headers": {"ETag": '"v1"'}, "body": "{}"}
        )
        self.error = error

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.calls.append((function, event))
        if self.error:
            raise self.error
        return self.answer


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.load_or_create(tmp_path_factory.mktemp("key"))


def gateway(key: SigningKey, invoke: Recorder, switched: list[tuple[str, bool]] | None = None) -> Gateway:
    def switch(function: str, enabled: bool) -> bool:
        if switched is not None:
            switched.append((function, enabled))
        return function == "ProjectorFn"

    endpoints = LocalEndpoints(
        jwks=key.jwks,
        dev_token=lambda: issue_token(key, DEV_USER),
        describe=lambda: {"api": "x"},
        set_source_enabled=switch,
        kill_source=lambda function: (
            {"function": function, "enabled": False, "abandonedBatches": 1, "abandonedMessages": 3}
            if function == "ProjectorFn"
            else None
        ),
    )
    return Gateway(ROUTES, Authorizer(key.jwks()), invoke, endpoints)


def bearer(key: SigningKey, user: str = "alice", admin: bool = False) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {issue_token(key, user, admin=admin)}"), ("Host", "localhost")]


def test_no_or_bad_token_is_401_before_any_function_runs(key: SigningKey) -> None:
    invoke = Recorder()
    gw = gateway(key, invoke)
    for headers in ([], [("Authorization", "Bearer nonsense")]):
        answer = gw.handle("GET", "/v1/jobs/abc", headers, b"")
        assert answer.status == 401
        assert json.loads(answer.body) == {"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}}
    assert invoke.calls == []


def test_an_authorized_request_reaches_its_function_with_claims(key: SigningKey) -> None:
    invoke = Recorder()
    answer = gateway(key, invoke).handle("GET", "/v1/jobs/abc?x=1", bearer(key), b"")
    assert answer.status == 200 and ("ETag", '"v1"') in answer.headers
    ((function, event),) = invoke.calls
    assert function == "GetJobFn"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["requestContext"]["authorizer"]["claims"]["sub"] == "alice"


def test_options_passes_without_a_token(key: SigningKey) -> None:
    invoke = Recorder({"statusCode": 204})
    gw = gateway(key, invoke)
    assert gw.handle("OPTIONS", "/v1/jobs", [("Origin", "https://x")], b"").status == 204
    assert [f for f, _ in invoke.calls] == ["SubmitJobFn"]
    assert all(e["requestContext"]["authorizer"] is None for _, e in invoke.calls)
    # Changed on purpose (issue 10): a path with no OPTIONS method is API Gateway's "no such route",
    # as on AWS; it no longer falls through to the path's function (the template declares each preflight).
    assert gw.handle("OPTIONS", "/v1/jobs/abc", [], b"").status == 403
    assert len(invoke.calls) == 1


def test_unknown_routes_are_api_gateways_403(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    for method, path in [("GET", "/nope"), ("DELETE", "/v1/jobs/abc"), ("OPTIONS", "/nope")]:
        answer = gw.handle(method, path, bearer(key), b"")
        assert answer.status == 403
        assert json.loads(answer.body) == {
            "error": {"code": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"}
        }


def test_a_raising_function_is_a_502(key: SigningKey) -> None:
    answer = gateway(key, Recorder(error=RuntimeError("boom"))).handle("POST", "/v1/jobs", bearer(key), b"{}")
    assert answer.status == 502


def test_the_status_page_and_its_files_are_served(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    page = gw.handle("GET", "/", [], b"")
    assert page.status == 200 and b"/static/app.js" in page.body
    assert ("Content-Type", "text/html; charset=utf-8") in page.headers
    script = gw.handle("GET", "/static/app.js", [], b"")
    assert script.status == 200 and b"If-None-Match" in script.body
    for path in ("/static/missing.js", "/static/../cli.py", "/static/.hidden", "/static/"):
        assert gw.handle("GET", path, [], b"").status == 404
    assert gw.handle("POST", "/", [], b"").status == 405


LOCALHOST = [("Host", "127.0.0.1:3000")]


def test_local_helpers(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    token = json.loads(gw.handle("GET", "/local/dev-token", LOCALHOST, b"").body)
    assert token["user"] == DEV_USER
    assert Authorizer(key.jwks()).claims_of(token["token"])["sub"] == DEV_USER
    assert json.loads(gw.handle("GET", "/local/jwks.json", LOCALHOST, b"").body) == key.jwks()
    assert json.loads(gw.handle("GET", "/local/stack", LOCALHOST, b"").body) == {"api": "x"}
    assert gw.handle("GET", "/local/other", LOCALHOST, b"").status == 404


def test_switching_an_event_source_needs_an_admin(key: SigningKey) -> None:
    switched: list[tuple[str, bool]] = []
    gw = gateway(key, Recorder(), switched)
    assert gw.handle("POST", "/local/functions/ProjectorFn/disable", LOCALHOST, b"").status == 401
    assert gw.handle("POST", "/local/functions/ProjectorFn/disable", bearer(key), b"").status == 403
    admin = bearer(key, "root", admin=True)
    answer = gw.handle("POST", "/local/functions/ProjectorFn/disable", admin, b"")
    assert answer.status == 200 and json.loads(answer.body) == {"function": "ProjectorFn", "enabled": False}
    assert gw.handle("POST", "/local/functions/ProjectorFn/enable", admin, b"").status == 200
    assert gw.handle("POST", "/local/functions/GetJobFn/enable", admin, b"").status == 404
    assert gw.handle("POST", "/local/functions/ProjectorFn/explode", admin, b"").status == 404
    assert switched == [("ProjectorFn", False), ("ProjectorFn", True), ("GetJobFn", True)]


def test_killing_an_event_source_needs_an_admin_and_says_what_it_abandoned(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    assert gw.handle("POST", "/local/functions/ProjectorFn/kill", LOCALHOST, b"").status == 401
    assert gw.handle("POST", "/local/functions/ProjectorFn/kill", bearer(key), b"").status == 403
    admin = bearer(key, "root", admin=True)
    answer = gw.handle("POST", "/local/functions/ProjectorFn/kill", admin, b"")
    assert answer.status == 200
    assert json.loads(answer.body)["abandonedMessages"] == 3
    assert gw.handle("POST", "/local/functions/GetJobFn/kill", admin, b"").status == 404


def test_the_http_server_serves_the_gateway_over_a_socket(key: SigningKey) -> None:
    invoke = Recorder({"statusCode": 304, "headers": {"ETag": '"v1"'}, "body": "ignored"})
    server = HttpServer(gateway(key, invoke), port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url) as client:
            answer = client.get(
                "/v1/jobs/abc", headers={"Authorization": bearer(key)[0][1], "If-None-Match": '"v1"'}
            )
            assert answer.status_code == 304 and answer.content == b""
            assert answer.headers["ETag"] == '"v1"'
            posted = client.post("/v1/jobs", headers={"Authorization": bearer(key)[0][1]}, json={"a": 1})
            assert posted.status_code == 304
            assert json.loads(invoke.calls[-1][1]["body"]) == {"a": 1}
            assert client.head("/").status_code == 200
    finally:
        server.stop()


def test_a_body_over_api_gateways_limit_is_413(key: SigningKey) -> None:
    server = HttpServer(gateway(key, Recorder()), port=0)
    server.start()
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 413")
    finally:
        server.stop()


def test_a_function_past_its_timeout_is_api_gateways_504(key: SigningKey) -> None:
    from local.functions import FunctionTimeout

    answer = gateway(key, Recorder(error=FunctionTimeout("GetJobFn timed out"))).handle(
        "GET", "/v1/jobs/abc", bearer(key), b""
    )
    assert answer.status == 504
    assert json.loads(answer.body) == {
        "error": {"code": "INTEGRATION_TIMEOUT", "message": "Endpoint request timed out"}
    }


# --- the front door: Content-Length, clients that leave, Host of the local helpers ----------------


@pytest.fixture
def served(key: SigningKey) -> Iterator[tuple[HttpServer, Recorder]]:
    invoke = Recorder()
    server = HttpServer(gateway(key, invoke), port=0)
    server.start()
    try:
        yield server, invoke
    finally:
        server.stop()


def address(server: HttpServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(server: HttpServer, request: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes; everything the server answers until it closes (or `wait` s pass)."""
    with socket.create_connection(address(server), timeout=wait) as raw:
        raw.sendall(request)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
        return answer


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "length",
    ["-1", "abc", "1e3", "+5", " ", "0x10", "99999999999999999999999", "5, 6", str(20 * 1024 * 1024)],
)
def test_a_bad_content_length_is_answered_at_once_and_the_connection_closed(
    served: tuple[HttpServer, Recorder], length: str
) -> None:
    server, invoke = served
    started = time.monotonic()
    # The body is never sent: the answer must not wait for it (recv returns once the server closes).
    answer = exchange(
        server, f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    assert time.monotonic() - started < 2.0
    status, headers, body = parse(answer)
    too_large = length == str(20 * 1024 * 1024)
    assert status == (413 if too_large else 400)
    code = json.loads(body)["error"]["code"]
    assert code == ("REQUEST_TOO_LARGE" if too_large else "BAD_REQUEST_BODY")
    assert headers["connection"] == "close"
    assert invoke.calls == []


def test_two_different_content_lengths_are_400(served: tuple[HttpServer, Recorder]) -> None:
    server, invoke = served
    answer = exchange(
        server, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    )
    assert parse(answer)[0] == 400
    assert invoke.calls == []


def test_a_chunked_body_is_refused_not_taken_for_the_next_request(
    served: tuple[HttpServer, Recorder],
) -> None:
    server, invoke = served
    smuggled = b"GET /local/dev-token HTTP/1.1\r\nHost: localhost\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    answer = exchange(
        server, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk
    )
    status, headers, body = parse(answer)
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "BAD_REQUEST_BODY"
    assert answer.count(b"HTTP/1.1 ") == 1  # the chunk was never served as a request
    assert invoke.calls == []


def test_the_server_keeps_serving_after_bad_requests(served: tuple[HttpServer, Recorder]) -> None:
    server, _ = served
    for length in ("-1", "nope"):
        exchange(server, f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    connection = http.client.HTTPConnection(*address(server), timeout=5)
    connection.request("GET", "/static/app.js")
    assert connection.getresponse().status == 200
    connection.close()


def _quiet(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "local.server" and "ended early" in r.getMessage()]


def test_a_client_that_leaves_early_is_one_quiet_line(
    key: SigningKey, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given an answer far larger than the socket buffers
    big = {"statusCode": 200, "body": "x" * (8 * 1024 * 1024)}
    server = HttpServer(gateway(key, Recorder(big)), port=0)
    server.start()
    caplog.set_level(logging.INFO, logger="local.server")
    try:
        # When the client asks and resets the connection without reading it
        raw = socket.create_connection(address(server))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.sendall(b"GET /v1/jobs/abc HTTP/1.1\r\nHost: x\r\n" + bearer_header(key) + b"\r\n")
        time.sleep(0.2)
        raw.close()
        deadline = time.monotonic() + 5
        while not _quiet(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    # Then one quiet line says so, and no traceback is printed or logged
    (line,) = _quiet(caplog)
    assert line.levelno == logging.INFO
    assert line.exc_info is None
    assert all(record.exc_info is None for record in caplog.records)
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_leaves_mid_body_is_not_served(
    served: tuple[HttpServer, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    server, invoke = served
    caplog.set_level(logging.INFO, logger="local.server")
    with socket.create_connection(address(server), timeout=5) as raw:
        # Given a request promising 100 bytes of body, of which the client sends 2 and stops sending
        raw.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        raw.shutdown(socket.SHUT_WR)
        # Then the server answers nothing, closes, and no function ran on half a body
        assert raw.recv(65536) == b""
    assert invoke.calls == []
    assert any("before sending its whole body" in r.getMessage() for r in caplog.records)


def bearer_header(key: SigningKey) -> bytes:
    return f"Authorization: Bearer {issue_token(key, 'alice')}\r\n".encode()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost",
        "localhost:{port}",
        "LOCALHOST:{port}",
        "[::1]",
        "[::1]:{port}",
    ],
)
def test_local_helpers_answer_for_a_loopback_host(served: tuple[HttpServer, Recorder], host: str) -> None:
    server, _ = served
    _, port = address(server)
    connection = http.client.HTTPConnection(*address(server), timeout=5)
    connection.putrequest("GET", "/local/dev-token", skip_host=True)
    connection.putheader("Host", host.format(port=port))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["user"] == DEV_USER
    connection.close()


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:{port}",
        "127.0.0.1.evil.example",
        "localhost.evil.example:{port}",
        "127.0.0.2:{port}",
        "[::1]x",
        "localhost:port",
        "0.0.0.0:{port}",
        "",
    ],
)
def test_local_helpers_refuse_any_other_host(served: tuple[HttpServer, Recorder], host: str) -> None:
    server, _ = served
    _, port = address(server)
    answer = exchange(
        server,
        f"GET /local/dev-token HTTP/1.1\r\nHost: {host.format(port=port)}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    status, _, body = parse(answer)
    assert status == 403
    assert json.loads(body)["error"]["code"] == "FORBIDDEN"
    assert b"token" not in body


def test_local_helpers_refuse_a_missing_or_repeated_host(served: tuple[HttpServer, Recorder]) -> None:
    server, _ = served
    for request in (
        b"GET /local/dev-token HTTP/1.0\r\n\r\n",
        b"GET /local/dev-token HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
        b"Connection: close\r\n\r\n",
    ):
        status, _, body = parse(exchange(server, request))
        assert status == 403, request
        assert b"token" not in body


def test_the_gateway_of_the_template_answers_preflights_and_errors_as_api_gateway(
    key: SigningKey, local_template: Template
) -> None:
    # Given the gateway the local stack builds: routes and gateway responses from template.yaml
    invoke = Recorder()
    endpoints = LocalEndpoints(
        jwks=key.jwks,
        dev_token=lambda: "",
        describe=dict,
        set_source_enabled=lambda f, e: False,
        kill_source=lambda f: None,
    )
    gw = Gateway(
        routes_from_template(local_template),
        Authorizer(key.jwks()),
        invoke,
        endpoints,
        gateway_responses_from_template(local_template),
    )
    origin = [("Origin", "https://admin.deepfoundai.com")]
    # A preflight is the MOCK: 204 with CORS for the allowed origin, and no function runs
    preflight = gw.handle("OPTIONS", "/v1/jobs/abc", origin, b"")
    assert preflight.status == 204
    assert ("Access-Control-Allow-Origin", "https://admin.deepfoundai.com") in preflight.headers
    # No token: 401 with the one error body and the CORS header
    refused = gw.handle("GET", "/v1/jobs/abc", origin, b"")
    assert refused.status == 401
    assert json.loads(refused.body) == {"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}}
    assert ("Access-Control-Allow-Origin", "https://admin.deepfoundai.com") in refused.headers
    # No such route: 404 NOT_FOUND
    missing = gw.handle("DELETE", "/v1/jobs/abc", origin, b"")
    assert (missing.status, json.loads(missing.body)["error"]["code"]) == (404, "NOT_FOUND")
    assert invoke.calls == []
    # A function that raises: 502 with the one body
    failing = Gateway(
        routes_from_template(local_template),
        Authorizer(key.jwks()),
        Recorder(error=RuntimeError("boom")),
        endpoints,
        gateway_responses_from_template(local_template),
    ).handle("GET", "/v1/jobs/abc", origin + bearer(key), b"")
    assert failing.status == 502
    assert json.loads(failing.body)["error"] == {
        "code": "INTEGRATION_FAILURE",
        "message": "Internal server error",
    }
