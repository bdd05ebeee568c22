"""Benchmark: GetJobFn's request latency on a local engine, and its cold init against boto3's floor.

    .venv/bin/python -m bench.api [--requests 600] [--runs 15] [--step-runs 5]

Latency: the handler called in-process with API Gateway REST proxy events (Cognito claims) on a
table the projector's `JobStore` filled: GET of an own job (200), the same with a matching
If-None-Match (304), and a list page (limit 20). Printed: p50, p99 and mean per request.

Cold init: fresh interpreters (`python -c`), one per run. Headline: `import api.handler` (what
Lambda's init imports) and the same plus `dependencies()` (settings and the DynamoDB client, built
before the first request is answered: the real cold start), against `import boto3;
boto3.client("dynamodb")` in the same run. Target: cold init at most 1.3x that floor. Fair on a
shared machine: every command runs the same number of times, interleaved round by round (the
order rotating each round, after one discarded warm-up round), and the table gives medians of
both wall time and the child's CPU time (user + system, which other processes' load disturbs
far less). The children run with PYTHONDONTWRITEBYTECODE=1, so (unless something else left a
`__pycache__` in the repository) our own modules compile from source on every run, as they do
in Lambda: its task root is read-only and `sam build` ships no .pyc for them.
Then, fewer runs: what each import on GetJobFn's path adds, step by step, and what the imports
it does without would add to it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.common import (
    create_jobs_table,
    dynamodb_client,
    fake_aws_environment,
    print_table,
    verdict,
)
from bench.rtt import dynamodb_engine

ROOT: Final = Path(__file__).resolve().parent.parent
TARGET_RATIO: Final = 1.3
USER: Final = "bench-user-sub"
JOBS: Final = 100

FLOOR: Final = "import boto3; boto3.client('dynamodb')"
HANDLER_IMPORT: Final = "import api.handler"
HANDLER_INIT: Final = "import api.handler; api.handler.dependencies()"

# Each step adds to the one before: what the handler's imports cost, one by one.
STEPS: Final = (
    ("interpreter (python -c pass)", "pass"),
    (
        "+ botocore DynamoDB client (GetJobFn's; no boto3)",
        "from botocore.session import Session; Session().create_client('dynamodb')",
    ),
    (
        "+ Powertools Logger, Metrics",
        "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()",
    ),
    (
        "+ Powertools APIGatewayRestResolver",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; APIGatewayRestResolver()",
    ),
    ("+ api.settings (ApiSettings.from_env())", "import api.settings; api.settings.ApiSettings.from_env()"),
    # The client is already built above: the handler's own modules only (dependencies() would build a second).
    ("+ api.core, api.store, api.handler", "import api.handler"),
)
# Left out of the handler; each measured on top of the full handler init.
LEFT_OUT: Final = (
    # Only the import: the handler builds its one client either way.
    ("import boto3 (for boto3.client)", "import boto3"),
    ("jobstatus.codec (imports boto3)", "import jobstatus.codec"),
    (
        "pydantic-settings (jobstatus.settings.Settings())",
        "import jobstatus.settings; jobstatus.settings.Settings()",
    ),
    ("jobstatus.events (pydantic models)", "import jobstatus.events"),
    (
        "resolver enable_validation=True",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
        "APIGatewayRestResolver(enable_validation=True)",
    ),
    ("Powertools Tracer()", "from aws_lambda_powertools import Tracer; Tracer()"),
)


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --- cold init ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Medians over fresh interpreters: wall seconds, and the child's CPU seconds (user + system)."""

    wall: float
    cpu: float


def _run(code: str, env: dict[str, str]) -> tuple[float, float]:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"cold-init command failed ({child.returncode}): {code}")
    return wall, usage.ru_utime + usage.ru_stime


def cold_init(commands: dict[str, str], runs: int) -> dict[str, Timing]:
    """Median wall and CPU seconds of each command in fresh interpreters, interleaved.

    Every command runs once per round; the order rotates each round, so no command always runs
    first or right after another; one warm-up round (page cache) is discarded.
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    names = list(commands)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(-1, runs):
        shift = max(round_, 0) % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = _run(commands[name], env)
            if round_ >= 0:
                walls[name].append(wall)
                cpus[name].append(cpu)
    return {name: Timing(statistics.median(walls[name]), statistics.median(cpus[name])) for name in names}


def _row(name: str, timing: Timing, floor: Timing, *, target: bool = True) -> list[str]:
    wall_ratio, cpu_ratio = timing.wall / floor.wall, timing.cpu / floor.cpu
    return [
        name,
        f"{timing.wall:.3f}",
        f"{wall_ratio:.2f}",
        f"{timing.cpu:.3f}",
        f"{cpu_ratio:.2f}",
        f"{verdict(wall_ratio <= TARGET_RATIO)} / {verdict(cpu_ratio <= TARGET_RATIO)}" if target else "",
    ]


def _adds(timing: Timing, base: Timing) -> list[str]:
    return [
        f"{timing.wall:.3f}",
        f"{(timing.wall - base.wall) * 1000:+.0f}",
        f"{timing.cpu:.3f}",
        f"{(timing.cpu - base.cpu) * 1000:+.0f}",
    ]


def report_cold_init(runs: int, step_runs: int) -> tuple[float, float]:
    """Print the cold-init tables; the real cold start's wall and CPU ratios to the floor."""
    load = os.getloadavg()[0]
    medians = cold_init({"floor": FLOOR, "import": HANDLER_IMPORT, "init": HANDLER_INIT}, runs)
    floor, init = medians["floor"], medians["init"]
    print_table(
        f"GetJobFn cold init (fresh interpreters, median of {runs} interleaved; load average {load:.1f} "
        f"at start; target <= {TARGET_RATIO}x floor)",
        ["command", "wall s", "x floor", "cpu s", "x floor", "target wall / cpu"],
        [
            _row("floor: import boto3; boto3.client('dynamodb')", floor, floor, target=False),
            _row("import api.handler", medians["import"], floor),
            _row("import api.handler + dependencies() (real cold start)", init, floor),
        ],
    )

    cumulative, code = {}, ""
    for name, step in STEPS:
        code = f"{code}; {step}" if code and step != "pass" else step
        cumulative[name] = code
    left_out = {name: f"{HANDLER_INIT}; {extra}" for name, extra in LEFT_OUT}
    parts = cold_init({"init": HANDLER_INIT, **cumulative, **left_out}, step_runs)
    rows, previous = [], Timing(0.0, 0.0)
    for name, _ in STEPS:
        rows.append([name, *_adds(parts[name], previous)])
        previous = parts[name]
    print_table(
        f"What each import adds (cumulative, fresh interpreters, median of {step_runs})",
        ["step", "wall s", "adds ms", "cpu s", "adds cpu ms"],
        rows,
    )
    print_table(
        f"Left out of the handler: what each would add to its cold init (median of {step_runs})",
        ["import", "wall s", "adds ms", "cpu s", "adds cpu ms"],
        [["(the handler's init)", *_adds(parts["init"], parts["init"])]]
        + [[name, *_adds(parts[name], parts["init"])] for name in left_out],
    )
    return init.wall / floor.wall, init.cpu / floor.cpu


# --- latency ------------------------------------------------------------------------------------


def _timed(call: Callable[[], dict[str, Any]], expected: int, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        if response["statusCode"] != expected:
            raise SystemExit(f"unexpected answer {response['statusCode']}: {response.get('body')}")
    return samples


def report_latency(requests: int) -> None:
    """Fill a table on the bench engine (bench/rtt.py) with the projector's writer; time the answers."""
    from api.core import CursorCodec
    from api.handler import Dependencies, handle
    from api.handler import dynamodb_client as api_client
    from api.settings import ApiSettings
    from api.store import JobReader
    from jobstatus.events import JobStatusChanged, utc_now
    from ops.template import Template
    from projector.fold import coalesce
    from projector.store import JobStore

    with dynamodb_engine() as (engine, endpoint):
        writer = dynamodb_client(endpoint)
        table = create_jobs_table(writer, Template.read(Stage="bench"))
        created = utc_now()
        events = [
            JobStatusChanged(
                event_id=f"00000000-0000-4000-8000-{n:012d}",
                job_id=f"job-{n:04d}",
                user_id=USER,
                status="COMPLETED",
                occurred_at=created,
                created_at=created,
                progress=100,
                output_url=f"https://cdn.example/job-{n:04d}.mp4",
                result={"seconds": 5.0, "resolution": "1080p"},
            )
            for n in range(JOBS)
        ]
        store = JobStore(writer, table, 30)
        for batch in coalesce((str(n), event) for n, event in enumerate(events)):
            store.write(batch)

        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        settings = ApiSettings(jobs_table_name=table)
        deps = Dependencies(settings, JobReader(api_client(), table), CursorCodec(settings.cursor_key(None)))
        claims = {"sub": USER, "cognito:groups": "[users]", "token_use": "id"}

        def event(
            path: str, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
        ) -> Any:
            return {
                "resource": "/v1/jobs/{id}" if path.count("/") == 3 else "/v1/jobs",
                "path": path,
                "httpMethod": "GET",
                "headers": {"Accept": "application/json", **(headers or {})},
                "multiValueHeaders": {
                    "Accept": ["application/json"],
                    **{k: [v] for k, v in (headers or {}).items()},
                },
                "queryStringParameters": query,
                "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
                "pathParameters": None,
                "requestContext": {"requestId": "bench", "stage": "bench", "authorizer": {"claims": claims}},
                "body": None,
                "isBase64Encoded": False,
            }

        counter = iter(range(10**9))

        def get() -> dict[str, Any]:
            return handle(event(f"/v1/jobs/job-{next(counter) % JOBS:04d}"), None, deps)

        etag = handle(event("/v1/jobs/job-0000"), None, deps)["multiValueHeaders"]["ETag"][0]

        def not_modified() -> dict[str, Any]:
            return handle(event("/v1/jobs/job-0000", {"If-None-Match": etag}), None, deps)

        def page() -> dict[str, Any]:
            return handle(event("/v1/jobs", query={"limit": "20"}), None, deps)

        _timed(get, 200, 50)  # warm-up: connections, code paths
        rows = []
        for name, call, expected, count in (
            ("GET /v1/jobs/{id} -> 200", get, 200, requests),
            ("GET /v1/jobs/{id} If-None-Match -> 304", not_modified, 304, max(100, requests // 3)),
            ("GET /v1/jobs?limit=20 -> 200", page, 200, max(100, requests // 3)),
        ):
            samples = _timed(call, expected, count)
            rows.append(
                [
                    name,
                    str(count),
                    f"{percentile(samples, 0.50):.2f}",
                    f"{percentile(samples, 0.99):.2f}",
                    f"{statistics.fmean(samples):.2f}",
                ]
            )
        print_table(
            f"GetJobFn in-process on {engine} (its own process; ms per request)",
            ["request", "requests", "p50 ms", "p99 ms", "mean ms"],
            rows,
        )


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="GET requests timed (at least 500)")
    parser.add_argument(
        "--runs", type=int, default=15, help="fresh interpreters per headline cold-init command (at least 5)"
    )
    parser.add_argument(
        "--step-runs", type=int, default=5, help="fresh interpreters per step and left-out command"
    )
    args = parser.parse_args(argv)
    fake_aws_environment()
    report_latency(max(args.requests, 500))
    wall, cpu = report_cold_init(max(args.runs, 5), max(args.step_runs, 1))
    print(
        f"cold init target (<= {TARGET_RATIO}x floor): {verdict(wall <= TARGET_RATIO)} by wall time "
        f"({wall:.2f}x), {verdict(cpu <= TARGET_RATIO)} by CPU time ({cpu:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
