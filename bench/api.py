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

First and second GET after a cold start (`--first-get-runs`, fresh interpreters): the first
request in a new container pays what init left to it (building the client, the TCP and TLS
handshakes, a collection going through the heap init left); with all of them done at init
(GetJobFn in Lambda: `lambda_init()`) the first GET should cost what the second does. Each child
times two GETs of the same own job through `lambda_handler`, after one of four inits: nothing
(the first GET builds the client and connects), the client only, the client and its connection,
and that followed by `gc.freeze()`. The endpoint is a loopback
HTTPS server (`tls_engine`): a real TLS 1.3 handshake with a self-signed certificate the child
trusts through AWS_CA_BUNDLE, so the client's handshake CPU (key exchange, certificate
verification) is real; the network is modelled by delays in the server: 2 RTT before the
handshake of each new connection (TCP's SYN/SYN-ACK and TLS 1.3's one round trip; on loopback
both take microseconds) and 1 RTT before each response (DynamoDB's own time is inside it, as in
bench/rtt.py's null engine; GetItem is answered with one job item). Why not bench/rtt.py's
`before-send` hook: it delays every request alike and cannot tell a new connection from a
reused one, which is the whole difference being measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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
        "pydantic + the shared settings model (jobstatus.settings.Settings.from_env())",
        "import jobstatus.settings; jobstatus.settings.Settings.from_env()",
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


def _run(code: str, env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"cold-init command failed ({child.returncode}): {code}")
    return wall, usage.ru_utime + usage.ru_stime


def cold_init(commands: dict[str, str], runs: int, cwd: Path = ROOT) -> dict[str, Timing]:
    """Median wall and CPU seconds of each command in fresh interpreters (run in `cwd`), interleaved.

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
            wall, cpu = _run(commands[name], env, cwd)
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


# --- the first GET after a cold start, TCP and TLS modelled ---------------------------------------

FIRST_GET_JOB: Final = "00000000-0000-4000-8000-00000000f1a5"
# What each variant's init does after `import api.handler as h` (Lambda's: `lambda_init()`).
FIRST_GET_INITS: Final = (
    ("nothing at init (the first GET builds the client, connects)", ""),
    ("client at init, connection on the first GET", "h.dependencies()"),
    ("client and connection at init", "h.warm_up(h.dependencies())"),
    ("the same, then gc.freeze() (GetJobFn in Lambda)", "h.lambda_init()"),
)


def _first_get_code(init: str) -> str:
    claims = {"sub": USER, "cognito:groups": "[users]", "token_use": "id"}
    event = {
        "resource": "/v1/jobs/{id}",
        "path": f"/v1/jobs/{FIRST_GET_JOB}",
        "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"id": FIRST_GET_JOB},
        "requestContext": {"requestId": "bench", "stage": "bench", "authorizer": {"claims": claims}},
        "body": None,
        "isBase64Encoded": False,
    }
    return "\n".join(
        [
            "import io, json, sys, time, types",
            "import api.handler as h",
            init or "pass",
            "context = types.SimpleNamespace(function_name='get', function_version='1',"
            " memory_limit_in_mb=256,"
            " invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:get', aws_request_id='r1',"
            " get_remaining_time_in_millis=lambda: 30000)",
            "out, sys.stdout = sys.stdout, io.StringIO()  # the metrics' EMF lines",
            "took = []",
            "for _ in range(2):",
            "    started = time.perf_counter()",
            f"    answer = h.lambda_handler({event!r}, context)",
            "    took.append(time.perf_counter() - started)",
            "    assert answer['statusCode'] == 200, answer",
            "sys.stdout = out",
            "print(json.dumps(took))",
        ]
    )


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files in `directory`."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dynamodb.bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class TlsEngine:
    """The loopback HTTPS endpoint of `tls_engine`: its URL, the CA file to trust, handshakes so far."""

    url: str
    ca_bundle: Path
    handshakes: list[float]


@contextlib.contextmanager
def tls_engine(rtt: float, item: dict[str, Any]) -> Iterator[TlsEngine]:
    """A DynamoDB stand-in over TLS on 127.0.0.1 answering GetItem with `item` (else empty).

    2 x `rtt` before each new connection's TLS handshake (TCP's and TLS 1.3's round trips),
    `rtt` before each response. Served from threads of this process, which only waits meanwhile.
    """
    import ssl
    import tempfile
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    handshakes: list[float] = []
    answer_item = json.dumps({"Item": item}).encode()

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            body = answer_item if operation == "GetItem" else b"{}"
            time.sleep(rtt)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            time.sleep(2 * rtt)  # the SYN/SYN-ACK and the TLS 1.3 round trip
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
            handshakes.append(time.time())
            super().finish_request(request, client_address)

    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        cert, key = _self_signed(Path(directory))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(cert, key)
        server = Server(("127.0.0.1", 0), Answer)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            yield TlsEngine(f"https://127.0.0.1:{server.server_address[1]}", cert, handshakes)
        finally:
            server.shutdown()
            server.server_close()


def _first_get_item() -> dict[str, Any]:
    from jobstatus.codec import to_item
    from jobstatus.events import JobStatusChanged, utc_now
    from projector.fold import project

    created = utc_now()
    event = JobStatusChanged(
        event_id="00000000-0000-4000-8000-000000000001",
        job_id=FIRST_GET_JOB,
        user_id=USER,
        status="COMPLETED",
        occurred_at=created,
        created_at=created,
        progress=100,
        output_url="https://cdn.example/first-get.mp4",
    )
    return to_item(project([event], ttl_days=30, now=time.time())[FIRST_GET_JOB])


def report_first_get(runs: int, rtt_ms: float) -> dict[str, tuple[float, float]]:
    """Print first and second GET latency (medians of `runs` fresh interpreters per init); return them."""
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in FIRST_GET_INITS}
    with tls_engine(rtt_ms / 1000, _first_get_item()) as engine:
        env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_ENDPOINT_URL_DYNAMODB": engine.url,
            "AWS_CA_BUNDLE": str(engine.ca_bundle),
            "JOBS_TABLE_NAME": "Jobs-bench",
            "STAGE": "dev",
            "AWS_LAMBDA_FUNCTION_NAME": "",  # each variant does its own init
        }
        for round_ in range(runs):
            shift = round_ % len(FIRST_GET_INITS)
            for name, init in FIRST_GET_INITS[shift:] + FIRST_GET_INITS[:shift]:
                before = len(engine.handshakes)
                child = subprocess.run(
                    [sys.executable, "-c", _first_get_code(init)],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    raise SystemExit(f"first-GET child failed: {child.stderr[-2000:]}")
                first, second = json.loads(child.stdout.strip().splitlines()[-1])
                samples[name].append((first * 1000, second * 1000, len(engine.handshakes) - before))
    medians: dict[str, tuple[float, float]] = {}
    rows = []
    for name, values in samples.items():
        first = statistics.median(v[0] for v in values)
        second = statistics.median(v[1] for v in values)
        medians[name] = (first, second)
        rows.append(
            [
                name,
                f"{first:.1f}",
                f"{second:.1f}",
                f"{first - second:+.1f}",
                f"{max(v[0] for v in values):.1f}",
                str(max(v[2] for v in values)),
            ]
        )
    print_table(
        f"GetJobFn's first and second GET after a cold start (fresh interpreters, median of {runs}; "
        f"TLS 1.3 on loopback, modelled RTT {rtt_ms:g} ms: 2 RTT per new connection, 1 per request)",
        ["init", "1st GET ms", "2nd GET ms", "1st - 2nd", "1st max ms", "TLS handshakes"],
        rows,
    )
    return medians


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
    parser.add_argument("--first-get-runs", type=int, default=9, help="fresh interpreters per first-GET init")
    parser.add_argument(
        "--rtt-ms", type=float, default=5.0, help="modelled round trip of the first-GET table"
    )
    parser.add_argument("--only-first-get", action="store_true", help="only the first-GET table")
    args = parser.parse_args(argv)
    fake_aws_environment()
    report_first_get(max(args.first_get_runs, 3), args.rtt_ms)
    if args.only_first_get:
        return 0
    report_latency(max(args.requests, 500))
    wall, cpu = report_cold_init(max(args.runs, 5), max(args.step_runs, 1))
    print(
        f"cold init target (<= {TARGET_RATIO}x floor): {verdict(wall <= TARGET_RATIO)} by wall time "
        f"({wall:.2f}x), {verdict(cpu <= TARGET_RATIO)} by CPU time ({cpu:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
