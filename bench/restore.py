"""Benchmark: how long `jobstatus local` takes at start to rebuild its Jobs table from the archive copy.

    .venv/bin/python -m bench.restore [--events 100000] [--seed 1]

Writes `--events` archived events (3-4 per job, as `bench.projector` makes them, each once, as
the archive holds them) to a temporary `archive.jsonl`, starts moto server in a process of its own
as the local stack does (dynalite with BENCH_DYNAMODB_ENGINE=dynalite), makes the template's Jobs table
and times `local.persistence.restore_jobs`, the stack's own restore: the rebuild's fold and
writer, batched like ProjectorFn. Then checks the table holds exactly the pure fold's items.
Exit status 1 when it does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bench.common import (
    create_jobs_table,
    dynamodb_client,
    dynamodb_engine_name,
    fake_aws_environment,
    print_table,
    scan_items,
)

ACCOUNT: Final = "123456789012"
JOBS_PER_MINUTE: Final = 60.0  # so the whole history lies in the last two days


@contextlib.contextmanager
def engine() -> Iterator[str]:
    """The engine the local stack runs: moto server in a process of its own, or dynalite."""
    from local.engines import Dynalite, MotoProcess

    with Dynalite() if dynamodb_engine_name() == "dynalite" else MotoProcess() as running:
        yield running.endpoint


def write_archive(path: Path, events: int, seed: int, now: datetime) -> tuple[int, dict[str, object]]:
    """`events` unique events as archive.jsonl lines (EventBridge envelopes); jobs and the pure fold."""
    from bench.projector import make_workload
    from jobstatus.events import DETAIL_TYPE
    from projector.fold import project

    workload = make_workload(round(events / 0.7) + 10, JOBS_PER_MINUTE, seed, now)
    unique = workload.events[:events]
    with path.open("w", encoding="utf-8") as out:
        for n, event in enumerate(unique):
            envelope = {
                "version": "0",
                "id": f"bench-{n}",
                "detail-type": DETAIL_TYPE,
                "source": "jobs.fal-invoker",
                "account": ACCOUNT,
                "time": datetime.fromisoformat(event.occurred_at).timestamp(),
                "region": "us-east-1",
                "resources": [],
                "detail": event.to_detail(),
            }
            out.write(json.dumps(envelope, separators=(",", ":")) + "\n")
    expected = project(unique, ttl_days=30, now=now.timestamp())
    return len(unique), dict(expected)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; 1 when the restored table is not the fold."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="archived events to restore")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    fake_aws_environment()

    from local.persistence import restore_jobs
    from ops.template import Template

    template = Template.read(Stage="bench")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as scratch, engine() as endpoint:
        path = Path(scratch) / "archive.jsonl"
        events, expected = write_archive(path, args.events, args.seed, now)
        client = dynamodb_client(endpoint)
        table = create_jobs_table(client, template)
        started = time.perf_counter()
        restored = restore_jobs(path, client, table, template)
        seconds = time.perf_counter() - started
        items = scan_items(client, table)
    same = items == expected
    print_table(
        f"Restore of the Jobs table at start from archive.jsonl, DynamoDB on {dynamodb_engine_name()}",
        ["events", "jobs", "skipped lines", "seconds", "events/s", "table = pure fold"],
        [
            [
                events,
                restored.jobs,
                len(restored.problems),
                f"{seconds:.1f}",
                f"{events / seconds:,.0f}",
                "yes" if same else "NO",
            ]
        ],
    )
    return 0 if same and restored.events == events else 1


if __name__ == "__main__":
    sys.exit(main())
