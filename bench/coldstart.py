"""Benchmark: the cold init of GetJobFn, SubmitJobFn and ProjectorFn against boto3's floor, one run.

    .venv/bin/python -m bench.coldstart [--runs 9] [--submit-steps 7] [--compiled]

Each command runs in a fresh interpreter (`python -c`), all interleaved round by round with the
floor `import boto3; boto3.client("dynamodb")`, the order rotating each round after one discarded
warm-up round (bench/api.py's `cold_init`); medians of wall and of the child's CPU time. A
function's cold init is what Lambda's init and its first request pay before any work: importing
the handler and building its dependencies (settings, clients). Target: at most 1.3x the floor.
SubmitJobFn's handler module is `producers.submit.handler` after the producers' reshaping,
`producers.submit` before; the first that imports is measured. Then, for each function, the
modules that cost most on its path (`python -X importtime`, cumulative, one fresh run).
A cold POST waits for SubmitJobFn's init and its first request: the row "+ first POST" adds one
keyed submission (four requests, to a loopback endpoint answering every DynamoDB and EventBridge
request at once: `bench.common.null_aws`), and `--submit-steps N` prints what each layer of its
path adds, cumulatively, N runs each.

Our own modules are imported as the checkout holds them: from source when it has no
`__pycache__` (as here, where `PYTHONDONTWRITEBYTECODE` is set). A Lambda zip built by
`make build-*` ships them byte-compiled; `--compiled` runs every command in a byte-compiled
copy of the packages instead, as Lambda imports them.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bench.api import FLOOR, ROOT, TARGET_RATIO, Timing, cold_init
from bench.common import fake_aws_environment, null_aws, print_table, verdict

ENV: Final = {
    "JOBS_TABLE_NAME": "Jobs-bench",
    "EVENT_BUS_NAME": "jobs-bench",
    "STAGE": "dev",
    "AWS_LAMBDA_FUNCTION_NAME": "",  # not in Lambda: nothing warms a connection at import
}


# One keyed POST /v1/jobs (API Gateway REST proxy event, Cognito claims), answered 202.
FIRST_POST_EVENT: Final = {
    "resource": "/v1/jobs",
    "path": "/v1/jobs",
    "httpMethod": "POST",
    "headers": {"Content-Type": "application/json", "Idempotency-Key": "bench-1"},
    "requestContext": {
        "httpMethod": "POST",
        "path": "/v1/jobs",
        "resourcePath": "/v1/jobs",
        "stage": "bench",
        "authorizer": {"claims": {"sub": "bench-user"}},
    },
    "body": json.dumps({"model": "fal-ai/kling-video/v2/master/text-to-video", "input": {"prompt": "a fox"}}),
    "isBase64Encoded": False,
}
FIRST_POST: Final = (
    "import io, sys, types; "
    "context = types.SimpleNamespace(function_name='submit', function_version='1', memory_limit_in_mb=256, "
    "invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:submit', aws_request_id='r1', "
    "get_remaining_time_in_millis=lambda: 30000); "
    "out, sys.stdout = sys.stdout, io.StringIO(); "  # the metrics' EMF line
    f"answer = h.lambda_handler({FIRST_POST_EVENT!r}, context); "
    "sys.stdout = out; "
    "assert answer['statusCode'] == 202, answer"
)
# SubmitJobFn's path layer by layer, each on top of the floor and the layers before it.
SUBMIT_STEPS: Final = (
    ("+ pydantic (BaseModel, Field)", "from pydantic import BaseModel, Field"),
    (
        "+ contract models (jobstatus.events, jobstatus.requests)",
        "import jobstatus.events, jobstatus.requests",
    ),
    (
        "+ ProducerSettings.from_env() (a plain pydantic model)",
        "import producers.settings as s; s.ProducerSettings.from_env()",
    ),
    (
        "+ Powertools Logger, Metrics, APIGatewayRestResolver",
        "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics(); "
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; APIGatewayRestResolver()",
    ),
    ("+ Powertools idempotency", "import aws_lambda_powertools.utilities.idempotency"),
    ("+ the handler's own modules (import producers.submit.handler)", "import producers.submit.handler as h"),
    ("+ dependencies() (EventBridge and DynamoDB clients)", "h.dependencies()"),
    ("+ first POST (Idempotency-Key: 3 DynamoDB requests, 1 PutEvents)", FIRST_POST),
)


def with_endpoint(code: str, endpoint: str) -> str:
    """`code` run with every AWS client on `endpoint` (set before any client is built)."""
    return f"import os; os.environ['AWS_ENDPOINT_URL'] = {endpoint!r}; {code}"


def submit_steps(runs: int, endpoint: str, cwd: Path = ROOT) -> None:
    """Print what each layer of SubmitJobFn's cold POST adds (cumulative commands, interleaved)."""
    steps, code = {"floor": FLOOR}, FLOOR
    for name, step in SUBMIT_STEPS:
        code = f"{code}; {step}"
        steps[name] = with_endpoint(code, endpoint)
    medians = cold_init(steps, runs, cwd)
    floor, rows, before = medians["floor"], [], medians["floor"]
    for name, timing in medians.items():
        rows.append(
            [
                name,
                f"{timing.wall:.3f}",
                f"{timing.wall / floor.wall:.2f}",
                f"{(timing.wall - before.wall) * 1000:+.0f}",
                f"{timing.cpu:.3f}",
                f"{timing.cpu / floor.cpu:.2f}",
                f"{(timing.cpu - before.cpu) * 1000:+.0f}",
            ]
        )
        before = timing
    print_table(
        f"SubmitJobFn's cold POST layer by layer (cumulative, median of {runs} interleaved)",
        ["on top of the floor", "wall s", "x floor", "adds ms", "cpu s", "x floor", "adds ms"],
        rows,
    )
    submit_layers(runs, endpoint, cwd)


def submit_layers(runs: int, endpoint: str, cwd: Path = ROOT) -> None:
    """Print each layer's own CPU, timed between marks inside one fresh interpreter per run.

    The cumulative commands above difference two medians of whole processes (each with its own
    start and exit), so on a busy machine a layer can come out negative; a mark after each layer
    in one process times the layer itself. The floor's row is from the process's start (CPU time
    counts the interpreter's start-up); no row has the exit, which Lambda does not wait for.
    """
    program = "import json, time; marks = []\n"
    for name, step in (("floor", FLOOR), *SUBMIT_STEPS):
        program += f"{step}\nmarks.append(({name!r}, time.process_time(), time.perf_counter()))\n"
    program += "print(json.dumps(marks))\n"
    cpu: dict[str, list[float]] = {}
    for round_ in range(-1, runs):  # one warm-up round (page cache), discarded
        result = subprocess.run(
            [sys.executable, "-c", with_endpoint(program, endpoint)],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"the layer program failed: {result.stderr[-2000:]}")
        before = 0.0
        for name, cpu_seconds, _ in json.loads(result.stdout.splitlines()[-1]):
            if round_ >= 0:
                cpu.setdefault(name, []).append(cpu_seconds - before)
            before = cpu_seconds
    own = {name: statistics.median(values) for name, values in cpu.items()}
    floor, total, rows = own["floor"], 0.0, []
    for name, seconds in own.items():
        total += seconds
        rows.append([name, f"{seconds * 1000:.1f}", f"{seconds / floor:.2f}", f"{total / floor:.2f}"])
    print_table(
        f"SubmitJobFn's cold POST, each layer's own CPU (marks in one interpreter, median of {runs}; "
        "exit excluded)",
        ["layer", "cpu ms", "x floor", "cumulative x floor"],
        rows,
    )


@contextlib.contextmanager
def compiled_packages() -> Iterator[Path]:
    """A byte-compiled copy of this checkout's packages (every one but `tests`), as a Lambda zip has."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as directory:
        copy = Path(directory)
        for package in sorted(ROOT.iterdir()):
            if (package / "__init__.py").is_file() and package.name != "tests":
                ignore = shutil.ignore_patterns("__pycache__", "node_modules")
                shutil.copytree(package, copy / package.name, ignore=ignore)
        if not compileall.compile_dir(copy, quiet=1):
            raise SystemExit(f"byte-compiling the packages in {copy} failed")
        yield copy


def submit_module(cwd: Path = ROOT) -> str:
    """SubmitJobFn's handler module in this checkout."""
    for name in ("producers.submit.handler", "producers.submit"):
        probe = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=cwd, capture_output=True, env=_env(), check=False
        )
        if probe.returncode == 0:
            return name
    raise SystemExit("SubmitJobFn's handler imports neither as producers.submit.handler nor producers.submit")


def _env() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONDONTWRITEBYTECODE": "1"}


def commands(endpoint: str | None = None, cwd: Path = ROOT) -> dict[str, str]:
    """The floor and each function's cold init (and, given an endpoint, SubmitJobFn's first POST)."""
    submit = submit_module(cwd)
    named = {
        "floor": FLOOR,
        "GetJobFn": "import api.handler as h; h.dependencies()",
        "ProjectorFn": "import projector.handler as h; h.dependencies()",
        "SubmitJobFn": f"import {submit} as h; getattr(h, 'dependencies', lambda: None)()",
    }
    if endpoint is not None:
        named["SubmitJobFn + first POST"] = with_endpoint(f"{named['SubmitJobFn']}; {FIRST_POST}", endpoint)
    return named


def costliest(code: str, count: int = 6, cwd: Path = ROOT) -> list[tuple[str, float]]:
    """The imports that cost most (cumulative ms, `python -X importtime`), a level below the handler."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
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
    parser.add_argument(
        "--submit-steps", type=int, default=0, help="runs of SubmitJobFn's layer table (0: none)"
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="import our packages from a byte-compiled copy, as a Lambda zip ships them "
        "(default: as checked out)",
    )
    args = parser.parse_args(argv)
    fake_aws_environment()
    os.environ.update(ENV)
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        cwd = stack.enter_context(compiled_packages()) if args.compiled else ROOT
        endpoint = stack.enter_context(null_aws())
        named = commands(endpoint, cwd)
        medians: dict[str, Timing] = cold_init(named, max(args.runs, 3), cwd)
        if args.submit_steps:
            submit_steps(max(args.submit_steps, 3), endpoint, cwd)
        costs = {
            name: costliest(code, cwd=cwd)
            for name, code in named.items()
            if name != "floor" and "first POST" not in name
        }
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
    source = "byte-compiled" if args.compiled else "as checked out"
    print_table(
        f"Cold init (import + dependencies(), fresh interpreters, median of {max(args.runs, 3)} interleaved; "
        f"our packages {source}; load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
        f"target <= {TARGET_RATIO}x floor)",
        ["function", "wall s", "x floor", "cpu s", "x floor", "target wall / cpu"],
        rows,
    )
    print_table(
        "What costs most on each path (python -X importtime, cumulative ms, one run)",
        ["function", "imports (ms)"],
        [[name, ", ".join(f"{module} {ms:.0f}" for module, ms in cost)] for name, cost in costs.items()],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
