"""Code run in a fresh interpreter, as a Lambda init runs it: nothing imported, only the given env.

The cold-start tests ask such an interpreter what an import or a first request did (which
modules it imported, what it built, which requests it sent): this one has everything imported.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]


def fresh_env(endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """Fake credentials and a region (never a profile or real AWS), every AWS endpoint at
    `endpoint` when one is given, then `extra`."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = endpoint
    return {**env, **extra}


def run_fresh(code: str, env: dict[str, str]) -> str:
    """Run `code` in a fresh interpreter at the repository's root; what it printed.

    A non-zero exit fails the test with the end of what the interpreter wrote to stderr.
    """
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def imported_of(names: Iterable[str]) -> str:
    """An expression: the sorted list of `names` (packages or modules) the interpreter imported."""
    return f"sorted({{k for n in sys.modules for k in {tuple(names)!r} if n == k or n.startswith(k + '.')}})"
