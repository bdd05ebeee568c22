"""The local gateway: authorizer before any function, OPTIONS without auth, the page, local helpers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from local.apigw import Route
from local.auth import Authorizer, SigningKey, issue_token
from local.server import DEV_USER, Gateway, HttpServer, LocalEndpoints

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
    return [("Authorization", f"Bearer {issue_token(key, user, admin=admin)}")]


def test_no_or_bad_token_is_401_before_any_function_runs(key: SigningKey) -> None:
    invoke = Recorder()
    gw = gateway(key, invoke)
    for headers in ([], [("Authorization", "Bearer nonsense")]):
        answer = gw.handle("GET", "/v1/jobs/abc", headers, b"")
        assert answer.status == 401
        assert json.loads(answer.body) == {"message": "Unauthorized"}
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
    # A path with no OPTIONS method goes to the path's function, still without the authorizer.
    assert gw.handle("OPTIONS", "/v1/jobs/abc", [], b"").status == 204
    assert [f for f, _ in invoke.calls] == ["SubmitJobFn", "GetJobFn"]
    assert all(e["requestContext"]["authorizer"] is None for _, e in invoke.calls)


def test_unknown_routes_are_api_gateways_403(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    for method, path in [("GET", "/nope"), ("DELETE", "/v1/jobs/abc"), ("OPTIONS", "/nope")]:
        answer = gw.handle(method, path, bearer(key), b"")
        assert answer.status == 403
        assert json.loads(answer.body) == {"message": "Missing Authentication Token"}


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


def test_local_helpers(key: SigningKey) -> None:
    gw = gateway(key, Recorder())
    token = json.loads(gw.handle("GET", "/local/dev-token", [], b"").body)
    assert token["user"] == DEV_USER
    assert Authorizer(key.jwks()).claims_of(token["token"])["sub"] == DEV_USER
    assert json.loads(gw.handle("GET", "/local/jwks.json", [], b"").body) == key.jwks()
    assert json.loads(gw.handle("GET", "/local/stack", [], b"").body) == {"api": "x"}
    assert gw.handle("GET", "/local/other", [], b"").status == 404


def test_switching_an_event_source_needs_an_admin(key: SigningKey) -> None:
    switched: list[tuple[str, bool]] = []
    gw = gateway(key, Recorder(), switched)
    assert gw.handle("POST", "/local/functions/ProjectorFn/disable", [], b"").status == 401
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
    assert gw.handle("POST", "/local/functions/ProjectorFn/kill", [], b"").status == 401
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
    import socket

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
    assert json.loads(answer.body) == {"message": "Endpoint request timed out"}
