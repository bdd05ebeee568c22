"""`jobstatus token`, `jobstatus demo` and `rebuild --local`'s stack file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import demo, stackfile
from local.auth import Authorizer, SigningKey
from ops.cli import build_parser, main

pytestmark = pytest.mark.unit


def test_token_prints_a_token_the_local_authorizer_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--user", "zoe", "--admin", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    claims = Authorizer(SigningKey.load_or_create(tmp_path).jwks()).claims_of(f"Bearer {token}")
    assert claims["sub"] == "zoe" and claims["cognito:groups"] == "admin"


def test_local_and_demo_parse_their_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "3456")
    monkeypatch.setenv("LOCAL_FAL_FAILURE_RATE", "0.25")
    args = build_parser().parse_args(["local"])
    assert args.port == 3456 and args.fal_failure_rate == 0.25 and args.fal_latency == 2.0
    args = build_parser().parse_args(["demo", "--jobs", "3"])
    assert args.jobs == 3 and args.url is None


class FakeApi:
    """The API's answers for the demo: each job is QUEUED, then PROCESSING, then done; ETags honoured."""

    def __init__(self, fail_every: int = 3) -> None:
        self.jobs: dict[str, int] = {}
        self.fail_every = fail_every
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            job_id = f"job-{len(self.jobs)}"
            self.jobs[job_id] = 0
            return httpx.Response(202, json={"jobId": job_id, "status": "QUEUED", "createdAt": "t"})
        job_id = request.url.path.rsplit("/", 1)[1]
        polls = self.jobs[job_id] = self.jobs[job_id] + 1
        if polls == 1:
            return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "x"}})
        step = min(polls, 3)
        etag = f'"{job_id}-{step}"'
        if request.headers.get("If-None-Match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        failed = int(job_id.split("-")[1]) % self.fail_every == 0
        status = ["QUEUED", "PROCESSING", "FAILED" if failed else "COMPLETED"][step - 1]
        body: dict[str, Any] = {"jobId": job_id, "status": status, "progress": 50 if step == 2 else None}
        if status == "FAILED":
            body["error"] = {"code": "FAL_REJECTED", "message": "no"}
        if status == "COMPLETED":
            body["outputUrl"] = "https://x/y.mp4"
        return httpx.Response(200, json=body, headers={"ETag": etag})


def test_demo_follows_every_job_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi()
    code = demo.run("http://api", "tok", jobs=4, transport=httpx.MockTransport(api), sleep=lambda s: None)
    # Jobs failed: the demo says so and exits 1 (it exited 0 before; issue 11 asks for 1).
    assert code == 1
    out = capsys.readouterr().out
    assert "4 jobs in" in out and "COMPLETED 2" in out and "FAILED 2" in out
    assert "2 of 4 jobs FAILED" in out
    assert all(r.headers["Authorization"] == "Bearer tok" for r in api.requests)
    assert any(r.headers.get("If-None-Match") for r in api.requests)


def test_demo_exits_0_when_every_job_completed(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeApi(fail_every=1000)
    api.jobs["job-0"] = 0  # job-0 would fail (0 % n == 0): start the ids at 1
    code = demo.run("http://api", "tok", jobs=3, transport=httpx.MockTransport(api), sleep=lambda s: None)
    assert code == 0
    assert "COMPLETED 3" in capsys.readouterr().out


def test_demo_shows_whole_ids_and_errors_and_fills_progress() -> None:
    from rich.console import Console

    long_id = "3f2c9a1e-7b4d-4c1a-9f2e-8d6b5a4c3e2f"  # a jobId as SubmitJobFn makes them
    message = "the model refused the prompt because " + "it was far too long to render; " * 6 + "END"
    done = demo.TrackedJob(long_id, status="COMPLETED", body={"status": "COMPLETED"})
    failed = demo.TrackedJob(
        "job-2", status="FAILED", body={"status": "FAILED", "error": {"code": "REJECTED", "message": message}}
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(demo.table([done, failed], 1.0))
    text = console.export_text()
    assert long_id in text
    # The error folds onto as many lines as it needs: every word of it is there, the last too.
    assert all(word in text.split() for word in message.split())
    assert "━━━━━━━━" in text  # the COMPLETED job's bar is full


def test_demo_reports_a_refused_submit(capsys: pytest.CaptureFixture[str]) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(401, json={"message": "Unauthorized"}))
    assert demo.run("http://api", "bad", jobs=1, transport=transport) == 1
    assert "401" in capsys.readouterr().out


def test_demo_reports_a_failing_get(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"jobId": "j", "status": "QUEUED"})
        return httpx.Response(500, text="boom")

    assert (
        demo.run("http://api", "t", jobs=1, transport=httpx.MockTransport(answer), sleep=lambda s: None) == 1
    )
    assert "500" in capsys.readouterr().out


def test_demo_gives_up_after_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"jobId": "j", "status": "QUEUED"})
        return httpx.Response(200, json={"jobId": "j", "status": "QUEUED"}, headers={"ETag": '"1"'})

    assert demo.run("http://api", "t", jobs=1, timeout=0.0, transport=httpx.MockTransport(answer)) == 1
    assert "gave up" in capsys.readouterr().out


def test_stack_file_points_the_process_at_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(stackfile.NoLocalStack, match="make run"):
        stackfile.read(tmp_path)
    (tmp_path / "stack.json").write_text("{nope")
    with pytest.raises(stackfile.NoLocalStack, match="JSON"):
        stackfile.read(tmp_path)
    described = {
        "endpoints": {"AWS_ENDPOINT_URL_EVENTBRIDGE": "http://127.0.0.1:1", "AWS_ENDPOINT_URL": None},
        "region": "us-east-1",
        "account": "123456789012",
        "stage": "dev",
        "jobsTable": "Jobs-dev",
    }
    (tmp_path / "stack.json").write_text(json.dumps(described))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, os.environ.get(name, "testing"))  # restored after the test
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "")
    args = argparse.Namespace(region=None, account=None, stage="other", table=None)
    stackfile.use_local_stack(args, str(tmp_path))
    assert os.environ["AWS_ENDPOINT_URL_EVENTBRIDGE"] == "http://127.0.0.1:1"
    assert "AWS_PROFILE" not in os.environ
    assert (args.region, args.account, args.stage, args.table) == (
        "us-east-1",
        "123456789012",
        "other",
        "Jobs-dev",
    )


def test_rebuild_local_without_a_running_stack_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rebuild", "--local", str(tmp_path), "--since", "1h"]) == 2
    assert "make run" in capsys.readouterr().err


def test_demo_says_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert demo.run("http://127.0.0.1:1", "t", jobs=1, transport=httpx.MockTransport(refuse)) == 1
    assert "is `make run` running?" in " ".join(capsys.readouterr().out.split())
