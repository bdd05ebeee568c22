"""`jobstatus local` in this process: it starts everything, answers, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from jobstatus.codec import from_item
from local.engines import MotoServer, free_port
from local.stack import LocalStack, StackConfig
from ops.cli import main
from ops.template import TEMPLATE_PATH, Template
from projector.fold import project
from tests.rebuild.helpers import envelope, history

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
    # What a newcomer sees: the engines, the URLs, a token and curl commands, a clean stop.
    assert "local: starting moto server (DynamoDB in memory, EventBridge, SQS)" in out
    assert f"http://127.0.0.1:{port}/v1/jobs" in out and "export TOKEN=" in out and "curl -s -X POST" in out
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


def test_an_engine_that_cannot_start_is_one_line_naming_it_and_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no node on PATH, and dynalite asked for
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    code = main(
        ["local", "--port", str(free_port()), "--data-dir", str(tmp_path), "--dynamodb-engine", "dynalite"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        "local: cannot start: dynalite did not start: node not found on PATH: install Node.js (with npm) "
        "to run dynalite. Bring another DynamoDB engine with AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT "
        "(DynamoDB Local, ScyllaDB Alternator, ...)"
    ]
    assert not (tmp_path / "stack.json").exists()


def _items(client: Any, table: str) -> dict[str, dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {item["jobId"]["S"]: from_item(item) for page in pages for item in page["Items"]}


def test_a_start_rebuilds_the_jobs_table_from_the_archive_copy_and_reports_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an archive copy of 13 jobs' events (one of them expired) with a broken line 4
    events = history(12, seed=5, now=datetime.now(UTC))
    lines = [json.dumps(envelope(event)) for event in events]
    lines.insert(3, '{"detail-type": "JobStatusChanged", "detail": {"jobId": ')
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "archive.jsonl").write_text("\n".join(lines) + "\n")
    ttl_days = int(Template.read(TEMPLATE_PATH).parameters["JobTtlDays"])
    expected = project(events, ttl_days=ttl_days, now=datetime.now(UTC).timestamp())
    assert len(expected) == 12  # the expired job is not restored
    # When the stack starts
    with LocalStack(StackConfig(port=free_port(), data_dir=data_dir, fal_failure_rate=0)) as stack:
        described = stack.describe()
        client = boto3.client("dynamodb", endpoint_url=described["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"])
        table = _items(client, described["tables"]["JobsTable"])
    out = capsys.readouterr().out
    # Then the table holds exactly the fold of every readable line, and the broken one is named
    assert table == expected
    assert f"local: Jobs table restored from archive.jsonl: 12 jobs from {len(events)} events in " in out
    assert "local: archive.jsonl line 4 skipped: not JSON" in out


def test_a_user_engine_in_aws_endpoint_url_dynamodb_is_used_instead_of_starting_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MotoServer() as own:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", own.endpoint)
        with LocalStack(StackConfig(port=free_port(), data_dir=tmp_path)) as stack:
            described = stack.describe()
            notes = list(stack.notes)
            moto = described["endpoints"]["AWS_ENDPOINT_URL_SQS"]
        tables = boto3.client("dynamodb", endpoint_url=own.endpoint).list_tables()["TableNames"]
    assert described["dynamodb"] == "AWS_ENDPOINT_URL_DYNAMODB (your own engine)"
    assert described["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"] == own.endpoint != moto
    assert f"DynamoDB: your own engine at {own.endpoint} (AWS_ENDPOINT_URL_DYNAMODB is set)" in notes
    assert sorted(tables) == [
        "JobStreamConnections-dev",
        "Jobs-dev",
        "JobsIdempotency-dev",
        "JobsWebhookDeliveries-dev",
    ]
