"""`jobstatus jobs get` and `jobstatus jobs list` against a fake API (the local stack run is in tests/e2e)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from local.auth import SigningKey
from ops.cli import build_parser

pytestmark = pytest.mark.unit

JOB = {
    "jobId": "job-7",
    "status": "FAILED",
    "createdAt": "2026-11-22T07:20:31.123Z",
    "updatedAt": "2026-11-22T07:21:01.500Z",
    "outputUrl": None,
    "startedAt": "2026-11-22T07:20:33.000Z",
    "completedAt": "2026-11-22T07:21:01.500Z",
    "attempt": 1,
    "error": {"code": "FAL_REJECTED", "message": "prompt refused", "retryable": False},
    "model": "fal-ai/kling-video/v2/master/text-to-video",
    "input": {"prompt": "a rabbit on the moon", "seed": 7},
}
OTHER = {
    "jobId": "job-6",
    "status": "COMPLETED",
    "createdAt": "2026-11-22T07:10:00.000Z",
    "updatedAt": "2026-11-22T07:12:00.000Z",
    "outputUrl": "https://cdn.example/job-6.mp4",
}


def api(seen: list[httpx.Request], answers: dict[str, tuple[int, Any]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = answers[request.url.path]
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


def run(argv: list[str], transport: httpx.MockTransport) -> tuple[int, str]:
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None, soft_wrap=False)
    run_command: Callable[..., int] = args.run
    return run_command(args, transport=transport, console=console), out.getvalue()


def test_get_prints_a_readable_block() -> None:
    seen: list[httpx.Request] = []
    transport = api(seen, {"/prod/v1/jobs/job-7": (200, JOB)})
    code, out = run(
        ["jobs", "get", "job-7", "--api-url", "http://api.test/prod", "--token", "t0k"], transport
    )
    assert code == 0
    assert out == (
        "jobId       job-7\n"
        "status      FAILED\n"
        "model       fal-ai/kling-video/v2/master/text-to-video\n"
        "prompt      a rabbit on the moon\n"
        "createdAt   2026-11-22T07:20:31.123Z\n"
        "startedAt   2026-11-22T07:20:33.000Z\n"
        "updatedAt   2026-11-22T07:21:01.500Z\n"
        "completedAt 2026-11-22T07:21:01.500Z\n"
        "attempt     1\n"
        "error       FAL_REJECTED: prompt refused (retryable: False)\n"
        'input       {"prompt": "a rabbit on the moon", "seed": 7}\n'
    )
    assert [str(r.url) for r in seen] == ["http://api.test/prod/v1/jobs/job-7"]
    assert seen[0].headers["Authorization"] == "Bearer t0k"


def test_get_json_prints_the_body() -> None:
    transport = api([], {"/v1/jobs/job-7": (200, JOB)})
    code, out = run(
        ["jobs", "get", "job-7", "--api-url", "http://api.test", "--token", "t", "--json"], transport
    )
    assert code == 0 and json.loads(out) == JOB


def test_get_of_an_unknown_job_says_what_the_api_answered(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"error": {"code": "NOT_FOUND", "message": "Job not found"}}
    transport = api([], {"/v1/jobs/nope": (404, body)})
    code, out = run(["jobs", "get", "nope", "--api-url", "http://api.test", "--token", "t"], transport)
    assert (code, out) == (1, "")
    assert (
        capsys.readouterr().err
        == "jobs: GET http://api.test/v1/jobs/nope answered 404 NOT_FOUND: Job not found\n"
    )


def test_list_asks_for_the_users_jobs_and_prints_a_table() -> None:
    seen: list[httpx.Request] = []
    transport = api(seen, {"/v1/jobs": (200, {"items": [JOB, OTHER], "nextCursor": "abc.def"})})
    argv = [
        "jobs",
        "list",
        "--user",
        "bob",
        "--status",
        "FAILED",
        "--limit",
        "2",
        "--api-url",
        "http://api.test",
    ]
    code, out = run([*argv, "--token", "t"], transport)
    assert code == 0
    assert dict(seen[0].url.params) == {"userId": "bob", "limit": "2", "status": "FAILED"}
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0] == "jobs of bob"
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "job-" in line]
    assert rows == [
        [
            "job-7",
            "FAILED",
            "fal-ai/kling-video/v2/master/text-to-video",
            "a rabbit on the moon",
            "2026-11-22T07:20:31.123Z",
            "2026-11-22T07:21:01.500Z",
        ],
        ["job-6", "COMPLETED", "", "", "2026-11-22T07:10:00.000Z", "2026-11-22T07:12:00.000Z"],
    ]
    assert lines[-1] == "2 jobs; more with --cursor abc.def"


def test_list_when_not_admin_says_forbidden(capsys: pytest.CaptureFixture[str]) -> None:
    body = {"error": {"code": "FORBIDDEN", "message": "only members of 'admin' may list another user's jobs"}}
    transport = api([], {"/v1/jobs": (403, body)})
    code, _ = run(
        ["jobs", "list", "--user", "bob", "--api-url", "http://api.test", "--token", "t"], transport
    )
    assert code == 1
    assert capsys.readouterr().err == (
        "jobs: GET http://api.test/v1/jobs?userId=bob&limit=20 answered 403 "
        "FORBIDDEN: only members of 'admin' may list another user's jobs\n"
    )


def test_without_a_token_nothing_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JOBSTATUS_TOKEN", raising=False)
    seen: list[httpx.Request] = []
    code, _ = run(["jobs", "get", "job-7", "--api-url", "http://api.test"], api(seen, {}))
    assert code == 1 and seen == []
    assert capsys.readouterr().err == "jobs: no token: give --token or set JOBSTATUS_TOKEN\n"


def test_local_uses_the_stack_file_and_an_admin_token_of_its_signing_key(tmp_path: Path) -> None:
    # Given: a local stack's folder
    (tmp_path / "stack.json").write_text(json.dumps({"api": "http://127.0.0.1:3999"}))
    SigningKey.load_or_create(tmp_path)
    seen: list[httpx.Request] = []
    transport = api(seen, {"/v1/jobs": (200, {"items": [], "nextCursor": None})})
    # When
    code, out = run(["jobs", "list", "--user", "bob", "--local", str(tmp_path)], transport)
    # Then
    assert code == 0 and out.splitlines()[-1] == "0 jobs"
    assert str(seen[0].url).startswith("http://127.0.0.1:3999/v1/jobs?")
    token = seen[0].headers["Authorization"].removeprefix("Bearer ")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "support" and "admin" in claims["cognito:groups"]


def test_local_without_a_running_stack_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(["jobs", "get", "job-7", "--local", str(tmp_path)], api([], {}))
    assert code == 1
    assert capsys.readouterr().err == (
        f"jobs: {tmp_path}/stack.json not found: is `jobstatus local` (make run) running?\n"
    )
