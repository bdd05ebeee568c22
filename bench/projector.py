"""Benchmark: ProjectorFn's writes in flight together, one after another, and naive, at a modelled RTT.

    .venv/bin/python -m bench.projector [--events 3000] [--batch-size 100] [--rtt-ms 0,5]
        [--rebuild-events 100000] [--engine dynalite|moto] [--seed 1]

Deliveries (3-4 events per job, 30 % duplicates) in the order a replay delivers them, minute by
minute, shuffled within; SQS batches of 100 (about 35 jobs each). Each variant has its own client
(ProjectorFn's own `dynamodb_client()`), its own fresh table and its requests delayed by the
modelled round trip (bench/rtt.py: a botocore `before-send` hook that sleeps; why, there):
ProjectorFn with 16 and with 8 writes in flight, the same handler one write after another, and a
naive projector (one conditional UpdateItem per event). Batches go to the variants in turn, so the
machine's load hits all alike. Client CPU is `time.process_time()` of this process only: the
engine runs in its own (bench/rtt.py). Every table is checked against the pure fold.

Then: client CPU and requests per event by batch size (what the template's BatchSize costs),
where that CPU goes (a record's parsing, a write's building, one UpdateItem through botocore, each
alone: botocore's CPU per request x requests per event is the floor of CPU per event), one
UpdateItem's CPU by botocore stage (in a fresh process: `time.thread_time` around each stage,
about 1 % of overhead), batch time and GB-s per batch by Lambda memory size (modelled from the
measured CPU and RTT), and, in
fresh processes, the peak RSS of a projector batch and of a rebuild from a file (its events/s at
the modelled RTT too). Exit status 1 when a target that holds on any machine fails (no reads,
requests = distinct jobs per batch, items = fold); timings are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from bench.common import (
    RequestCounter,
    create_jobs_table,
    dynamodb_client,
    fake_aws_environment,
    print_table,
    scan_items,
    verdict,
)
from bench.rtt import RoundTrip, dynamodb_engine

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from jobstatus.events import JobStatusChanged
    from projector.store import JobStore

TARGET_FLOOR_SHARE: Final = 0.35  # batch wall <= this x (writes x RTT) at the modelled RTT
TARGET_P99_MS: Final = 120.0
TARGET_CPU_MS: Final = 0.3  # client CPU per event, batches of 100
MEMORY_SIZES: Final = (256, 512, 1024, 1769)
FULL_VCPU_MB: Final = 1769  # Lambda gives about one vCPU per 1,769 MB, proportionally less below
DUPLICATE_SHARE: Final = 0.30
TTL_DAYS: Final = 30
ACCOUNT: Final = "123456789012"
SENSITIVITY_RATES: Final = (1, 2, 8, 16, 32)  # and the run's own rate
MEAN_JOB_MINUTES: Final = (10.5 + 180) / 60  # queue wait 1-20 s, then processing 60-300 s


# --- the workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Unique events, and the deliveries (with duplicates) in replay order."""

    events: list[JobStatusChanged]
    deliveries: list[JobStatusChanged]
    jobs: int


def make_workload(deliveries: int, jobs_per_minute: float, seed: int, now: datetime) -> Workload:
    """Jobs arriving at `jobs_per_minute` (Poisson), each QUEUED, PROCESSING (plus a progress
    update for half of them) and COMPLETED or FAILED within 1-5 minutes; duplicates make up 30 %
    of the deliveries. Delivered as a replay delivers: by the minute, shuffled within it.
    """
    from jobstatus.events import JobStatusChanged, format_timestamp

    rng = random.Random(seed)
    unique_target = round(deliveries * (1 - DUPLICATE_SHARE))
    events: list[JobStatusChanged] = []
    clock = now - timedelta(days=2)
    jobs = 0
    while len(events) < unique_target:
        clock += timedelta(seconds=rng.expovariate(jobs_per_minute / 60))
        jobs += 1
        job_id, user_id, created = f"bench-{jobs:06d}", f"user-{rng.randrange(500)}", clock
        started = created + timedelta(seconds=rng.uniform(1, 20))
        ended = started + timedelta(seconds=rng.uniform(60, 300))
        steps: list[tuple[str, datetime, dict[str, Any]]] = [
            ("QUEUED", created, {}),
            ("PROCESSING", started, {"progress": 0, "started_at": format_timestamp(started)}),
        ]
        if rng.random() < 0.5:
            steps.append(
                (
                    "PROCESSING",
                    started + (ended - started) / 2,
                    {"progress": 50, "started_at": format_timestamp(started)},
                )
            )
        if rng.random() < 0.9:
            done = {
                "progress": 100,
                "started_at": format_timestamp(started),
                "output_url": f"https://cdn.example.com/{job_id}.mp4",
                "result": {"seconds": 5, "fps": 24, "seed": rng.randrange(1 << 30)},
                "metrics": {"falLatencyMs": round((ended - started).total_seconds() * 1000)},
            }
            steps.append(("COMPLETED", ended, done))
        else:
            failure = {"code": "FAL_TIMEOUT", "message": "no result within the deadline", "retryable": True}
            steps.append(("FAILED", ended, {"started_at": format_timestamp(started), "error": failure}))
        for status, moment, fields in steps:
            events.append(
                JobStatusChanged(
                    event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    job_id=job_id,
                    user_id=user_id,
                    status=status,
                    occurred_at=format_timestamp(moment),
                    created_at=format_timestamp(created),
                    **fields,
                )
            )
    duplicates = [events[rng.randrange(len(events))] for _ in range(deliveries - len(events))]
    delivered = events + duplicates
    minute = {id(e): e.occurred_at[:16] for e in events}  # "2026-11-20T07:20": the replay's interval
    keyed = sorted(((minute[id(e)], rng.random(), n) for n, e in enumerate(delivered)))
    return Workload(events, [delivered[n] for _, _, n in keyed], jobs)


def coalesced_share(jobs_per_minute: float, seed: int, batch_size: int) -> float:
    """Requests per event a coalescing projector sends for a workload at this arrival rate."""
    workload = make_workload(5_000, jobs_per_minute, seed, datetime.now(UTC))
    batches = [
        workload.deliveries[n : n + batch_size] for n in range(0, len(workload.deliveries), batch_size)
    ]
    return sum(len({e.job_id for e in batch}) for batch in batches) / len(workload.deliveries)


def sqs_batches(deliveries: Sequence[JobStatusChanged], batch_size: int) -> Iterator[dict[str, Any]]:
    """The SQS events Lambda gives ProjectorFn: bodies are replayed EventBridge events."""
    from jobstatus.events import DETAIL_TYPE, SOURCE_FAL_INVOKER, SOURCE_SUBMIT

    for start in range(0, len(deliveries), batch_size):
        records = []
        for event in deliveries[start : start + batch_size]:
            body: dict[str, Any] = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": DETAIL_TYPE,
                "source": SOURCE_SUBMIT if event.status == "QUEUED" else SOURCE_FAL_INVOKER,
                "account": ACCOUNT,
                "time": event.occurred_at[:19] + "Z",
                "region": "us-east-1",
                "resources": [],
                "detail": event.to_detail(),
                "replay-name": "bench",
            }
            message_id = str(uuid.uuid4())
            records.append(
                {
                    "messageId": message_id,
                    "receiptHandle": message_id,
                    "body": json.dumps(body),
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": "0",
                        "SenderId": "AIDAEVENTS",
                        "ApproximateFirstReceiveTimestamp": "0",
                    },
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs-bench-projector",
                    "awsRegion": "us-east-1",
                }
            )
        yield {"Records": records}


# --- the projectors ------------------------------------------------------------------------

Projector = Callable[[dict[str, Any]], list[str]]  # an SQS event -> the messageIds not applied


def naive_projector(client: DynamoDBClient, table: str) -> Projector:
    """Parse each record and send its event's conditional UpdateItem: one request per event."""
    from jobstatus.events import JobStatusChanged
    from projector.fold import JobBatch, is_expired
    from projector.store import JobStore

    store = JobStore(client, table, TTL_DAYS)

    def project(event: dict[str, Any]) -> list[str]:
        now = time.time()
        for record in event["Records"]:
            job_event = JobStatusChanged.from_detail(json.loads(record["body"])["detail"])
            if not is_expired(job_event, TTL_DAYS, now):
                store.write(JobBatch(job_event.job_id, job_event, (record["messageId"],)))
        return []

    return project


def projector_fn(pool: Executor | None) -> Callable[[DynamoDBClient, str], Projector]:
    """ProjectorFn's handler with its dependencies injected (this client, this table, this pool)."""

    def make(client: DynamoDBClient, table: str) -> Projector:
        from projector.handler import ProjectorDeps, handle
        from projector.store import JobStore

        deps = ProjectorDeps(store=JobStore(client, table, TTL_DAYS), ttl_days=TTL_DAYS, pool=pool)

        def project(event: dict[str, Any]) -> list[str]:
            response = handle(event, None, deps)  # `handle` reads nothing from the context
            return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

        return project

    return make


def lambda_client(endpoint: str, rtt: float) -> DynamoDBClient:
    """ProjectorFn's own client (`projector.handler.dynamodb_client`) on `endpoint`, RTT modelled."""
    from projector.handler import dynamodb_client as projector_client

    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    try:
        client = projector_client()
    finally:
        del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    return cast("DynamoDBClient", RoundTrip(rtt).attach(client))


@dataclass
class Run:
    """One projector's pass over the deliveries: per-batch wall and client CPU seconds."""

    name: str
    rtt: float
    projector: Projector
    client: DynamoDBClient
    table: str
    counter: RequestCounter
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    deliveries: int = 0
    failed: int = 0

    def feed(self, batch: dict[str, Any]) -> None:
        """Project one batch, timing it (wall, and this process's CPU: the engine is elsewhere)."""
        before = self.counter.total
        cpu, wall = time.process_time(), time.perf_counter()
        self.failed += len(self.projector(batch))
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)
        self.writes.append(self.counter.total - before)
        self.deliveries += len(batch["Records"])

    @property
    def events_per_second(self) -> float:
        return self.deliveries / sum(self.walls)

    @property
    def cpu_ms_per_event(self) -> float:
        return sum(self.cpus) * 1000 / self.deliveries

    @property
    def requests_per_event(self) -> float:
        return self.counter.total / self.deliveries

    @property
    def floor_share(self) -> float:
        """Batch wall over the sequential floor (its writes x RTT), mean over batches."""
        if self.rtt <= 0:
            return float("nan")
        return statistics.fmean(w / (n * self.rtt) for w, n in zip(self.walls, self.writes, strict=True) if n)


def interleave(
    variants: Sequence[tuple[str, Callable[[DynamoDBClient, str], Projector]]],
    endpoint: str,
    rtt: float,
    batches: Sequence[dict[str, Any]],
) -> list[Run]:
    """Every variant over the same batches, batch by batch, each going first in turn."""
    # Two batches first, into scratch tables: imports, connection pools, the engine's JIT.
    for name, make in variants:
        scratch = start_run(name, make, endpoint, rtt)
        for batch in batches[:2]:
            scratch.feed(batch)
    runs = [start_run(name, make, endpoint, rtt) for name, make in variants]
    for n, batch in enumerate(batches):
        shift = n % len(runs)
        for one in runs[shift:] + runs[:shift]:
            one.feed(batch)
    return runs


def _events_of(batch: dict[str, Any]) -> list[JobStatusChanged]:
    from jobstatus.events import JobStatusChanged

    return [JobStatusChanged.from_detail(json.loads(r["body"])["detail"]) for r in batch["Records"]]


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def distinct_jobs(batches: Sequence[dict[str, Any]]) -> int:
    """The sum over batches of the jobs each holds: the fewest writes a projector can make."""
    return sum(len({json.loads(r["body"])["detail"]["jobId"] for r in b["Records"]}) for b in batches)


def start_run(name: str, make: Callable[[DynamoDBClient, str], Projector], endpoint: str, rtt: float) -> Run:
    """A projector on its own client (RTT modelled) and fresh table, its requests counted."""
    from ops.template import Template

    client = lambda_client(endpoint, rtt)
    table = create_jobs_table(dynamodb_client(endpoint), Template.read(Stage="bench"))
    return Run(name, rtt, make(client, table), client, table, RequestCounter().attach(client))


# --- where the CPU goes ----------------------------------------------------------------------


@dataclass(frozen=True)
class CpuParts:
    """Client CPU of one part of the work, in microseconds each (best of a few rounds)."""

    parse_us: float  # reading and validating one SQS record (`parse_record`)
    build_us: float  # building one job's UpdateItem (`JobStore.write` without the client)
    botocore_us: float  # one UpdateItem through ProjectorFn's botocore client, RTT 0


def _best_us(work: Callable[[], Any], count: int, rounds: int = 5) -> float:
    best = math.inf
    for _ in range(rounds):
        cpu = time.process_time()
        work()
        best = min(best, time.process_time() - cpu)
    return best * 1e6 / count


def capturing_store() -> tuple[JobStore, list[dict[str, Any]]]:
    """A JobStore whose client keeps each UpdateItem request it is given (and answers nothing)."""
    from projector.store import JobStore

    requests: list[dict[str, Any]] = []

    class Capture:
        def update_item(self, **request: Any) -> dict[str, Any]:
            requests.append(request)
            return {}

    return JobStore(cast("DynamoDBClient", Capture()), "Jobs-bench", TTL_DAYS), requests


def cpu_parts(batches: Sequence[dict[str, Any]], endpoint: str) -> CpuParts:
    """The three parts of a batch's CPU, each alone, on one thread (the null engine at RTT 0)."""
    from projector.fold import coalesce
    from projector.handler import parse_record

    records = [r for batch in batches for r in batch["Records"]]
    events = [parse_record(r) for r in records]
    shares = [
        share
        for n in range(0, len(events), 100)
        for share in coalesce([(str(i), e) for i, e in enumerate(events[n : n + 100])])
    ]
    capture, requests = capturing_store()
    parse = _best_us(lambda: [parse_record(r) for r in records], len(records))
    build = _best_us(lambda: [capture.write(share) for share in shares], len(shares))
    client = lambda_client(endpoint, 0.0)
    sample = requests[: min(len(requests), 300)]
    for request in sample[:20]:  # the connection, botocore's caches
        client.update_item(**request)
    botocore = _best_us(lambda: [client.update_item(**request) for request in sample], len(sample))
    return CpuParts(parse, build, botocore)


# botocore's stages, each timed on its own (`time.thread_time` around it); nested ones are
# subtracted: `Endpoint.create_request` runs the `request-created` handlers, signing among them.
BOTOCORE_STAGES: Final = (
    ("botocore.client", "BaseClient", "_make_api_call", "total"),
    ("botocore.httpsession", "URLLib3Session", "send", "HTTP send and receive (urllib3, http.client)"),
    ("botocore.signers", "RequestSigner", "sign", "SigV4 signing"),
    ("botocore.client", "BaseClient", "_convert_to_request_dict", "serialising the request"),
    ("botocore.endpoint", "Endpoint", "create_request", "other request-created handlers"),
    ("botocore.client", "BaseClient", "_resolve_endpoint_ruleset", "endpoint ruleset"),
    ("botocore.endpoint", "Endpoint", "prepare_request", "preparing the request"),
    ("botocore.parsers", "ResponseParser", "parse", "parsing the response"),
    ("botocore.endpoint", "Endpoint", "_needs_retry", "the retry check"),
)


def child_stages(endpoint: str) -> dict[str, float]:
    """In a fresh process (the stages' timers stay there): one thread's CPU per UpdateItem by
    botocore stage, in microseconds, over the requests of 30 batches of 100, 3 rounds."""
    import importlib

    from projector.fold import coalesce
    from projector.handler import parse_record

    capture, requests = capturing_store()
    for batch in sqs_batches(make_workload(3_000, 4.0, 1, datetime.now(UTC)).deliveries, 100):
        for share in coalesce([(r["messageId"], parse_record(r)) for r in batch["Records"]]):
            capture.write(share)
    client = lambda_client(endpoint, 0.0)
    for request in requests[:50]:  # the connection, botocore's caches
        client.update_item(**request)
    spent: dict[str, float] = dict.fromkeys((label for *_, label in BOTOCORE_STAGES), 0.0)

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def stage(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started

        return stage

    for module, owner, name, label in BOTOCORE_STAGES:
        cls = getattr(importlib.import_module(module), owner)
        setattr(cls, name, timed(getattr(cls, name), label))
    rounds = 3
    for _ in range(rounds):
        for request in requests:
            client.update_item(**request)
    per = {label: seconds * 1e6 / (len(requests) * rounds) for label, seconds in spent.items()}
    per["other request-created handlers"] -= per["SigV4 signing"]
    per["event hooks, retry context, the rest"] = per["total"] - sum(
        us for label, us in per.items() if label != "total"
    )
    return per


# --- memory and rebuild, in fresh processes ------------------------------------------------


def _rss_mb(field_name: str = "VmRSS") -> float:
    """This process's resident set (`VmRSS`) or its peak (`VmHWM`) in MB, from /proc.

    Not `getrusage`'s `ru_maxrss`: Linux carries it across `exec`, so a child started by a large
    parent would report the parent's size.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start `VmHWM` again from the current RSS (Linux: write 5 to clear_refs)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def child_batch(endpoint: str, batch_size: int) -> dict[str, float]:
    """In a fresh process: RSS before, and its peak while projecting 5 batches of `batch_size`."""
    from projector.handler import WRITERS

    deliveries = make_workload(batch_size * 5, 4.0, 3, datetime.now(UTC)).deliveries
    batches = list(sqs_batches(deliveries, batch_size))
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        run = start_run("rss", projector_fn(pool), endpoint, 0.0)
        run.feed(batches[0])  # imports, the client, the pool's threads
        before = _rss_mb()
        _reset_peak()
        for batch in batches[1:]:
            run.feed(batch)
        peak = _rss_mb("VmHWM")
    return {"rss_before_mb": before, "rss_after_mb": peak}


def write_events_file(events: int) -> str:
    """A temporary file of `events` deliveries, one bare detail a line; its path."""
    import tempfile

    workload = make_workload(events, 4.0, 5, datetime.now(UTC))
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as file:
        for event in workload.deliveries:
            file.write(json.dumps(event.to_detail()) + "\n")
        return file.name


def child_rebuild(endpoint: str, path: str, rtt: float) -> dict[str, float]:
    """In a fresh process: a rebuild from the file at `path` at `rtt`; events/s and peak RSS."""
    from ops.template import Template
    from projector.rebuild import FILE_WINDOW, apply_events
    from projector.store import JobStore

    table = create_jobs_table(dynamodb_client(endpoint), Template.read(Stage="bench"))
    store = JobStore(lambda_client(endpoint, rtt), table, TTL_DAYS)
    before = _rss_mb()
    _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    with open(path, encoding="utf-8") as lines:
        summary = apply_events(lines, store, batch_size=FILE_WINDOW, ttl_days=TTL_DAYS, now=time.time())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = _rss_mb("VmHWM")
    return {
        "events": summary.events,
        "seconds": seconds,
        "cpu": cpu,
        "requests": summary.requests,
        "ok": float(summary.ok),
        "rss_before_mb": before,
        "rss_after_mb": peak,
    }


def in_child(*args: str) -> dict[str, float]:
    """Run `python -m bench.projector --child ...` and read its JSON answer."""
    answer = subprocess.run(
        [sys.executable, "-m", "bench.projector", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return cast("dict[str, float]", json.loads(answer.stdout.splitlines()[-1]))


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run every variant over the same deliveries and print the tables; 1 if a correctness target fails."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3_000, help="deliveries, duplicates included")
    parser.add_argument("--batch-size", type=int, default=100, help="SQS batch size of the main table")
    parser.add_argument("--jobs-per-minute", type=float, default=4.0, help="job arrival rate in the history")
    parser.add_argument("--rtt-ms", default="0,5", help="modelled round trips, comma-separated")
    parser.add_argument(
        "--rebuild-events", type=int, default=100_000, help="events of the rebuild from a file"
    )
    parser.add_argument(
        "--engine", choices=("dynalite", "moto"), default="dynalite", help="engine the items are checked on"
    )
    parser.add_argument("--check-events", type=int, default=500, help="deliveries checked on the engine")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    fake_aws_environment()
    if args.child:
        kind, endpoint, *rest = args.child
        if kind == "batch":
            print(json.dumps(child_batch(endpoint, int(rest[0]))))
        elif kind == "stages":
            print(json.dumps(child_stages(endpoint)))
        else:
            print(json.dumps(child_rebuild(endpoint, rest[0], float(rest[1]))))
        return 0

    from ops.template import Template
    from projector.fold import project
    from projector.handler import WRITERS
    from projector.rebuild import FILE_WINDOW

    started = time.perf_counter()
    template_batch = batch_size_of_template(Template.read(Stage="bench"))
    rtts = [float(ms) / 1000 for ms in args.rtt_ms.split(",")]
    workload = make_workload(args.events, args.jobs_per_minute, args.seed, datetime.now(UTC))
    batches = list(sqs_batches(workload.deliveries, args.batch_size))
    fewest = distinct_jobs(batches)
    checks: list[tuple[str, str, bool]] = []

    variants_of: Callable[[Executor, Executor], list[tuple[str, Callable[[DynamoDBClient, str], Projector]]]]
    variants_of = lambda pool16, pool8: [  # noqa: E731
        (f"ProjectorFn, {WRITERS} in flight", projector_fn(pool16)),
        ("ProjectorFn, 8 in flight", projector_fn(pool8)),
        ("ProjectorFn, one after another", projector_fn(None)),
        ("naive, 1 write/event", naive_projector),
    ]
    load = os.getloadavg()[0]
    with (
        dynamodb_engine(args.engine) as (engine, real_endpoint),
        dynamodb_engine("null") as (_, endpoint),
        ThreadPoolExecutor(max_workers=WRITERS) as pool16,
        ThreadPoolExecutor(max_workers=8) as pool8,
    ):
        print(
            f"{len(workload.deliveries)} deliveries ({len(workload.events)} unique events) of "
            f"{workload.jobs} jobs, {len(batches)} SQS batches of {args.batch_size} "
            f"({fewest / len(batches):.1f} jobs per batch); load average {load:.1f} at start"
        )
        variants = variants_of(pool16, pool8)

        # The items, on a real engine: every variant's table equals the pure fold.
        checked = batches[: max(1, args.check_events // args.batch_size)]
        check_expected = project(
            [e for b in checked for e in _events_of(b)], ttl_days=TTL_DAYS, now=time.time()
        )
        check_runs = interleave(variants, real_endpoint, 0.0, checked)
        reader = dynamodb_client(real_endpoint)  # not counted: checking is no part of projecting
        check_rows = []
        for one in check_runs:
            items = scan_items(reader, one.table)
            same = sum(items.get(job_id) == item for job_id, item in check_expected.items())
            check_rows.append(
                [
                    one.name,
                    f"{one.events_per_second:,.0f}",
                    f"{percentile(one.walls, 0.5) * 1000:.1f}",
                    f"{one.counter.total}",
                    f"{one.counter.reads}",
                    f"{same}/{len(check_expected)}" + ("" if items == check_expected else " DIFFER"),
                ]
            )
            checks.append((f"{engine}: {one.name}: items = pure fold", f"{same}", items == check_expected))
            checks.append((f"{engine}: {one.name}: no reads", f"{one.counter.reads}", one.counter.reads == 0))
        print_table(
            f"The items on {engine} (its own process, RTT 0; its own time per request dominates these "
            f"timings): {sum(len(b['Records']) for b in checked)} deliveries",
            ["projector", "events/s", "batch p50 ms", "requests", "reads", "items = fold"],
            check_rows,
        )

        # The timings, on the null engine: the client and the modelled round trip alone.
        rows = []
        by_rtt: dict[float, list[Run]] = {}
        for rtt in rtts:
            runs = interleave(variants, endpoint, rtt, batches)
            by_rtt[rtt] = runs
            for one in runs:
                rows.append(
                    [
                        one.name,
                        f"{rtt * 1000:g}",
                        f"{one.events_per_second:,.0f}",
                        f"{percentile(one.walls, 0.5) * 1000:.1f}",
                        f"{percentile(one.walls, 0.99) * 1000:.1f}",
                        f"{one.cpu_ms_per_event:.3f}",
                        f"{one.requests_per_event:.3f}",
                        "-" if rtt <= 0 else f"{one.floor_share:.2f}",
                    ]
                )
                if one.name.startswith("ProjectorFn"):
                    checks.append(
                        (
                            f"{one.name} at {rtt * 1000:g} ms: requests = distinct jobs per batch",
                            f"{one.counter.total} for {fewest}",
                            one.counter.total == fewest,
                        )
                    )
        print_table(
            f"Projector, batches of {args.batch_size}, {len(workload.deliveries)} deliveries, null engine, "
            "modelled RTT (x floor: batch wall / (its writes x RTT), mean over batches)",
            [
                "projector",
                "RTT ms",
                "events/s",
                "batch p50 ms",
                "batch p99 ms",
                "client CPU ms/event",
                "requests/event",
                "x floor",
            ],
            rows,
        )

        # What the batch size costs per event (16 in flight, no RTT: CPU is what varies).
        sizes = sorted({10, template_batch, 100, 1000})
        size_rows, cpu_per_batch = [], {}
        size_share: dict[int, float] = {}
        for size in sizes:
            sized = list(sqs_batches(workload.deliveries, size))
            run = start_run(f"batch {size}", projector_fn(pool16), endpoint, 0.0)
            for batch in sized[:2]:
                run.feed(batch)
            run = start_run(f"batch {size}", projector_fn(pool16), endpoint, 0.0)
            for batch in sized:
                run.feed(batch)
            cpu_per_batch[size] = (statistics.fmean(run.cpus), statistics.fmean(run.writes))
            size_share[size] = run.requests_per_event
            size_rows.append(
                [
                    f"{size}" + (" (template)" if size == template_batch else ""),
                    f"{statistics.fmean(run.writes):.1f}",
                    f"{run.requests_per_event:.3f}",
                    f"{run.cpu_ms_per_event:.3f}",
                    f"{statistics.fmean(run.cpus) * 1000:.1f}",
                ]
            )
        print_table(
            "Client CPU by SQS batch size (same deliveries, 16 in flight, RTT 0)",
            ["batch size", "writes/batch", "requests/event", "client CPU ms/event", "CPU ms/batch"],
            size_rows,
        )

        # The floor: each part alone, and what they add up to per event at each batch size.
        parts = cpu_parts(batches, endpoint)
        print_table(
            "Where the CPU goes (one thread, RTT 0, best of 5): per record, per write, per UpdateItem "
            f"through botocore; load average {os.getloadavg()[0]:.1f}",
            ["part", "client CPU us", "per event at 10 / 100 / 1,000 a batch (ms)"],
            [
                ["read and validate a record (parse_record)", f"{parts.parse_us:.0f}", ""],
                ["build a job's UpdateItem (JobStore.write, no client)", f"{parts.build_us:.0f}", ""],
                ["one UpdateItem through botocore (ProjectorFn's client)", f"{parts.botocore_us:.0f}", ""],
                [
                    "sum: record + (build + botocore) x requests/event",
                    "",
                    " / ".join(
                        f"{(parts.parse_us + (parts.build_us + parts.botocore_us) * share) / 1000:.3f}"
                        for share in (size_share[10], size_share[100], size_share[1000])
                    ),
                ],
                [
                    "botocore alone: UpdateItem x requests/event",
                    "",
                    " / ".join(
                        f"{parts.botocore_us * share / 1000:.3f}"
                        for share in (size_share[10], size_share[100], size_share[1000])
                    ),
                ],
            ],
        )

        # botocore's part by stage, in a fresh process (its timers must not touch the runs above).
        stages = in_child("stages", endpoint)
        total_us = stages.pop("total")
        print_table(
            "One UpdateItem through botocore by stage (fresh process, one thread, RTT 0, "
            f"thread CPU around each stage); load average {os.getloadavg()[0]:.1f}",
            ["stage", "client CPU us", "share", "ms per event at 100 a batch"],
            [
                [label, f"{us:.0f}", f"{us / total_us:.0%}", f"{us * size_share[100] / 1000:.3f}"]
                for label, us in sorted(stages.items(), key=lambda item: -item[1])
            ]
            + [["total", f"{total_us:.0f}", "100%", f"{total_us * size_share[100] / 1000:.3f}"]],
        )

        # Lambda: about one vCPU per 1,769 MB, proportionally less below; one Python thread uses
        # at most one. In flight: the batch takes the longer of its CPU and its waves of writes.
        rtt_model = max(rtts)
        sizing = []
        for size in sorted({template_batch, 100}):
            cpu, writes = cpu_per_batch[size]
            for memory in MEMORY_SIZES:
                share = min(1.0, memory / FULL_VCPU_MB)
                sequential = cpu / share + writes * rtt_model
                in_flight = max(cpu / share, math.ceil(writes / WRITERS) * rtt_model) + cpu / share / max(
                    1.0, writes
                )
                sizing.append(
                    [
                        f"{size}",
                        f"{memory}",
                        f"{share:.2f}",
                        f"{sequential * 1000:.0f}",
                        f"{sequential * memory / 1024:.4f}",
                        f"{in_flight * 1000:.0f}",
                        f"{in_flight * memory / 1024:.4f}",
                    ]
                )
        print_table(
            "ProjectorFn by memory size, modelled from the measured CPU per batch and "
            f"RTT {rtt_model * 1000:g} ms",
            [
                "batch size",
                "MB",
                "vCPU",
                "sequential ms",
                "sequential GB-s",
                "in flight ms",
                "in flight GB-s",
            ],
            sizing,
        )

        batch_rss = in_child("batch", endpoint, str(args.batch_size))
        path = write_events_file(args.rebuild_events)
        try:
            rebuild = in_child("rebuild", endpoint, path, str(rtt_model))
        finally:
            os.unlink(path)
    rebuild_rate = rebuild["events"] / rebuild["seconds"]
    print_table(
        "Memory (peak RSS of a fresh process) and rebuild from a file",
        ["what", "RSS before MB", "peak RSS during MB", "events/s", "requests/event", "client CPU ms/event"],
        [
            [
                f"projector, 4 batches of {args.batch_size} (after a first)",
                f"{batch_rss['rss_before_mb']:.0f}",
                f"{batch_rss['rss_after_mb']:.0f}",
                "",
                "",
                "",
            ],
            [
                f"rebuild, {rebuild['events']:,.0f} events, window {FILE_WINDOW:,}, "
                f"RTT {rtt_model * 1000:g} ms",
                f"{rebuild['rss_before_mb']:.0f}",
                f"{rebuild['rss_after_mb']:.0f}",
                f"{rebuild_rate:,.0f}",
                f"{rebuild['requests'] / rebuild['events']:.3f}",
                f"{rebuild['cpu'] * 1000 / rebuild['events']:.3f}",
            ],
        ],
    )
    checks.append(("rebuild: every line applied", "", rebuild["ok"] == 1.0))

    target_rtt = max(rtts)
    ours = by_rtt[target_rtt][0]
    at_zero = by_rtt[min(rtts)][0]
    timing = [
        (
            f"batch wall <= {TARGET_FLOOR_SHARE}x (writes x RTT) at {target_rtt * 1000:g} ms",
            f"{ours.floor_share:.2f}x",
            ours.floor_share <= TARGET_FLOOR_SHARE,
        ),
        (
            f"batch p99 <= {TARGET_P99_MS:g} ms",
            f"{percentile(ours.walls, 0.99) * 1000:.0f} ms",
            percentile(ours.walls, 0.99) * 1000 <= TARGET_P99_MS,
        ),
        (
            f"client CPU <= {TARGET_CPU_MS} ms/event (batches of {args.batch_size})",
            f"{at_zero.cpu_ms_per_event:.3f} ms",
            at_zero.cpu_ms_per_event <= TARGET_CPU_MS,
        ),
        ("rebuild >= 2,500 events/s", f"{rebuild_rate:,.0f}", rebuild_rate >= 2500),
    ]
    print_table(
        "Targets",
        ["target", "measured", "verdict"],
        [[t, m, verdict(ok)] for t, m, ok in checks + timing],
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    # Exit 1 only for what must hold on any machine; timings depend on the machine's load.
    return 0 if all(ok for _, _, ok in checks) else 1


def batch_size_of_template(template: Any) -> int:
    """ProjectorFn's BatchSize in the template."""
    from projector.rebuild import batch_size_of

    return batch_size_of(template)


if __name__ == "__main__":
    raise SystemExit(main())
