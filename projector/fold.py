"""The pure projection of a job's events into its item (DESIGN §3).

No boto3, no Powertools, no I/O: this is what hypothesis hammers. An item is the dict of
attributes stored in the Jobs table, camelCase, with plain Python values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, Final

from jobstatus.events import JobStatusChanged, parse_timestamp, version_of

Item = dict[str, Any]

FILL_IN_FIELDS: Final = ("jobId", "userId", "createdAt", "ttl", "request")
OWNER_FIELDS: Final = ("userId", "createdAt")  # the same on every event of a job (DESIGN §3)
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
    """The fields written once, by whichever event of the job arrives first (`request` when it has one)."""
    fields: Item = {
        "jobId": event.job_id,
        "userId": event.user_id,
        "createdAt": event.created_at,
        "ttl": ttl_of(event.created_at, ttl_days),
    }
    if event.request is not None:
        fields["request"] = event.request.model_dump(mode="json", exclude_none=True)
    return fields


def owner_of(event: JobStatusChanged) -> tuple[str, str]:
    """The `(userId, createdAt)` an event claims for its job."""
    return event.user_id, event.created_at


def conflicts(item: Item | None, event: JobStatusChanged) -> bool:
    """Whether the stored item names another owner (userId or createdAt) than the event does.

    A field the item lacks (a damaged item) is no conflict: the event fills it in.
    """
    if item is None:
        return False
    user_id, created_at = owner_of(event)
    return ("userId" in item and item["userId"] != user_id) or (
        "createdAt" in item and item["createdAt"] != created_at
    )


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

    An event of an expired job changes nothing (replays must not resurrect it), nor does an event
    that `conflicts` with the item's owner.
    """
    if is_expired(event, ttl_days, now) or conflicts(item, event):
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
    return project_reporting(events, ttl_days=ttl_days, now=now)[0]


def project_reporting(
    events: Iterable[JobStatusChanged], *, ttl_days: int, now: float
) -> tuple[dict[str, Item], list[JobStatusChanged]]:
    """`project`, and the events that conflicted with their job's owner (not applied), in order."""
    items: dict[str, Item] = {}
    conflicting: list[JobStatusChanged] = []
    for event in events:
        before = items.get(event.job_id)
        if conflicts(before, event) and not is_expired(event, ttl_days, now):
            conflicting.append(event)
            continue
        folded = apply(before, event, ttl_days=ttl_days, now=now)
        if folded is not None:
            items[event.job_id] = folded
    return items, conflicting


@dataclass(frozen=True, slots=True)
class JobBatch:
    """One owner's share of a job in a batch: the winning event and every record it came in.

    `events` holds the events of `record_ids`, in the same order (empty: the winner alone).
    """

    job_id: str
    winner: JobStatusChanged
    record_ids: tuple[str, ...]
    events: tuple[JobStatusChanged, ...] = ()

    def fill_ins(self, ttl_days: int) -> Item:
        """The fill-in fields of this share: the owner's, and `request` of its earliest event carrying one."""
        fields = fill_in_fields(self.winner, ttl_days)
        carriers = [e for e in self.events or (self.winner,) if e.request is not None]
        if carriers:
            fields["request"] = fill_in_fields(min(carriers, key=version_of), ttl_days)["request"]
        return fields

    def singles(self) -> list[JobBatch]:
        """This share cut into one batch per record, smallest version first (to find a bad one)."""
        events = self.events or (self.winner,) * len(self.record_ids)
        pairs = sorted(zip(self.record_ids, events, strict=True), key=lambda pair: version_of(pair[1]))
        return [JobBatch(self.job_id, event, (record_id,), (event,)) for record_id, event in pairs]


def coalesce(records: Iterable[tuple[str, JobStatusChanged]]) -> list[JobBatch]:
    """Group a batch's `(record id, event)` pairs by job and owner, keeping each group's greatest version.

    One write per job per batch: the winner carries every winner field, and the fill-ins are
    the same on every event of an owner. Events of a job that disagree on its owner (`userId`,
    `createdAt`) are never mixed: each owner gets its own share, and a job's shares come in the
    order of their smallest version, to be judged one after the other against the stored item.
    """
    groups: dict[tuple[str, str, str], list[tuple[str, str, JobStatusChanged]]] = {}
    for record_id, event in records:  # each event's version built once
        groups.setdefault((event.job_id, event.user_id, event.created_at), []).append(
            (version_of(event), record_id, event)
        )
    shares = []
    for (job_id, _, _), members in groups.items():
        # The first of the greatest versions, as `max(..., key=version_of)` picks it.
        winner = max(members, key=itemgetter(0))[2]
        smallest = min(version for version, _, _ in members)
        batch = JobBatch(job_id, winner, tuple(r for _, r, _ in members), tuple(e for _, _, e in members))
        shares.append((job_id, smallest, batch))
    # Jobs in order of first appearance (stable), each job's shares by smallest version.
    first_seen = {job_id: n for n, (job_id, _, _) in reversed(list(enumerate(shares)))}
    shares.sort(key=lambda share: (first_seen[share[0]], share[1]))
    return [batch for _, _, batch in shares]
