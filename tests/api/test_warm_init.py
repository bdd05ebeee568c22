"""GetJobFn's init in Lambda builds its client and opens its DynamoDB connection (issue 12, item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.loopback_aws import aws_json_endpoint
from tests.fresh import fresh_env, run_fresh

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
    return fresh_env(endpoint, JOBS_TABLE_NAME="Jobs-dev", **extra)


def test_in_lambda_the_init_reads_a_key_no_job_has(dynamodb: tuple[str, list[dict[str, object]]]) -> None:
    endpoint, seen = dynamodb
    run_fresh(INIT, _env(endpoint, AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job"))
    assert [(r["target"], r["TableName"], r["Key"]) for r in seen] == [
        ("DynamoDB_20120810.GetItem", "Jobs-dev", {"jobId": {"S": "__warm-up__"}})
    ]


def test_outside_lambda_importing_the_handler_sends_nothing(
    dynamodb: tuple[str, list[dict[str, object]]],
) -> None:
    endpoint, seen = dynamodb
    run_fresh(INIT, _env(endpoint))
    assert seen == []


def test_a_failed_warm_up_does_not_fail_the_init() -> None:
    # Nothing listens on port 9: the GetItem fails, the import still succeeds, and says so
    output = run_fresh(
        INIT + "; print('imported')",
        _env("http://127.0.0.1:9", AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job", AWS_MAX_ATTEMPTS="1"),
    )
    assert "imported" in output
    assert "warming the DynamoDB connection failed" in output


def test_in_lambda_the_init_freezes_the_heap_it_made(dynamodb: tuple[str, list[dict[str, object]]]) -> None:
    # Given Lambda's init, and the same import outside Lambda
    endpoint, _ = dynamodb
    count = INIT + "; import gc; print(gc.get_freeze_count())"
    in_lambda = run_fresh(count, _env(endpoint, AWS_LAMBDA_FUNCTION_NAME="jobs-dev-get-job"))
    outside = run_fresh(count, _env(endpoint))
    # Then only Lambda's init moved its objects out of the collector's way (the first GET then
    # pays no full collection of them)
    assert int(in_lambda.split()[-1]) > 10_000
    assert int(outside.split()[-1]) == 0
