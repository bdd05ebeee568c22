"""The pure projection of a job's events into its item (DESIGN §3).

No boto3, no Powertools, no I/O: this is what hypothesis hammers. An item is the dict of
attributes stored in the Jobs table, camelCase, with plain Python values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from jobstatus.events import JobStatusChanged, parse_timestamp, version_of

Item = dict[str, Any]

FILL_IN_FIELDS: Final = ("jobId", "userId", "createdAt", "ttl")
WINNER_FIELDS: Final = (
    "status",
    "updatedAt",
    "version",
    "lastEventId",
    "attempt",
    "progress",
    "startedAt",
    "outputUrl",
    "result",
    "error",
    "metrics",
)
SECONDS_PER_DAY: Final = 86_400


@lru_cache(maxsize=4096)  # asked for every event; a batch holds a few jobs' events each
def ttl_of(created_at: str, ttl_days: int) -> int:
    """The item's `ttl`: createdAt + `ttl_days` days, in epoch seconds."""
    return int(parse_timestamp(created_at).timestamp()) + ttl_days * SECONDS_PER_DAY


def is_expired(event: JobStatusChanged, ttl_days: int, now: float) -> bool:
    """Whether the event's job is already past its ttl at epoch second `now`."""
    return ttl_of(event.created_at, ttl_days) <= now


def fill_in_fields(event: JobStatusChanged, ttl_days: int) -> Item:
    """The fields written once, by whichever event of the job arrives first."""
    return {
        "jobId": event.job_id,
        "userId": event.user_id,
        "createdAt": event.created_at,
        "ttl": ttl_of(event.created_at, ttl_days),
    }


def winner_fields(event: JobStatusChanged) -> Item:
    """The winner fields this event carries; the ones it lacks are absent, not null."""
    detail = event.to_detail()
    fields: Item = {
        "status": detail["status"],
        "updatedAt": detail["occurredAt"],
        "version": version_of(event),
        "lastEventId": detail["eventId"],
        "attempt": detail["attempt"],
    }
    for name in ("progress", "startedAt", "outputUrl", "result", "error", "metrics"):
        if name in detail:
            fields[name] = detail[name]
    return fields


def apply(item: Item | None, event: JobStatusChanged, *, ttl_days: int, now: float) -> Item | None:
    """The item after `event`: fill-ins kept, winner fields of the greater version.

    An event of an expired job changes nothing (replays must not resurrect it).
    """
    if is_expired(event, ttl_days, now):
        return item
    if item is None:
        return {**fill_in_fields(event, ttl_days), **winner_fields(event)}
    current = item.get("version")
    # Fill-ins already stored are kept; a damaged item missing some gets them from this event.
    merged = {**fill_in_fields(event, ttl_days), **{k: v for k, v in item.items() if k in FILL_IN_FIELDS}}
    if current is not None and version_of(event) <= current:
        return {**item, **merged}
    # The event wins: every winner field comes from it, and the ones it lacks disappear.
    return {**merged, **winner_fields(event)}


def project(events: Iterable[JobStatusChanged], *, ttl_days: int, now: float) -> dict[str, Item]:
    """Every job's item from a stream of events, in any order, with any duplicates."""
    items: dict[str, Item] = {}
    for event in events:
        folded = apply(items.get(event.job_id), event, ttl_days=ttl_days, now=now)
        if folded is not None:
            items[event.job_id] = folded
    return items


@dataclass(frozen=True, slots=True)
class JobBatch:
    """One job's share of a batch: the winning event and the keys of every record it came in."""

    job_id: str
    winner: JobStatusChanged
    record_ids: tuple[str, ...]


def coalesce(records: Iterable[tuple[str, JobStatusChanged]]) -> list[JobBatch]:
    """Group a batch's `(record id, event)` pairs by job, keeping each job's greatest version.

    One write per job per batch: the winner carries every winner field, and the fill-ins are
    the same on every event of a job. The records of a job succeed or fail together.
    """
    winners: dict[str, tuple[str, JobStatusChanged]] = {}
    record_ids: dict[str, list[str]] = {}
    for record_id, event in records:
        version = version_of(event)
        best = winners.get(event.job_id)
        if best is None or version > best[0]:
            winners[event.job_id] = (version, event)
        record_ids.setdefault(event.job_id, []).append(record_id)
    return [JobBatch(job_id, winner, tuple(record_ids[job_id])) for job_id, (_, winner) in winners.items()]
