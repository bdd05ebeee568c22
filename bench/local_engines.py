"""Benchmark: what the local stack's engines cost per call, the inputs of its event -> visible lag.

    .venv/bin/python -m bench.local_engines [--depths 0,100,1000] [--writes 400] [--writers 10]

- moto's EventBridge and SQS in-process, as `jobstatus local` runs them, once as moto ships and once
  with `local.moto_tuning` installed, each in a fresh interpreter (the tuning is process-wide):
  a PutEvents of 10 JobStatusChanged entries to a bus whose rule targets one queue and whose
  archive keeps them, a SendMessage, and a ReceiveMessage of 10 with their 10 DeleteMessages,
  each with `--depths` messages already in the queue (the projector's backlog).
- the DynamoDB moto process of the local stack (`MotoProcess`, one request at a time): ProjectorFn's
  conditional UpdateItems (`JobStore.write`) from `--writers` threads; writes/s, and the server's
  CPU per write (its /proc times); with moto's DynamoDB as shipped and with `local.moto_tuning`'s
  DynamoDB pieces, twice each, interleaved.

Timings are best-of-3 medians on a shared machine: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import fake_aws_environment, print_table

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _moto_costs(tuned: bool, depths: list[int]) -> dict[str, float]:
    """Milliseconds per call of each operation at each depth, in this (fresh) interpreter."""
    fake_aws_environment()
    if tuned:
        from local.moto_tuning import install

        install()
    from moto.events.models import events_backends
    from moto.sqs.models import sqs_backends

    events, sqs = events_backends[ACCOUNT][REGION], sqs_backends[ACCOUNT][REGION]
    queue = sqs.create_queue("projector", VisibilityTimeout="60")
    events.create_event_bus("bus", None)
    pattern = json.dumps({"detail-type": ["JobStatusChanged"], "source": ["jobs.fal-invoker"]})
    events.put_rule(
        "status",
        event_pattern=pattern,
        event_bus_arn="bus",
        scheduled_expression=None,
        state="ENABLED",
        description=None,
        role_arn=None,
        tags=[],
    )
    events.put_targets("status", "bus", [{"Id": "projector", "Arn": queue.queue_arn}])
    events.create_archive("archive", events.event_buses["bus"].arn, "", pattern, "0")
    detail = {"jobId": "j", "userId": "u", "status": "PROCESSING", "occurredAt": "2026-01-01T00:00:00.000Z"}
    entry = {
        "Source": "jobs.fal-invoker",
        "DetailType": "JobStatusChanged",
        "EventBusName": "bus",
        "Detail": json.dumps(detail),
    }
    for _ in range(max(depths)):
        sqs.send_message("projector", "backlog")
    backlog = list(queue._messages)

    def at(depth: int) -> None:
        queue._messages = backlog[:depth]
        queue._pending_messages.clear()
        queue.deleted_messages.clear()
        for message in queue._messages:
            message.visible_at = 0.0

    def receive_and_delete() -> None:
        for message in sqs.receive_message("projector", 10, 0, 60):
            sqs.delete_message("projector", str(message.receipt_handle))

    operations: dict[str, Callable[[], object]] = {
        "PutEvents, 10 entries": lambda: events.put_events([entry] * 10),
        "SendMessage": lambda: sqs.send_message("projector", "m"),
        "ReceiveMessage 10 + 10 DeleteMessage": receive_and_delete,
    }
    costs: dict[str, float] = {}
    for depth in depths:
        for name, operation in operations.items():
            rounds = []
            for _ in range(3):
                spent = 0.0
                for _ in range(5):
                    at(depth)
                    started = time.perf_counter()
                    operation()
                    spent += time.perf_counter() - started
                rounds.append(spent / 5)
            costs[f"{name}|{depth}"] = min(rounds) * 1000
    return costs


def _in_fresh_interpreter(tuned: bool, depths: list[int]) -> dict[str, float]:
    child = ["--child", "tuned" if tuned else "plain", "--depths", ",".join(map(str, depths))]
    answer = subprocess.run(
        [sys.executable, "-m", "bench.local_engines", *child],
        check=True,
        capture_output=True,
        text=True,
    )
    costs: dict[str, float] = json.loads(answer.stdout.strip().splitlines()[-1])
    return costs


def _process_cpu(pid: int) -> float | None:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - read once
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dynamodb_writes(writes: int, writers: int, tuned: bool = True) -> tuple[float, float | None]:
    """ProjectorFn's UpdateItems on the local stack's DynamoDB moto process: writes/s, server CPU ms/write.

    `tuned=False`: that process with moto's DynamoDB as shipped (`local.moto_tuning`'s EventBridge
    and SQS pieces still installed, as before they had DynamoDB ones).
    """
    import boto3
    from botocore.config import Config

    from jobstatus.events import JobStatusChanged, format_timestamp
    from local.engines import MotoProcess
    from local.resources import create_tables
    from ops.template import Template
    from projector.fold import coalesce
    from projector.store import JobStore

    fake_aws_environment()
    template = Template.read(Stage="bench", CreateRestApi="true", CognitoUserPoolArn="arn:aws:cognito-idp:x")
    with MotoProcess(dynamodb_tuned=tuned) as moto:
        client = boto3.client("dynamodb", endpoint_url=moto.endpoint, config=Config(max_pool_connections=32))
        store = JobStore(client, create_tables(template, client)["JobsTable"], 30)
        jobs = [str(uuid.uuid4()) for _ in range(200)]
        created = datetime.now(UTC)

        def batch(n: int) -> Any:
            event = JobStatusChanged(
                event_id=str(uuid.uuid4()),
                job_id=jobs[n % len(jobs)],
                user_id="bench",
                status="PROCESSING",
                occurred_at=format_timestamp(created + timedelta(milliseconds=n)),
                created_at=format_timestamp(created),
                progress=1,
            )
            return next(iter(coalesce([("bench", event)])))

        for n in range(len(jobs)):  # every job exists: the writes update, as a live job's do
            store.write(batch(n))
        work = [batch(len(jobs) + n) for n in range(writes)]
        lock = threading.Lock()

        def writer() -> None:
            while True:
                with lock:
                    if not work:
                        return
                    one = work.pop()
                store.write(one)

        pid = moto._process.pid if moto._process is not None else 0
        cpu_before = _process_cpu(pid)
        started = time.perf_counter()
        threads = [threading.Thread(target=writer) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        cpu_after = _process_cpu(pid)
    server = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / writes * 1000
    return writes / seconds, server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="0,100,1000", help="messages already in the queue")
    parser.add_argument("--writes", type=int, default=400, help="UpdateItems on the DynamoDB moto process")
    parser.add_argument("--writers", type=int, default=10, help="threads writing (ProjectorFn's pollers)")
    parser.add_argument("--child", choices=["plain", "tuned"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    if args.child:
        print(json.dumps(_moto_costs(args.child == "tuned", depths)))
        return
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    plain, tuned = _in_fresh_interpreter(False, depths), _in_fresh_interpreter(True, depths)
    rows = []
    for key in plain:
        name, depth = key.split("|")
        rows.append(
            [name, depth, f"{plain[key]:.3f}", f"{tuned[key]:.3f}", f"{plain[key] / tuned[key]:.0f}x"]
        )
    print_table(
        "moto's EventBridge and SQS in-process (jobstatus local): ms per call",
        ["operation", "queue depth", "moto as shipped", "local.moto_tuning", "ratio"],
        rows,
    )
    rows = []
    for dynamodb_tuned in (False, True, False, True):  # interleaved: the machine's load moves
        per_second, server = dynamodb_writes(args.writes, args.writers, dynamodb_tuned)
        rows.append(
            [
                "local.moto_tuning" if dynamodb_tuned else "moto as shipped",
                args.writers,
                args.writes,
                f"{per_second:.0f}",
                "n/a" if server is None else f"{server:.2f}",
            ]
        )
    print_table(
        "The local stack's DynamoDB moto process: ProjectorFn's conditional UpdateItems",
        ["DynamoDB", "writers", "writes", "writes/s", "server CPU per write ms"],
        rows,
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
