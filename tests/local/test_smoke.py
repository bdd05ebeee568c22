"""`jobstatus smoke`: its steps and failure paths against a fake API (the run against the local
stack is in tests/e2e)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from ops.cli import build_parser
from ops.smoke import SmokeFailure, jobs_url, run, stack_api_url

pytestmark = pytest.mark.unit
API = "http://api.test/prod/v1/jobs"
JOB = "0b7f6b2e-0000-4000-8000-000000000001"


def fake_api(
    statuses: list[int | str], *, post: int = 202, listed: bool = True
) -> Callable[[httpx.Request], httpx.Response]:
    """An API whose GET /v1/jobs/JOB answers 404 (an int) or 200 with that status, in turn."""
    answers = iter(statuses)
    last: list[int | str] = [404]

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t0ken"
        if request.method == "POST":
            return httpx.Response(post, json={"jobId": JOB} if post == 202 else {"message": "no"})
        if request.url.path.endswith(JOB):
            last[0] = next(answers, last[0])
            if isinstance(last[0], int):
                return httpx.Response(last[0], json={"message": "Not Found"})
            return httpx.Response(200, json={"jobId": JOB, "status": last[0]})
        items = [{"jobId": JOB, "status": "COMPLETED"}] if listed else [{"jobId": "other"}]
        return httpx.Response(200, json={"items": items, "nextCursor": None})

    return handle


def smoke(
    handler: Callable[[httpx.Request], httpx.Response], *flags: str, token: str | None = "t0ken"
) -> int:
    argv = ["smoke", "--api-url", "http://api.test/prod", "--poll", "0", *flags]
    if token:
        argv += ["--token", token]
    return run(build_parser().parse_args(argv), transport=httpx.MockTransport(handler))


def test_a_job_submitted_projected_finished_and_listed_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code = smoke(fake_api([404, 404, "QUEUED", "PROCESSING", "COMPLETED"]))
    out = capsys.readouterr().out
    assert code == 0
    steps = [line.split()[1] for line in out.splitlines()]
    assert steps == ["API", "submitted", "projected", "finished", "listed", "passed"]
    assert f"jobId {JOB}" in out and "status QUEUED" in out and "status COMPLETED" in out


def test_a_refused_submit_fails_with_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(fake_api([], post=401)) == 1
    assert capsys.readouterr().err == f'smoke: FAILED: POST {API} answered 401: {{"message":"no"}}\n'


def test_a_job_never_projected_fails_after_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(fake_api([404]), "--timeout", "0") == 1
    assert (
        capsys.readouterr().err
        == f"smoke: FAILED: job {JOB} not projected within 0 s (last: not projected)\n"
    )


def test_a_job_that_never_finishes_fails_after_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(fake_api(["PROCESSING"]), "--timeout", "0") == 1
    assert capsys.readouterr().err == f"smoke: FAILED: job {JOB} not finished within 0 s (last: PROCESSING)\n"


def test_a_job_missing_from_the_list_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(fake_api(["COMPLETED"], listed=False)) == 1
    assert capsys.readouterr().err == f"smoke: FAILED: job {JOB} is not in the first page of GET {API}\n"


def test_an_unreachable_api_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert smoke(refuse) == 1
    err = capsys.readouterr().err
    assert err == f"smoke: FAILED: POST {API}: ConnectError: connection refused\n"


def test_no_token_fails_before_any_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTATUS_TOKEN", raising=False)

    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request without a token")

    assert smoke(never, token=None) == 1
    assert capsys.readouterr().err == "smoke: FAILED: no token: give --token or set JOBSTATUS_TOKEN\n"


def test_the_token_comes_from_jobstatus_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTATUS_TOKEN", "t0ken")
    assert smoke(fake_api(["COMPLETED"]), token=None) == 0


def test_local_without_a_running_stack_says_so(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(build_parser().parse_args(["smoke", "--local", str(tmp_path)])) == 1
    assert capsys.readouterr().err.startswith(f"smoke: FAILED: {tmp_path}/stack.json not found")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://x.example/prod/v1/jobs", "https://x.example/prod/v1/jobs"),
        ("https://x.example/prod/v1/jobs/", "https://x.example/prod/v1/jobs"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000/v1/jobs"),
    ],
)
def test_the_jobs_url_of_a_base(given: str, expected: str) -> None:
    assert jobs_url(given) == expected


def test_the_api_url_is_the_stacks_jobs_api_url_output() -> None:
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"JobsApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/jobs"}},
    }
    bare = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="jobs-prod", TemplateBody=json.dumps(template))
        cloudformation.create_stack(StackName="bare", TemplateBody=json.dumps(bare))
        assert stack_api_url("jobs-prod", "us-east-1") == (
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/jobs"
        )
        with pytest.raises(SmokeFailure, match=r"^stack bare has no JobsApiUrl output$"):
            stack_api_url("bare", "us-east-1")
        with pytest.raises(SmokeFailure, match=r"^cannot read stack missing: "):
            stack_api_url("missing", "us-east-1")
