"""`jobstatus local` started as a subprocess on free ports, its data in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import httpx
import pytest

from local.auth import SigningKey, issue_token
from local.engines import free_port

ROOT = Path(__file__).resolve().parents[2]
JOBSTATUS = Path(sys.executable).parent / "jobstatus"
MODEL = "fal-ai/kling-video/v2/master/text-to-video"
START_TIMEOUT = 90.0


@dataclass
class RunningStack:
    """A `jobstatus local` process and how to talk to it."""

    data_dir: Path
    port: int
    fal_failure_rate: float
    template: Path | None = None  # `--template`; None runs the repo's template.yaml
    extra_args: tuple[str, ...] = ()  # more flags of `jobstatus local` (e.g. --allow-local-webhooks)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    described: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, user: str, admin: bool = False) -> str:
        return issue_token(SigningKey.load_or_create(self.data_dir), user, admin=admin)

    def client(self, user: str, admin: bool = False) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token(user, admin)}"}, timeout=30
        )

    def aws(self, service: Literal["dynamodb", "sqs"]) -> Any:
        """A boto3 client on the stack's local engine for `service` (`dynamodb`, `sqs`, ...)."""
        described = self.described
        return boto3.client(
            service,
            endpoint_url=described["endpoints"][f"AWS_ENDPOINT_URL_{service.upper()}"],
            region_name=described["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def start(self) -> None:
        self.log = self.data_dir.parent / f"local-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(JOBSTATUS),
                    "local",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--fal-latency",
                    "0.3",
                    "--fal-failure-rate",
                    str(self.fal_failure_rate),
                    *(["--template", str(self.template)] if self.template else []),
                    *self.extra_args,
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jobstatus local exited {self.process.returncode}:\n{self.output()}")
            try:
                answer = httpx.get(f"{self.url}/local/stack", timeout=1)
                if answer.status_code == 200:
                    self.described = answer.json()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"jobstatus local did not answer within {START_TIMEOUT}s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; its exit code."""
        process, self.process = self.process, None
        if process is None:
            return 0
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL (`kill -9`): nothing runs its shutdown, nothing is saved on the way out."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A running local stack with 20 % simulated Fal failures and 0.3 s Fal latency.

    Shared by the e2e tests and stopped once they are done, not left idle for the rest of a run.
    """
    running = RunningStack(tmp_path_factory.mktemp("e2e") / "data", free_port(), fal_failure_rate=0.2)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def submit(client: httpx.Client, count: int) -> list[str]:
    """POST `count` jobs; their ids."""
    ids = []
    for i in range(count):
        answer = client.post("/v1/jobs", json={"model": MODEL, "input": {"prompt": f"e2e {i}"}})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["jobId"])
    return ids


def wait_until_finished(
    client: httpx.Client, ids: list[str], timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """GET every job until each is COMPLETED or FAILED; the last bodies."""
    bodies: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in ids:
            if bodies.get(job_id, {}).get("status") in {"COMPLETED", "FAILED"}:
                continue
            answer = client.get(f"/v1/jobs/{job_id}")
            if answer.status_code == 200:
                bodies[job_id] = answer.json()
            else:
                assert answer.status_code == 404, answer.text  # not projected yet
        if all(bodies.get(j, {}).get("status") in {"COMPLETED", "FAILED"} for j in ids):
            return bodies
        time.sleep(0.3)
    unfinished = {
        j: bodies.get(j, {}).get("status")
        for j in ids
        if bodies.get(j, {}).get("status") not in {"COMPLETED", "FAILED"}
    }
    raise AssertionError(f"jobs unfinished after {timeout}s: {json.dumps(unfinished)}")
