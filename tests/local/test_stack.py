"""`jobstatus local` in this process: it starts everything, answers, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobstatus.cli import main
from local.dynamodb_local import free_port

pytestmark = pytest.mark.integration
MODEL = "fal-ai/kling-video/v2/master/text-to-video"


def exercise(data_dir: Path, port: int, seen: dict[str, Any]) -> None:
    """From another thread: wait for the stack, use it, then SIGTERM this process as a supervisor would."""
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "stack.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        described = json.loads((data_dir / "stack.json").read_text())
        seen["described"] = described
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            token = client.get("/local/dev-token").json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            seen["unauthorized"] = client.get("/v1/jobs").status_code
            seen["list"] = client.get("/v1/jobs", headers=auth).status_code
            posted = client.post("/v1/jobs", headers=auth, json={"model": MODEL, "input": {"prompt": "x"}})
            seen["post"] = posted.status_code
            seen["page"] = client.get("/").status_code
            admin = {"Authorization": "Bearer " + _admin_token(data_dir)}
            seen["disable"] = client.post("/local/functions/ProjectorFn/disable", headers=admin).status_code
            seen["enable"] = client.post("/local/functions/ProjectorFn/enable", headers=admin).status_code
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


def _admin_token(data_dir: Path) -> str:
    from local.auth import SigningKey, issue_token

    return issue_token(SigningKey.load_or_create(data_dir), "root", admin=True)


def test_jobstatus_local_runs_until_sigterm_and_cleans_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    seen: dict[str, Any] = {}
    before = {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
    helper = threading.Thread(target=exercise, args=(data_dir, port, seen), daemon=True)
    helper.start()
    code = main(
        [
            "local",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--no-dynamodb-local",
            "--fal-latency",
            "0.2",
            "--fal-failure-rate",
            "0",
            # The handler modules imported here keep the log level they are imported with: keep the
            # template's (INFO) so tests of those modules that run later see what they expect.
            "--verbose",
        ]
    )
    helper.join(10)
    out = capsys.readouterr().out

    assert code == 0
    assert seen["unauthorized"] == 401 and seen["list"] == 200 and seen["post"] == 202 and seen["page"] == 200
    assert seen["disable"] == 200 and seen["enable"] == 200
    described = seen["described"]
    assert described["dynamodb"] == "moto"
    assert set(described["tables"]) == {
        "JobsTable",
        "IdempotencyTable",
        "ConnectionsTable",
        "WebhookDeliveriesTable",
    }
    assert "ProjectorQueue" in described["queues"]
    assert "GET /v1/jobs/{id} -> GetJobFn" in described["routes"]
    assert described["fal"].startswith("simulated")
    # What a newcomer sees: the URLs, a token and curl commands, the loud fallback, a clean stop.
    assert f"http://127.0.0.1:{port}/v1/jobs" in out and "export TOKEN=" in out and "curl -s -X POST" in out
    assert "JAVA NOT FOUND (or --no-dynamodb-local)" in out
    assert "local: stopped." in out
    assert not (data_dir / "stack.json").exists()
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")} == before


def test_jobstatus_local_with_a_missing_template_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    code = main(
        ["local", "--port", str(free_port()), "--data-dir", str(tmp_path), "--template", str(missing)]
    )
    assert code == 2
    assert "cannot read the template" in capsys.readouterr().err
