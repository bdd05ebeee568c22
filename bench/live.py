"""Benchmark: live updates and read after submit on the local stack (DESIGN §4, §4b).

    .venv/bin/python -m bench.live [--connections 1,100,1000] [--changes 30] [--submits 20]
                                   [--windows template,0] [--lag-seconds 45] [--lag-rate 100]
                                   [--lag-jobs 200] [--lag-windows template,1:100] [--only-lag]

Runs `jobstatus local` (as `make run` does) in a process of its own, then measures from this one:

- write -> message: N WebSocket clients (`websockets.asyncio`, one thread for all) each subscribe
  to a job id of their own; `--changes` times one of those jobs is written to the Jobs table as the
  projector writes it (`JobStore`), and the clock runs until that client has the `job` message
  (stream poller -> NotifierFn -> local `@connections` -> socket). Goal p99 <= 1 s.
- 202 -> readable: `--submits` jobs POSTed one after another, each `Location` polled every 20 ms
  until it answers 200. Goal p99 <= 1 s. Its cost: Jobs table writes per event (the Jobs table's
  stream records of those jobs over their events in the archive), for each ProjectorFn
  `MaximumBatchingWindowInSeconds` in `--windows` (`template` = as template.yaml says).
- event -> visible (`--lag-seconds`, 0 skips it): JobStatusChanged events put on the stack's bus
  (PutEvents, `--lag-rate`/10 entries a call every 0.1 s, up to 8 calls waiting at once; a tick
  while 8 still wait is skipped, so the table gives events/s offered and put) for many jobs, each
  job a PROCESSING event every `--lag-jobs`/rate seconds with a later occurredAt; the clock runs
  from PutEvents' answer until `GET /v1/jobs/{id}` answers that event's updatedAt (or a later
  one). GETs would load the stack they measure (one process), so only a few probe jobs (a fixed
  share of the events) are polled, one after another, 50 ms between sweeps; the lag includes up to
  one sweep and its pause.
  Its cost, over all the run's jobs: Jobs table writes (their stream records) and ProjectorFn
  invocations per event. ProjectorFn's requests are its writes plus the conditional writes a
  stale event fails (one per job per batch), which no stream record shows; the local stack
  turns its metrics off, so they are not counted. Each setting in `--lag-windows` (`W` or
  `W:BatchSize`, or `template`) runs on a stack of its own, one after another in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import print_table, verdict

GOAL_P99_SECONDS = 1.0
ROOT = Path(__file__).resolve().parents[1]
JOBSTATUS = Path(sys.executable).parent / "jobstatus"
MODEL = "fal-ai/kling-video/v2/master/text-to-video"
_PROJECTOR_WINDOW = re.compile(r"(  ProjectorFn:\n(?:.*\n)*?\s+MaximumBatchingWindowInSeconds: )(\d+)")
_PROJECTOR_BATCH = re.compile(r"(  ProjectorFn:\n(?:.*\n)*?\s+BatchSize: )(\d+)")
LAG_PROBES = 8  # jobs polled for the event -> visible lag
LAG_SWEEP_PAUSE = 0.05  # between sweeps of the probes: the GETs load the process they measure
PUBLISHERS = 8  # PutEvents calls in flight at once


@dataclass
class Stack:
    """A running `jobstatus local` process."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    described: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, user: str) -> str:
        from local.auth import SigningKey, issue_token

        return issue_token(SigningKey.load_or_create(self.data_dir), user)

    def aws(self, service: str, endpoint_name: str = "AWS_ENDPOINT_URL_DYNAMODB") -> Any:
        import boto3

        endpoint = self.described["endpoints"][endpoint_name]
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint,
            region_name=self.described["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@contextmanager
def local_stack(window: str, engine: str | None = None) -> Iterator[Stack]:
    """`jobstatus local` on a free port with ProjectorFn's batching window `window` (or the template's).

    `window` may be `W:B`: the window W seconds and BatchSize B.
    """
    import httpx

    from local.engines import free_port

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        arguments = [str(JOBSTATUS), "local", "--port", str(port := free_port()), "--data-dir", str(data_dir)]
        arguments += ["--fal-latency", "0.5", "--fal-failure-rate", "0"]
        if engine is not None:
            arguments += ["--dynamodb-engine", engine]
        if window != "template":
            text = (ROOT / "template.yaml").read_text()
            seconds, _, batch = window.partition(":")
            changed = _PROJECTOR_WINDOW.sub(lambda m: m.group(1) + seconds, text, count=1)
            if batch:
                changed = _PROJECTOR_BATCH.sub(lambda m: m.group(1) + batch, changed, count=1)
            (Path(folder) / "template.yaml").write_text(changed)
            arguments += ["--template", str(Path(folder) / "template.yaml")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        with (Path(folder) / "local.log").open("wb") as log:
            process = subprocess.Popen(arguments, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((Path(folder) / "local.log").read_text(errors="replace"))
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/local/stack", timeout=1)
                    if answer.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            yield Stack(data_dir, port, process, answer.json())
        except BaseException:
            lines = (Path(folder) / "local.log").read_text(errors="replace").splitlines()
            print("jobstatus local, its last lines:", *lines[-40:], sep="\n", file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max, in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


async def _write_to_message(stack: Stack, connections: int, changes: int) -> list[float]:
    from websockets.asyncio.client import connect

    from jobstatus.events import JobStatusChanged, format_timestamp
    from projector.fold import coalesce
    from projector.store import JobStore

    user = f"bench-{connections}"
    url = f"ws://127.0.0.1:{stack.port}/v1/stream?token={stack.token(user)}"
    run = f"{time.time_ns():x}"
    sockets: list[Any] = []

    async def subscribed(n: int) -> Any:
        ws = await connect(url, open_timeout=60, max_queue=None)
        await ws.send(json.dumps({"action": "subscribe", "jobIds": [f"bench-{run}-{n}"]}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert answer["type"] == "subscribed", answer
        return ws

    try:
        # 10 at a time, as a page load spreads them: each $connect and subscribe is a StreamFn
        # invocation writing to moto's DynamoDB, which serves one request at a time.
        for first in range(0, connections, 10):
            sockets += await asyncio.gather(
                *(subscribed(n) for n in range(first, min(connections, first + 10)))
            )
        writer = JobStore(stack.aws("dynamodb"), stack.described["tables"]["JobsTable"], 30)
        created = datetime.now(UTC)
        rnd = random.Random(7)
        latencies = []
        for change in range(-1, changes):  # change -1 warms NotifierFn up (its cold start) and is not counted
            n = rnd.randrange(connections)
            event = JobStatusChanged(
                event_id=f"00000000-0000-4000-8000-{change + 1:012d}",
                job_id=f"bench-{run}-{n}",
                user_id=user,
                status="PROCESSING",
                occurred_at=format_timestamp(created + timedelta(seconds=change + 2)),
                created_at=format_timestamp(created),
                progress=(change + 1) % 101,
            )
            started = time.perf_counter()
            for batch_ in coalesce([("m", event)]):
                await asyncio.to_thread(writer.write, batch_)
            message = json.loads(await asyncio.wait_for(sockets[n].recv(), 30))
            if change >= 0:
                latencies.append(time.perf_counter() - started)
            assert message["job"]["jobId"] == f"bench-{run}-{n}", message
        return latencies
    finally:
        for first in range(0, len(sockets), 10):  # each close is a $disconnect: 10 at a time too
            await asyncio.gather(*(ws.close() for ws in sockets[first : first + 10]), return_exceptions=True)


def submit_to_readable(stack: Stack, submits: int) -> tuple[list[float], int, list[str]]:
    """Seconds from each 202 to the first 200 on its Location; the 404s seen; the job ids."""
    import httpx

    lags, not_found, ids = [], 0, []
    headers = {"Authorization": f"Bearer {stack.token('bench-reader')}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        for n in range(submits):
            key = {"Idempotency-Key": f"bench-{time.time_ns()}"}
            for _ in range(3):  # a 503 (publish deadline on a busy machine) is retried with the same key
                answer = client.post(
                    "/v1/jobs", json={"model": MODEL, "input": {"prompt": f"bench {n}"}}, headers=key
                )
                if answer.status_code not in {409, 503}:
                    break
                time.sleep(float(answer.headers.get("Retry-After", "1")))
            accepted = time.perf_counter()
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["jobId"])
            while (read := client.get(answer.headers["Location"])).status_code != 200:
                assert read.status_code == 404, read.text
                not_found += 1
                time.sleep(0.02)
            lags.append(time.perf_counter() - accepted)
    return lags, not_found, ids


def writes_per_event(stack: Stack, ids: list[str], timeout: float = 60) -> tuple[int, int]:
    """Jobs table writes (its stream records) and events (archived) of the jobs `ids`, once all ended."""
    import httpx

    headers = {"Authorization": f"Bearer {stack.token('bench-reader')}"}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            statuses = [client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in ids]
            if all(s in {"COMPLETED", "FAILED"} for s in statuses):
                break
            time.sleep(0.5)
    time.sleep(1.5)  # the archive copy is synced every 0.5 s
    wanted = set(ids)
    writes = _stream_writes(stack, lambda job_id: job_id in wanted)
    if writes is None:
        raise SystemExit("the Jobs table has no stream to count its writes from")
    lines = (stack.data_dir / "archive.jsonl").read_text().splitlines()
    events = sum(1 for line in lines if any(job_id in line for job_id in wanted))
    return writes, events


@dataclass
class LagRun:
    """One event -> visible run: the probes' lags, and what the whole run cost."""

    lags: list[float]
    events: int  # put on the bus
    offered: int  # put, or skipped because PUBLISHERS calls were still waiting for the bus
    writes: int | None
    invocations: int
    unseen: int
    publish_seconds: float


def _projector_invocations(stack: Stack) -> int:
    import httpx

    described = httpx.get(f"{stack.url}/local/stack", timeout=30).json()
    return int(described["functions"]["ProjectorFn"]["poller"]["invocations"])


def _stream_writes(stack: Stack, counted: Callable[[str], bool]) -> int | None:
    """Jobs table stream records of the items whose jobId is `counted` (None: no stream)."""
    streams = stack.aws("dynamodbstreams")
    table = stack.aws("dynamodb").describe_table(TableName=stack.described["tables"]["JobsTable"])["Table"]
    if "LatestStreamArn" not in table:
        return None
    writes = 0
    for shard in streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=table["LatestStreamArn"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            writes += sum(1 for r in records if counted(r["dynamodb"]["Keys"]["jobId"]["S"]))
            iterator = page.get("NextShardIterator") if records else None
    return writes


def event_to_visible(stack: Stack, rate: int, seconds: float, jobs: int) -> LagRun:
    """Put `rate` status events/s for `seconds` on the bus; the probes' publish -> GET-visible lags."""
    import threading
    import uuid

    import httpx

    from jobstatus.events import JobStatusChanged, format_timestamp

    user = "bench-lag"
    run = f"lag-{time.time_ns():x}-"
    ids = [f"{run}{uuid.uuid4()}" for _ in range(jobs)]
    probes = ids[:: max(1, jobs // LAG_PROBES)][:LAG_PROBES]
    created = datetime.now(UTC)
    events = stack.aws("events", "AWS_ENDPOINT_URL_EVENTBRIDGE")
    bus = stack.described["buses"]["JobsBus"]
    pending: dict[str, list[tuple[str, float]]] = {job_id: [] for job_id in probes}
    lags: list[float] = []
    lock = threading.Lock()
    done = threading.Event()
    invocations_before = _projector_invocations(stack)

    def poll() -> None:
        headers = {"Authorization": f"Bearer {stack.token(user)}"}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
            while True:
                with lock:
                    waiting = [job_id for job_id, due in pending.items() if due]
                if not waiting:
                    if done.is_set():
                        return
                    time.sleep(0.005)
                    continue
                time.sleep(LAG_SWEEP_PAUSE)
                for job_id in waiting:
                    answer = client.get(f"/v1/jobs/{job_id}")
                    seen = time.perf_counter()
                    if answer.status_code != 200:
                        continue
                    updated = answer.json()["updatedAt"]
                    with lock:
                        due = pending[job_id]
                        lags.extend(seen - published for occurred, published in due if occurred <= updated)
                        pending[job_id] = [(o, p) for o, p in due if o > updated]

    def put(entries: list[dict[str, str]], probed: list[tuple[str, str]]) -> None:
        answer = events.put_events(Entries=entries)
        published = time.perf_counter()
        assert answer.get("FailedEntryCount", 0) == 0, answer
        with lock:
            for job_id, occurred in probed:
                pending[job_id].append((occurred, published))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    sent, skipped, ticks, started, tick = 0, 0, 0, time.perf_counter(), 0.1
    per_tick = max(1, round(rate * tick))
    # The local bus answers a PutEvents in tens of ms (it fans out to the rules' targets and the
    # archive): calls overlap, as many producers' would.
    with ThreadPoolExecutor(max_workers=PUBLISHERS) as pool:
        calls: list[Any] = []
        while time.perf_counter() - started < seconds:
            ticks += 1
            time.sleep(max(0.0, started + ticks * tick - time.perf_counter()))
            if sum(1 for call in calls if not call.done()) >= PUBLISHERS:
                skipped += per_tick  # the bus is behind: this tick's events are not offered
                continue
            entries, probed = [], []
            for n in range(sent, sent + per_tick):
                job_id = ids[n % jobs]
                # Every event of a job is later than its last: occurredAt steps a millisecond per event.
                occurred = format_timestamp(created + timedelta(milliseconds=n))
                event = JobStatusChanged(
                    event_id=str(uuid.uuid4()),
                    job_id=job_id,
                    user_id=user,
                    status="PROCESSING",
                    occurred_at=occurred,
                    created_at=format_timestamp(created),
                    progress=min(99, n // jobs),
                )
                detail = event.model_dump_json(exclude_none=True)
                entries.append(
                    {
                        "Source": "jobs.fal-invoker",
                        "DetailType": "JobStatusChanged",
                        "Detail": detail,
                        "EventBusName": bus,
                    }
                )
                if job_id in pending:
                    probed.append((job_id, json.loads(detail)["occurredAt"]))
            calls.append(pool.submit(put, entries, probed))
            sent += len(entries)
        for call in calls:
            call.result()
    publish_seconds = time.perf_counter() - started
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if not any(pending.values()):
                break
        time.sleep(0.1)
    done.set()
    poller.join(30)
    with lock:
        unseen = sum(len(due) for due in pending.values())
    time.sleep(1.0)  # the last batches' stream records
    invocations = _projector_invocations(stack) - invocations_before
    return LagRun(
        lags,
        sent,
        sent + skipped,
        _stream_writes(stack, lambda job_id: job_id.startswith(run)),
        invocations,
        unseen,
        publish_seconds,
    )


def report_lag(settings: list[str], rate: int, seconds: float, jobs: int, engine: str) -> None:
    """The event -> visible table, one local stack per ProjectorFn setting."""
    rows, notes = [], []
    for setting in settings:
        with local_stack(setting, engine) as stack:
            result = event_to_visible(stack, rate, seconds, jobs)
        p50, p99, top = percentiles(result.lags) if result.lags else (float("nan"),) * 3
        window, _, batch = (setting if setting != "template" else _template_window()).partition(":")
        shown = f"{window} s, BatchSize {batch or _template_batch()}" + (
            " (template)" if setting == "template" else ""
        )
        rows.append(
            [
                shown,
                f"{result.offered / seconds:.0f} / {result.events / result.publish_seconds:.0f}",
                len(result.lags),
                f"{p50:.0f}",
                f"{p99:.0f}",
                f"{top:.0f}",
                result.unseen,
                "n/a" if result.writes is None else f"{result.writes / result.events:.3f}",
                f"{result.invocations / result.events:.3f}",
                f"{result.events / max(result.invocations, 1):.1f}",
                verdict(p99 <= GOAL_P99_SECONDS * 1000),
            ]
        )
        print(f"bench.live: event -> visible at {shown}: p50 {p50:.0f} ms, p99 {p99:.0f} ms", flush=True)
        if result.events < 0.9 * result.offered:
            notes.append(
                f"{shown}: the bus took {result.events} of {result.offered} events offered; the stack "
                "fell behind, so its lags are a backlog, not the window's"
            )
    print_table(
        f"Event on the bus -> visible to GET /v1/jobs/{{id}} (jobstatus local; {rate} events/s for "
        f"{seconds:g} s over {jobs} jobs, {LAG_PROBES} of them polled)",
        [
            "ProjectorFn window, batch",
            "events/s offered / put",
            "lags",
            "p50 ms",
            "p99 ms",
            "max ms",
            "never seen",
            "writes/event",
            "batches/event",
            "events/batch",
            "p99 <= 1 s",
        ],
        rows,
    )
    for note in notes:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="1,100,1000", help="comma-separated connection counts")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--submits", type=int, default=20)
    parser.add_argument("--windows", default="template", help="ProjectorFn windows: template and/or seconds")
    parser.add_argument(
        "--lag-seconds", type=float, default=45, help="event -> visible run per setting; 0: none"
    )
    parser.add_argument("--lag-rate", type=int, default=100, help="status events per second")
    parser.add_argument("--lag-jobs", type=int, default=200, help="jobs the events are spread over")
    parser.add_argument(
        "--lag-windows", default="template,1:100", help="ProjectorFn settings: W or W:BatchSize"
    )
    parser.add_argument(
        "--lag-engine",
        default="moto",
        help="the local stack's DynamoDB engine (moto: dynalite has no stream)",
    )
    parser.add_argument("--only-lag", action="store_true", help="only the event -> visible table")
    args = parser.parse_args(argv)
    if args.lag_seconds > 0:
        report_lag(
            args.lag_windows.split(","), args.lag_rate, args.lag_seconds, args.lag_jobs, args.lag_engine
        )
    if args.only_lag:
        return
    live_rows, submit_rows = [], []
    for number, window in enumerate(args.windows.split(",")):
        with local_stack(window) as stack:
            # 202 -> readable first, on a quiet stack; then the connections of the first stack.
            lags, not_found, ids = submit_to_readable(stack, args.submits)
            writes, events = writes_per_event(stack, ids)
            p50, p99, top = percentiles(lags)
            shown = window if window != "template" else f"template ({_template_window()})"
            cost, met = f"{writes / max(events, 1):.2f} ({writes}/{events})", verdict(p99 <= 1000)
            submit_rows.append(
                [shown, len(lags), f"{p50:.0f}", f"{p99:.0f}", f"{top:.0f}", not_found, cost, met]
            )
            for connections in (int(c) for c in args.connections.split(",") if c and number == 0):
                started = time.monotonic()
                seconds = asyncio.run(_write_to_message(stack, connections, args.changes))
                p50, p99, top = percentiles(seconds)
                met, took = verdict(p99 <= 1000), f"{time.monotonic() - started:.0f}"
                live_rows.append(
                    [connections, len(seconds), f"{p50:.0f}", f"{p99:.0f}", f"{top:.0f}", met, took]
                )
                print(
                    f"bench.live: {connections} connections: p50 {p50:.0f} ms, p99 {p99:.0f} ms", flush=True
                )
    print_table(
        "POST 202 -> first 200 on its Location (jobstatus local), and Jobs table writes per event",
        [
            "projector window s",
            "jobs",
            "p50 ms",
            "p99 ms",
            "max ms",
            "404s seen",
            "writes/event",
            "p99 <= 1 s",
        ],
        submit_rows,
    )
    if live_rows:
        print_table(
            "Jobs table write -> job message at a subscribed client (jobstatus local)",
            ["connections", "changes", "p50 ms", "p99 ms", "max ms", "p99 <= 1 s", "run s"],
            live_rows,
        )


def _template_window() -> str:
    found = _PROJECTOR_WINDOW.search((ROOT / "template.yaml").read_text())
    return found.group(2) if found else "?"


def _template_batch() -> str:
    found = _PROJECTOR_BATCH.search((ROOT / "template.yaml").read_text())
    return found.group(2) if found else "?"


if __name__ == "__main__":
    main()
