"""What survives a restart of the local stack: the archive, queued messages, and so the Jobs table.

moto keeps them in memory: the archive is copied to `.local/archive.jsonl` as events arrive and the
Jobs table rebuilt from it at start (`restore_jobs`); queues are saved on a clean stop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from local.resources import QueueInfo
    from ops.template import Template
    from projector.rebuild import LineProblem

log = logging.getLogger(__name__)

ARCHIVE_FILE: Final = "archive.jsonl"
QUEUES_FILE: Final = "queues.jsonl"


def _moto_archive(account: str, region: str, name: str) -> Any:
    from moto.events.models import events_backends

    return events_backends[account][region].archives[name]


def _epoch(value: Any) -> Any:
    # moto keeps `time` as epoch seconds in the archive; a file written by hand may hold ISO text.
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


class ArchiveKeeper:
    """Mirrors one moto archive to a JSON-lines file and restores it from there."""

    def __init__(
        self, path: Path, archive_name: str, account: str = "123456789012", region: str = "us-east-1"
    ):
        self.path = path
        self._archive_name = archive_name
        self._account = account
        self._region = region
        self._synced = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = _moto_archive(self._account, self._region, self._archive_name).events
        return events

    def restore(self) -> int:
        """Put the file's events back into the (fresh) archive; how many."""
        if not self.path.exists():
            return 0
        restored = []
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    event["time"] = _epoch(event.get("time"))
                except (ValueError, TypeError) as error:
                    # The Jobs table's restore (`restore_jobs`) reports it to the user with its number.
                    log.info("%s line %d not put back into the archive: %s", self.path, number, error)
                    continue
                restored.append(event)
        with self._lock:
            events = self._events()
            events[:0] = restored
            self._synced = len(restored)
        return len(restored)

    def sync(self) -> int:
        """Append the events archived since the last sync (replayed copies left out); how many."""
        with self._lock:
            events = self._events()
            fresh = events[self._synced :]
            self._synced = len(events)
        originals = [e for e in fresh if "replay-name" not in e]
        if originals:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                for event in originals:
                    out.write(json.dumps(event, default=str, separators=(",", ":")) + "\n")
        return len(originals)

    def start(self, interval: float = 0.5) -> None:
        """Sync in the background every `interval` seconds."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sync()
                except Exception:
                    log.exception("could not copy the archive to %s", self.path)

        self._thread = threading.Thread(target=loop, name="archive-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop syncing, after a last sync."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.sync()


def _moto_queue_bodies(account: str, region: str, name: str) -> list[str]:
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[account][region].queues.get(name)
    return [message.body for message in list(queue._messages)] if queue is not None else []


def save_queues(
    queues: Iterable[QueueInfo], path: Path, account: str = "123456789012", region: str = "us-east-1"
) -> int:
    """Write every message of `queues` (visible or in flight) to `path`; how many.

    Read from moto's in-process backend, because SQS has no API that returns messages in flight
    (a record whose function failed waits out its visibility timeout) and those must survive too.
    """
    lines = [
        json.dumps({"queue": queue.logical_id, "body": body}) + "\n"
        for queue in queues
        for body in _moto_queue_bodies(account, region, queue.name)
    ]
    if lines:
        path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def restore_queues(sqs: SQSClient, queues: dict[str, QueueInfo], path: Path) -> int:
    """Send the messages saved in `path` back to their queues, then remove the file; how many."""
    if not path.exists():
        return 0
    restored = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            saved = json.loads(line)
            queue = queues.get(saved.get("queue", ""))
            if queue is None:
                log.warning("a saved message for unknown queue %s is dropped", saved.get("queue"))
                continue
            sqs.send_message(QueueUrl=queue.url, MessageBody=saved["body"])
            restored += 1
    path.unlink()
    return restored


DEFAULT_TTL_DAYS: Final = 30
# Events folded per write round at restore. ProjectorFn's batch (100) would spend about one write
# per event, since a job's events lie minutes apart in the archive; 10,000 events hold whole jobs,
# so the restore writes about once per job (4x fewer requests) with bounded memory.
RESTORE_BATCH_EVENTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class RestoredJobs:
    """What `restore_jobs` put back: jobs written, events read, and the lines it skipped."""

    jobs: int
    events: int
    problems: list[LineProblem]


def restore_jobs(path: Path, dynamodb: DynamoDBClient, table: str, template: Template) -> RestoredJobs:
    """Fold the archive copy at `path` into the Jobs table `table`, as `jobstatus rebuild --from-file` does.

    With the template's JobTtlDays, so the items are those the projector wrote (the fold gives
    the same item whatever the batching). A line that cannot be read or written is skipped and
    reported with its number; every other line is applied.
    """
    from projector.rebuild import apply_events
    from projector.store import JobStore

    ttl_days = int(template.parameters.get("JobTtlDays", DEFAULT_TTL_DAYS))
    store = JobStore(dynamodb, table, ttl_days)
    with path.open(encoding="utf-8", errors="replace") as lines:
        summary = apply_events(
            lines, store, batch_size=RESTORE_BATCH_EVENTS, ttl_days=ttl_days, now=time.time()
        )
    problems = sorted([*summary.invalid, *summary.failed], key=lambda problem: problem.line)
    # The table starts empty at start: its items are the jobs restored (the summary keeps only a
    # sample of job ids, to bound a rebuild's memory, so it cannot count them past the sample).
    return RestoredJobs(jobs=_count_items(dynamodb, table), events=summary.events, problems=problems)


def _count_items(dynamodb: DynamoDBClient, table: str) -> int:
    """How many items `table` holds (a Scan that returns only counts)."""
    count = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        count += int(page.get("Count", 0))
    return count
