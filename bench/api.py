"""Benchmark: GetJobFn's request latency on DynamoDB Local, and its cold init against boto3's floor.

    .venv/bin/python bench/api.py [--requests 600] [--runs 5]

Latency: the handler called in-process with API Gateway REST proxy events (Cognito claims) on a
table the projector's `JobStore` filled: GET of an own job (200), the same with a matching
If-None-Match (304), and a list page (limit 20). Printed: p50, p99 and mean per request.

Cold init: fresh interpreters, each command run `--runs` times round-robin (median wall time):
`import api.handler` (what Lambda's init imports), the same plus `dependencies()` (settings and
the DynamoDB client, built on the first request), against `import boto3; boto3.client("dynamodb")`
in the same run. Target: cold init at most 1.3x that floor. Then what each import adds, step by
step, and what the imports left out would have cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    create_jobs_table,
    dynamodb_client,
    dynamodb_local,
    fake_aws_environment,
    print_table,
    verdict,
)

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
    ("+ boto3 DynamoDB client (the floor)", FLOOR),
    (
        "+ Powertools Logger, Metrics",
        "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics()",
    ),
    (
        "+ Powertools APIGatewayRestResolver",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; APIGatewayRestResolver()",
    ),
    ("+ api.settings (pydantic-settings)", "import api.settings; api.settings.ApiSettings()"),
    # The client is already built above: the handler's own modules only (dependencies() would build a second).
    ("+ api.core, api.store, api.handler", "import api.handler"),
)
# Left out of the handler; each measured on top of the full handler init.
LEFT_OUT: Final = (
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


def _run(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=os.environ.copy())
    return time.perf_counter() - started


def cold_init(commands: dict[str, str], runs: int) -> dict[str, float]:
    """Median wall seconds of each command in a fresh interpreter, run round-robin to share drift."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, code in commands.items():
            times[name].append(_run(code))
    return {name: statistics.median(values) for name, values in times.items()}


def report_cold_init(runs: int) -> bool:
    """Print the cold-init tables; whether the target is met."""
    cumulative, code = {}, ""
    for name, step in STEPS:
        code = f"{code}; {step}" if code and step != "pass" else step
        cumulative[name] = code
    handler_init = f"{HANDLER_INIT}"
    left_out = {name: f"{handler_init}; {extra}" for name, extra in LEFT_OUT}
    commands = {"floor": FLOOR, "import": HANDLER_IMPORT, "init": HANDLER_INIT, **cumulative, **left_out}
    medians = cold_init(commands, runs)

    floor = medians["floor"]
    met = medians["init"] <= TARGET_RATIO * floor
    print_table(
        f"GetJobFn cold init (fresh interpreter, median of {runs}; target <= {TARGET_RATIO}x floor)",
        ["command", "seconds", "x floor", "target"],
        [
            ["floor: import boto3; boto3.client('dynamodb')", f"{floor:.3f}", "1.00", ""],
            [
                "import api.handler",
                f"{medians['import']:.3f}",
                f"{medians['import'] / floor:.2f}",
                verdict(medians["import"] <= TARGET_RATIO * floor),
            ],
            [
                "import api.handler + dependencies() (settings, client)",
                f"{medians['init']:.3f}",
                f"{medians['init'] / floor:.2f}",
                verdict(met),
            ],
        ],
    )
    rows, previous = [], 0.0
    for name, _ in STEPS:
        rows.append([name, f"{medians[name]:.3f}", f"{(medians[name] - previous) * 1000:+.0f}"])
        previous = medians[name]
    print_table("What each import adds (cumulative, fresh interpreter)", ["step", "seconds", "adds ms"], rows)
    print_table(
        "Left out of the handler: what each would add to its cold init",
        ["import", "seconds", "adds ms"],
        [
            [name, f"{medians[name]:.3f}", f"{(medians[name] - medians['init']) * 1000:+.0f}"]
            for name in left_out
        ],
    )
    return met


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
    """Fill a table on DynamoDB Local through the projector's writer; time the handler's answers."""
    from api.core import CursorCodec
    from api.handler import Dependencies, handle
    from api.handler import dynamodb_client as api_client
    from api.settings import ApiSettings
    from api.store import JobReader
    from jobstatus.events import JobStatusChanged, utc_now
    from local.template import Template
    from projector.fold import coalesce
    from projector.store import JobStore

    with dynamodb_local() as endpoint:
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
        deps = Dependencies(settings, JobReader(api_client(), table), CursorCodec(settings.cursor_key()))
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
            "GetJobFn in-process on DynamoDB Local (ms per request)",
            ["request", "requests", "p50 ms", "p99 ms", "mean ms"],
            rows,
        )


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="GET requests timed (at least 500)")
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per cold-init command")
    args = parser.parse_args(argv)
    fake_aws_environment()
    report_latency(max(args.requests, 500))
    met = report_cold_init(max(args.runs, 5))
    print(f"cold init target (<= {TARGET_RATIO}x floor): {verdict(met)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
