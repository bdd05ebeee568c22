"""ProjectorFn's init in Lambda builds its dependencies and freezes the heap it made (issue 12)."""

from __future__ import annotations

import json

import pytest

from tests.fresh import fresh_env, run_fresh

pytestmark = pytest.mark.unit

# What the import leaves behind: objects moved out of the collector's way, dependencies built.
PROBE = (
    "import gc, json; import projector.handler as h; "
    "print(json.dumps({'frozen': gc.get_freeze_count(), 'built': h.dependencies.cache_info().currsize}))"
)


def _import_the_handler(**extra: str) -> dict[str, int]:
    # Nothing listens on port 9: the init must not send a request
    env = fresh_env("http://127.0.0.1:9", JOBS_TABLE_NAME="Jobs-dev", **extra)
    answer: dict[str, int] = json.loads(run_fresh(PROBE, env).splitlines()[-1])
    return answer


def test_in_lambda_the_init_builds_the_dependencies_and_freezes_the_heap() -> None:
    answer = _import_the_handler(AWS_LAMBDA_FUNCTION_NAME="jobs-dev-projector")
    assert answer["built"] == 1
    assert answer["frozen"] > 0


def test_outside_lambda_importing_the_handler_builds_and_freezes_nothing() -> None:
    assert _import_the_handler() == {"frozen": 0, "built": 0}
