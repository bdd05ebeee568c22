"""ProjectorFn's init in Lambda builds its dependencies and freezes the heap it made (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit

# What the import leaves behind: objects moved out of the collector's way, dependencies built.
PROBE = (
    "import gc, json; import projector.handler as h; "
    "print(json.dumps({'frozen': gc.get_freeze_count(), 'built': h.dependencies.cache_info().currsize}))"
)


def _import_the_handler(**extra: str) -> dict[str, int]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "JOBS_TABLE_NAME": "Jobs-dev",
        # Nothing listens here: the init must not send a request
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        **extra,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, int] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_in_lambda_the_init_builds_the_dependencies_and_freezes_the_heap() -> None:
    answer = _import_the_handler(AWS_LAMBDA_FUNCTION_NAME="jobs-dev-projector")
    assert answer["built"] == 1
    assert answer["frozen"] > 0


def test_outside_lambda_importing_the_handler_builds_and_freezes_nothing() -> None:
    assert _import_the_handler() == {"frozen": 0, "built": 0}
