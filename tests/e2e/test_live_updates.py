"""Live updates through `jobstatus local`: a real WebSocket client on /v1/stream, jobs POSTed over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.auth import SigningKey, issue_token
from local.engines import dynalite_unavailable, free_port
from local.stack import LocalStack, StackConfig
from tests.e2e.conftest import RunningStack, submit, wait_until_finished
from tests.live.asyncapi import check_client_message, check_server_message

pytestmark = [pytest.mark.e2e]
ENDED = {"COMPLETED", "FAILED"}
STATUS_ORDER = {"QUEUED": 0, "PROCESSING": 1, "COMPLETED": 2, "FAILED": 2}


def open_stream(stack: RunningStack, user: str, token: str | None = None) -> ClientConnection:
    token = token if token is not None else stack.token(user)
    return connect(f"ws://127.0.0.1:{stack.port}/v1/stream?token={token}", open_timeout=10)


def send(ws: ClientConnection, message: dict[str, Any] | str) -> None:
    if isinstance(message, dict):
        check_client_message(message)
    ws.send(message if isinstance(message, str) else json.dumps(message))


def receive(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    check_server_message(message)
    return message


def kept_until_ended(ws: ClientConnection, job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The `job` messages of `job_id` a client keeps (a greater version than any before) until it ends."""
    kept: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = receive(ws, max(0.1, deadline - time.monotonic()))
        if message["type"] != "job" or message["job"]["jobId"] != job_id:
            continue
        if not kept or message["version"] > kept[-1]["version"]:
            kept.append(message)
        if kept[-1]["job"]["status"] in ENDED:
            return kept
    raise AssertionError(f"{job_id} did not end on the socket: {[m['job']['status'] for m in kept]}")


def test_a_subscriber_sees_its_job_from_queued_to_the_end_and_another_user_sees_nothing(
    stack: RunningStack,
) -> None:
    with (
        open_stream(stack, "erin") as erin,
        open_stream(stack, "oscar") as oscar,
        stack.client("erin") as http,
    ):
        # Given two users subscribed to all their jobs
        for ws in (erin, oscar):
            send(ws, {"action": "subscribe", "mine": True})
            assert receive(ws) == {"type": "subscribed", "jobIds": [], "mine": True}
        # When erin submits a job over HTTP
        (job_id,) = submit(http, 1)
        # Then her socket shows it QUEUED, then every change with growing versions, ending on the GET body
        kept = kept_until_ended(erin, job_id)
        versions = [m["version"] for m in kept]
        assert versions == sorted(set(versions))
        # (the projector may fold QUEUED and PROCESSING into one write: then the first kept is PROCESSING)
        steps = [STATUS_ORDER[m["job"]["status"]] for m in kept]
        assert steps == sorted(steps) and steps[-1] == 2
        assert kept[-1]["job"] == http.get(f"/v1/jobs/{job_id}").json()
        # And oscar's socket got nothing of it: his next message is the answer to his ping
        send(oscar, {"action": "ping"})
        assert receive(oscar) == {"type": "pong"}


def test_a_connection_dropped_mid_job_and_reopened_shows_the_final_state(stack: RunningStack) -> None:
    with stack.client("fay") as http:
        with open_stream(stack, "fay") as first:
            send(first, {"action": "subscribe", "mine": True})
            assert receive(first)["type"] == "subscribed"
            (job_id,) = submit(http, 1)
            seen = receive(first)
            assert (seen["type"], seen["job"]["jobId"]) == ("job", job_id)
        # The socket is gone mid-job; the job goes on and ends
        final = wait_until_finished(http, [job_id])[job_id]
        with open_stream(stack, "fay") as second:
            send(second, {"action": "subscribe", "jobIds": [job_id]})
            current, subscribed = receive(second), receive(second)
    assert current["job"] == final and final["status"] in ENDED
    assert subscribed == {"type": "subscribed", "jobIds": [job_id], "mine": False}


def test_bad_frames_get_errors_and_the_other_subscriptions_keep_working(stack: RunningStack) -> None:
    with open_stream(stack, "gus") as ws, stack.client("gus") as http:
        send(ws, {"action": "subscribe", "mine": True})
        assert receive(ws)["type"] == "subscribed"
        bad: list[tuple[str, str]] = [
            ("{not json", "INVALID_JSON"),
            ('{"action": "dance"}', "UNKNOWN_ACTION"),
            (
                json.dumps({"action": "subscribe", "jobIds": [f"job-{n}" for n in range(51)]}),
                "TOO_MANY_JOB_IDS",
            ),
            (json.dumps({"action": "subscribe", "jobIds": ["../etc/passwd"]}), "INVALID_JOB_ID"),
            ("[]", "INVALID_MESSAGE"),
        ]
        for frame, code in bad:
            send(ws, frame)
            answer = receive(ws)
            assert (answer["type"], answer["error"]["code"]) == ("error", code), answer
            assert answer["error"]["message"]
        # A flood of subscribes: refused beyond the connection's limit, never a crash
        codes = []
        for flood in range(6):
            send(ws, {"action": "subscribe", "jobIds": [f"flood-{flood}-{n}" for n in range(50)]})
            codes.append(receive(ws).get("error", {}).get("code"))
        assert "TOO_MANY_SUBSCRIPTIONS" in codes
        # The `mine` subscription still delivers
        (job_id,) = submit(http, 1)
        assert kept_until_ended(ws, job_id)[-1]["job"]["status"] in ENDED


@pytest.mark.parametrize("token", ["", "not-a-jwt", "expired", "foreign key"])
def test_an_upgrade_without_a_valid_token_is_refused_with_401(
    stack: RunningStack, token: str, tmp_path
) -> None:
    if token == "expired":
        token = issue_token(
            SigningKey.load_or_create(stack.data_dir), "hal", seconds=1, now=time.time() - 3600
        )
    elif token == "foreign key":
        token = issue_token(SigningKey.load_or_create(tmp_path), "hal")
    with pytest.raises(InvalidStatus) as refused:
        open_stream(stack, "hal", token=token)
    assert refused.value.response.status_code == 401
    # The server goes on: a good token still connects
    with open_stream(stack, "hal") as ws:
        send(ws, {"action": "ping"})
        assert receive(ws) == {"type": "pong"}


def test_the_connections_api_answers_only_the_loopback_host(stack: RunningStack) -> None:
    # A page of another site (DNS rebinding onto 127.0.0.1) sends its own Host: refused.
    foreign = httpx.post(
        f"{stack.url}/@connections/some-id", content=b"{}", headers={"Host": "attacker.example"}
    )
    assert foreign.status_code == 403
    # The local functions call it as botocore does (Host 127.0.0.1:PORT): a gone connection is 410.
    gone = httpx.post(f"{stack.url}/@connections/some-id", content=b"{}")
    assert (gone.status_code, gone.headers["x-amzn-ErrorType"]) == (410, "GoneException")


def test_on_dynalite_the_stack_runs_without_live_updates_and_says_so(tmp_path: Path) -> None:
    if reason := dynalite_unavailable():
        pytest.skip(reason)
    with LocalStack(StackConfig(port=free_port(), data_dir=tmp_path, dynamodb_engine="dynalite")) as running:
        notes = list(running.notes)
        # The REST API runs; an upgrade on /v1/stream is just an unknown route there
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{running.config.port}/v1/stream?token={running.token('ida')}")
        assert refused.value.response.status_code == 404
        assert httpx.get(
            f"{running.url}/v1/jobs", headers={"Authorization": f"Bearer {running.token('ida')}"}
        ).json() == {
            "items": [],
            "nextCursor": None,
        }
    assert "live updates off: dynalite has no DynamoDB Streams (use the moto engine)" in notes
