"""Benchmark: the cold init of GetJobFn, SubmitJobFn and ProjectorFn against boto3's floor, one run.

    .venv/bin/python -m bench.coldstart [--runs 9]

Each command runs in a fresh interpreter (`python -c`), all interleaved round by round with the
floor `import boto3; boto3.client("dynamodb")`, the order rotating each round after one discarded
warm-up round (bench/api.py's `cold_init`); medians of wall and of the child's CPU time. A
function's cold init is what Lambda's init and its first request pay before any work: importing
the handler and building its dependencies (settings, clients). Target: at most 1.3x the floor.
SubmitJobFn's handler module is `producers.submit.handler` after the producers' reshaping,
`producers.submit` before; the first that imports is measured. Then, for each function, the
modules that cost most on its path (`python -X importtime`, cumulative, one fresh run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Final

from bench.api import FLOOR, ROOT, TARGET_RATIO, Timing, cold_init
from bench.common import fake_aws_environment, print_table, verdict

ENV: Final = {
    "JOBS_TABLE_NAME": "Jobs-bench",
    "EVENT_BUS_NAME": "jobs-bench",
    "STAGE": "dev",
    "AWS_LAMBDA_FUNCTION_NAME": "",  # not in Lambda: nothing warms a connection at import
}


def submit_module() -> str:
    """SubmitJobFn's handler module in this checkout."""
    for name in ("producers.submit.handler", "producers.submit"):
        probe = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, env=_env(), check=False
        )
        if probe.returncode == 0:
            return name
    raise SystemExit("SubmitJobFn's handler imports neither as producers.submit.handler nor producers.submit")


def _env() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONDONTWRITEBYTECODE": "1"}


def commands() -> dict[str, str]:
    """The floor and each function's cold init."""
    submit = submit_module()
    return {
        "floor": FLOOR,
        "GetJobFn": "import api.handler as h; h.dependencies()",
        "ProjectorFn": "import projector.handler as h; h.dependencies()",
        "SubmitJobFn": f"import {submit} as h; getattr(h, 'dependencies', lambda: None)()",
    }


def costliest(code: str, count: int = 6) -> list[tuple[str, float]]:
    """The imports that cost most (cumulative ms, `python -X importtime`), a level below the handler."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    costs: list[tuple[str, float]] = []
    for line in result.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        depth = (len(parts[2]) - len(parts[2].lstrip()) - 1) // 2
        name = parts[2].strip()
        # The handler's own imports (depth 1), and what dependencies() imports later (depth 0).
        if depth == 1 or (depth == 0 and not name.startswith(("api", "projector", "producers"))):
            costs.append((name, int(parts[1]) / 1000))
    return sorted(costs, key=lambda item: -item[1])[:count]


def main(argv: list[str] | None = None) -> int:
    """Print the cold-init table; the exit status is 0 (timings are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per command (at least 3)")
    args = parser.parse_args(argv)
    fake_aws_environment()
    os.environ.update(ENV)
    load = os.getloadavg()[0]
    named = commands()
    medians: dict[str, Timing] = cold_init(named, max(args.runs, 3))
    floor = medians["floor"]
    rows = []
    for name, timing in medians.items():
        wall, cpu = timing.wall / floor.wall, timing.cpu / floor.cpu
        rows.append(
            [
                name if name != "floor" else "floor: import boto3; boto3.client('dynamodb')",
                f"{timing.wall:.3f}",
                f"{wall:.2f}",
                f"{timing.cpu:.3f}",
                f"{cpu:.2f}",
                ""
                if name == "floor"
                else f"{verdict(wall <= TARGET_RATIO)} / {verdict(cpu <= TARGET_RATIO)}",
            ]
        )
    print_table(
        f"Cold init (import + dependencies(), fresh interpreters, median of {max(args.runs, 3)} interleaved; "
        f"load average {load:.1f} at start; target <= {TARGET_RATIO}x floor)",
        ["function", "wall s", "x floor", "cpu s", "x floor", "target wall / cpu"],
        rows,
    )
    print_table(
        "What costs most on each path (python -X importtime, cumulative ms, one run)",
        ["function", "imports (ms)"],
        [
            [name, ", ".join(f"{module} {ms:.0f}" for module, ms in costliest(code))]
            for name, code in named.items()
            if name != "floor"
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
