"""Benchmark: live updates and read after submit on the local stack (DESIGN §4, §4b).

    .venv/bin/python -m bench.live [--connections 1,100,1000] [--changes 30] [--submits 20]
                                   [--windows template,0]

Runs `jobstatus local` (as `make run` does) in a process of its own, then measures from this one:

- write -> message: N WebSocket clients (`websockets.asyncio`, one thread for all) each subscribe
  to a job id of their own; `--changes` times one of those jobs is written to the Jobs table as the
  projector writes it (`JobStore`), and the clock runs until that client has the `job` message
  (stream poller -> NotifierFn -> local `@connections` -> socket). Goal p99 <= 1 s.
- 202 -> readable: `--submits` jobs POSTed one after another, each `Location` polled every 20 ms
  until it answers 200. Goal p99 <= 1 s. Its cost: Jobs table writes per event (the Jobs table's
  stream records of those jobs over their events in the archive), for each ProjectorFn
  `MaximumBatchingWindowInSeconds` in `--windows` (`template` = as template.yaml says).
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
from collections.abc import Iterator
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

    def aws(self, service: str) -> Any:
        import boto3

        endpoint = self.described["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"]
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint,
            region_name=self.described["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@contextmanager
def local_stack(window: str) -> Iterator[Stack]:
    """`jobstatus local` on a free port with ProjectorFn's batching window `window` (or the template's)."""
    import httpx

    from local.engines import free_port

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        arguments = [str(JOBSTATUS), "local", "--port", str(port := free_port()), "--data-dir", str(data_dir)]
        arguments += ["--fal-latency", "0.5", "--fal-failure-rate", "0"]
        if window != "template":
            text = (ROOT / "template.yaml").read_text()
            changed = _PROJECTOR_WINDOW.sub(lambda m: m.group(1) + window, text, count=1)
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
    streams = stack.aws("dynamodbstreams")
    table = stack.aws("dynamodb").describe_table(TableName=stack.described["tables"]["JobsTable"])["Table"]
    wanted, writes = set(ids), 0
    for shard in streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=table["LatestStreamArn"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = page.get("Records", [])
            writes += sum(1 for r in records if r["dynamodb"]["Keys"]["jobId"]["S"] in wanted)
            iterator = page.get("NextShardIterator") if records else None
    lines = (stack.data_dir / "archive.jsonl").read_text().splitlines()
    events = sum(1 for line in lines if any(job_id in line for job_id in wanted))
    return writes, events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="1,100,1000", help="comma-separated connection counts")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--submits", type=int, default=20)
    parser.add_argument("--windows", default="template", help="ProjectorFn windows: template and/or seconds")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    main()
