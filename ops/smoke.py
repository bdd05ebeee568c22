"""`jobstatus smoke`: check a deployment end to end through its API, step by step, with timings.

Submits a job (POST /v1/jobs), waits until it is projected (GET /v1/jobs/{id} answers 200), then
until it is COMPLETED or FAILED, and finds it in the list (GET /v1/jobs). The API URL comes from
the CloudFormation stack's `JobsApiUrl` output (`--stack`, credentials from the usual AWS
settings), `--api-url`, or the running local stack (`--local`). Exits 1 on the first failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from jobstatus.contract import TERMINAL_STATUSES as TERMINAL

if TYPE_CHECKING:
    import httpx

API_OUTPUT: Final = "JobsApiUrl"
SMOKE_MODEL: Final = "fal-ai/kling-video/v2/master/text-to-video"
SMOKE_USER: Final = "smoke"  # the user of the token `--local` makes


class SmokeFailure(Exception):
    """A step failed; the message is the line the operator sees."""


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the API is (`--stack`, `--api-url` or `--local`) and how to call it: shared by
    `smoke` and `jobs`."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the CloudFormation stack whose JobsApiUrl output to use")
    where.add_argument("--api-url", help="the API's base URL (…/v1/jobs or the host part before it)")
    where.add_argument(
        "--local",
        nargs="?",
        const=".local",
        metavar="DIR",
        help="the running `jobstatus local` (its DIR/stack.json and signing key; default .local)",
    )
    parser.add_argument("--token", help="bearer token (default: $JOBSTATUS_TOKEN; --local makes one)")
    parser.add_argument("--region", help="AWS region of --stack (default: the usual AWS settings)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `smoke` to the `jobstatus` command line."""
    smoke = subparsers.add_parser(
        "smoke",
        help="submit a job through a deployed API and follow it: submit, projected, finished, listed",
        description=(__doc__ or "").split("\n\n")[0],
    )
    add_target_arguments(smoke)
    smoke.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the job to finish (default 300)"
    )
    smoke.add_argument("--poll", type=float, default=1.0, help="seconds between GETs (default 1)")
    smoke.set_defaults(run=run)


def jobs_url(base: str) -> str:
    """The `/v1/jobs` URL of an API given as that URL or the part before it."""
    base = base.rstrip("/")
    return base if base.endswith("/v1/jobs") else f"{base}/v1/jobs"


def stack_api_url(stack: str, region: str | None) -> str:
    """The stack's `JobsApiUrl` output, read with CloudFormation (the usual AWS credentials)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("cloudformation", region_name=region)
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise SmokeFailure(f"cannot read stack {stack}: {error}") from None
    described = stacks[0].get("Outputs", []) if stacks else []
    outputs = {output["OutputKey"]: output.get("OutputValue", "") for output in described}
    if not outputs.get(API_OUTPUT):
        raise SmokeFailure(f"stack {stack} has no {API_OUTPUT} output")
    return str(outputs[API_OUTPUT])


def local_target(data_dir: Path) -> tuple[str, str]:
    """The running local stack's API URL and a token its API accepts (user `smoke`)."""
    from local.auth import SigningKey, issue_token
    from local.stackfile import NoLocalStack, read

    try:
        described = read(data_dir)
    except NoLocalStack as error:
        raise SmokeFailure(str(error)) from None
    return str(described["api"]), issue_token(SigningKey.load_or_create(data_dir), SMOKE_USER)


@dataclass
class Smoke:
    """The steps against one API, printing a line per step with its time."""

    client: httpx.Client
    url: str
    timeout: float
    poll: float
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def step(self, name: str, started: float, detail: str) -> None:
        """Print one finished step."""
        self.say(f"smoke: {name:<10} {self.clock() - started:7.2f} s  {detail}")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; a connection failure or timeout is a `SmokeFailure`."""
        import httpx

        try:
            return self.client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise SmokeFailure(f"{method} {url}: {type(error).__name__}: {error}") from None

    def run(self) -> dict[str, Any]:
        """Submit, wait until projected, until finished, find it in the list; the last body."""
        started = self.clock()
        answer = self.request(
            "POST", self.url, json={"model": SMOKE_MODEL, "input": {"prompt": "jobstatus smoke test"}}
        )
        if answer.status_code != 202:
            raise SmokeFailure(f"POST {self.url} answered {answer.status_code}: {answer.text[:300]}")
        job_id = _field(answer, "jobId")
        self.step("submitted", started, f"jobId {job_id}")
        body = self.wait(job_id, started, lambda b: True, "projected")
        self.step("projected", started, f"status {body.get('status')}")
        body = self.wait(job_id, started, lambda b: b.get("status") in TERMINAL, "finished")
        self.step("finished", started, f"status {body.get('status')}")
        listed_at = self.clock()
        answer = self.request("GET", self.url, params={"limit": 50})
        if answer.status_code != 200:
            raise SmokeFailure(f"GET {self.url} answered {answer.status_code}: {answer.text[:300]}")
        items = _field(answer, "items")
        if not any(isinstance(item, dict) and item.get("jobId") == job_id for item in items):
            raise SmokeFailure(f"job {job_id} is not in the first page of GET {self.url}")
        self.step("listed", listed_at, f"{len(items)} jobs on the first page, {job_id} among them")
        return dict(body)

    def wait(
        self, job_id: str, started: float, done: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """GET the job until `done(body)`; `SmokeFailure` after the timeout or on an answer not 200/404."""
        url = f"{self.url}/{job_id}"
        while True:
            answer = self.request("GET", url)
            if answer.status_code == 200:
                body = answer.json()
                if done(body):
                    return dict(body)
            elif answer.status_code != 404:  # 404: not projected yet
                raise SmokeFailure(f"GET {url} answered {answer.status_code}: {answer.text[:300]}")
            if self.clock() - started > self.timeout:
                last = answer.json().get("status") if answer.status_code == 200 else "not projected"
                raise SmokeFailure(f"job {job_id} not {what} within {self.timeout:g} s (last: {last})")
            self.sleep(self.poll)


def _field(answer: httpx.Response, name: str) -> Any:
    try:
        return answer.json()[name]
    except (ValueError, KeyError, TypeError):
        request = answer.request
        raise SmokeFailure(f"{request.method} {request.url}: no {name} in {answer.text[:300]}") from None


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    """`jobstatus smoke`: 0 when every step passed, 1 (with one line saying why) otherwise."""
    import httpx

    try:
        token = args.token or os.environ.get("JOBSTATUS_TOKEN")
        if args.local is not None:
            base, local_token = local_target(Path(args.local))
            token = token or local_token
        elif args.api_url:
            base = args.api_url
        else:
            base = stack_api_url(args.stack, args.region)
        if not token:
            raise SmokeFailure("no token: give --token or set JOBSTATUS_TOKEN")
        url = jobs_url(base)
        print(f"smoke: API {url}", flush=True)
        with httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=30.0, transport=transport
        ) as client:
            Smoke(client, url, timeout=args.timeout, poll=args.poll).run()
    except SmokeFailure as failure:
        print(f"smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    print("smoke: passed", flush=True)
    return 0
