"""GetJobFn's init in Lambda builds its client and opens its DynamoDB connection (issue 12, item 8)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.loopback_aws import aws_json_endpoint

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit

INIT = "import api.handler"


@pytest.fixture
def dynamodb() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A loopback endpoint answering GetItem with no item, as DynamoDB does; the requests it saw."""
    seen: list[dict[str, object]] = []

    def answer(target: str, request: dict[str, Any]) -> dict[str, Any]:
        seen.append({"target": target, **request})
        return {}

    with aws_json_endpoint(answer) as url:
        yield url, seen


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "JOBS_TABLE_NAME": "Jobs-dev",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        **extra,
    }


def test_in_lambda_the_init_reads_a_key_no_job_has(dynamodb: tuple[str, list[dict[str, object]]]) -> None:
    endpoint, seen = dynamodb
    subprocess.run(
        [sys.executable, "-c", INIT],
        cwd=ROOT,
        env=_env(endpoint, AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job"),
        check=True,
        capture_output=True,
    )
    assert [(r["target"], r["TableName"], r["Key"]) for r in seen] == [
        ("DynamoDB_20120810.GetItem", "Jobs-dev", {"jobId": {"S": "__warm-up__"}})
    ]


def test_outside_lambda_importing_the_handler_sends_nothing(
    dynamodb: tuple[str, list[dict[str, object]]],
) -> None:
    endpoint, seen = dynamodb
    subprocess.run(
        [sys.executable, "-c", INIT], cwd=ROOT, env=_env(endpoint), check=True, capture_output=True
    )
    assert seen == []


def test_a_failed_warm_up_does_not_fail_the_init() -> None:
    # Nothing listens on port 9: the GetItem fails, the import still succeeds, and says so
    result = subprocess.run(
        [sys.executable, "-c", INIT + "; print('imported')"],
        cwd=ROOT,
        env=_env("http://127.0.0.1:9", AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job", AWS_MAX_ATTEMPTS="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
    assert "warming the DynamoDB connection failed" in result.stdout


def test_in_lambda_the_init_freezes_the_heap_it_made(dynamodb: tuple[str, list[dict[str, object]]]) -> None:
    # Given Lambda's init, and the same import outside Lambda
    endpoint, _ = dynamodb
    count = INIT + "; import gc; print(gc.get_freeze_count())"
    in_lambda = subprocess.run(
        [sys.executable, "-c", count],
        cwd=ROOT,
        env=_env(endpoint, AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job"),
        check=True,
        capture_output=True,
        text=True,
    )
    outside = subprocess.run(
        [sys.executable, "-c", count],
        cwd=ROOT,
        env=_env(endpoint),
        check=True,
        capture_output=True,
        text=True,
    )
    # Then only Lambda's init moved its objects out of the collector's way (the first GET then
    # pays no full collection of them)
    assert int(in_lambda.stdout.split()[-1]) > 10_000
    assert int(outside.stdout.split()[-1]) == 0
