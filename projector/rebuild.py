"""Rebuilding the Jobs table: an EventBridge replay of the archive, or a file of events.

The archive is the source of truth (DESIGN §1). A replay sends its events back to the bus,
restricted to the projector's rule, and ProjectorFn folds them as it folds live ones. A file of
events goes through the same fold (`coalesce`) and the same writer (`JobStore`, its writes in
flight together on a pool, as ProjectorFn's are), so both ways converge on the items `project()`
computes. A file is coalesced in windows larger than ProjectorFn's batches (fewer requests per
event), and its summary keeps counts and a bounded sample of problems, so memory stays bounded
whatever the file's size.

No boto3 client is built here: the EventBridge client and the `JobStore` are passed in, and the
`jobstatus rebuild` command (`ops.rebuild_cli`) is a thin shell around these functions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from jobstatus.events import DETAIL_TYPE, JobStatusChanged
from projector.fold import coalesce, is_expired
from projector.store import Attempt, InvalidForStore, JobWriter, Outcome, write_all

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

# Logical ids in template.yaml of what a replay reads from, sends to and is restricted to.
ARCHIVE_ID: Final = "JobStatusArchive"
BUS_ID: Final = "JobsBus"
PROJECTOR_RULE_ID: Final = "JobStatusToProjectorRule"
PROJECTOR_FN_ID: Final = "ProjectorFn"
DEFAULT_BATCH_SIZE: Final = 100  # what SQS gives ProjectorFn when the template says nothing
# A file is coalesced this many events at a time: the larger, the fewer requests per event and
# the fewer waits for a window's last writes (docs/performance.md gives the runs: 0.201 requests
# per event against 0.215 at 1,000, and 2,573 events/s for 100,000 events at 5 ms RTT), at the
# cost of memory for the window's events only (a rebuild of 100,000 events peaked at 114 MB of
# RSS against 68 MB before it; the peak depends on the window, not on the file's size).
FILE_WINDOW: Final = 10_000
WRITERS: Final = 16  # writes in flight at once, as in ProjectorFn
MAX_PROBLEMS_KEPT: Final = 1000  # per kind; beyond it, only counted

REPLAY_NAME_MAX: Final = 64
_REPLAY_NAME_INVALID = re.compile(r"[^.\-_A-Za-z0-9]")
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class Template(Protocol):
    """What a rebuild reads from the stack's template (`ops.template.Template` is one)."""

    def arn(self, logical_id: str) -> str: ...

    def properties(self, logical_id: str) -> dict[str, Any]: ...


class RebuildError(Exception):
    """A rebuild cannot start or go on; the message says why, for the operator."""


# --- times ---------------------------------------------------------------------------------


def parse_moment(text: str, now: datetime) -> datetime:
    """An aware UTC instant from ISO 8601 (`2026-11-01`, `2026-11-01T07:00Z`) or an age (`36h`, `7d`).

    A time without a zone is UTC; an age counts back from `now`.
    """
    value = text.strip()
    if match := _RELATIVE.match(value):
        amount, unit = match.groups()
        return now - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RebuildError(
            f"{text!r} is neither an ISO 8601 time (2026-11-01T07:00:00Z) nor an age (36h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def replay_window(since: datetime, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The `[since, until]` window to replay, checked: `until` defaults to `now`, never later."""
    end = now if until is None else until
    if end > now:
        raise RebuildError(f"--until {end.isoformat()} is in the future; the archive ends now")
    if since >= end:
        raise RebuildError(f"--since {since.isoformat()} is not before --until {end.isoformat()}")
    return since, end


# --- replay --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """Where a replay reads (the archive), sends (the bus) and which rule alone receives it."""

    archive_arn: str
    bus_arn: str
    rule_arn: str

    @classmethod
    def from_template(cls, template: Template) -> ReplayTarget:
        """The ARNs the template gives its archive, bus and projector rule (stage, region, account)."""
        return cls(template.arn(ARCHIVE_ID), template.arn(BUS_ID), template.arn(PROJECTOR_RULE_ID))


def replay_name(stage: str, now: datetime) -> str:
    """A replay name unique to the second: `rebuild-<stage>-20261122T072031Z` (EventBridge's charset)."""
    name = f"rebuild-{stage}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return _REPLAY_NAME_INVALID.sub("-", name)[-REPLAY_NAME_MAX:]


class ReplayState(StrEnum):
    """EventBridge's replay states."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


TERMINAL_STATES: Final = frozenset({ReplayState.COMPLETED, ReplayState.CANCELLED, ReplayState.FAILED})


def _instant(value: Any) -> datetime | None:
    # botocore gives aware datetimes; tolerate epoch numbers from emulators.
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


@dataclass(frozen=True, slots=True)
class ReplayStatus:
    """What `DescribeReplay` says about a replay."""

    name: str
    state: ReplayState
    reason: str | None
    event_start: datetime | None
    event_end: datetime | None
    last_replayed: datetime | None
    replay_start: datetime | None
    replay_end: datetime | None

    @classmethod
    def from_response(cls, response: dict[str, Any]) -> ReplayStatus:
        """Parse a `DescribeReplay` response."""
        return cls(
            name=str(response["ReplayName"]),
            state=ReplayState(response["State"]),
            reason=response.get("StateReason") or None,
            event_start=_instant(response.get("EventStartTime")),
            event_end=_instant(response.get("EventEndTime")),
            last_replayed=_instant(response.get("EventLastReplayedTime")),
            replay_start=_instant(response.get("ReplayStartTime")),
            replay_end=_instant(response.get("ReplayEndTime")),
        )

    @property
    def is_terminal(self) -> bool:
        """Whether the replay has stopped for good."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        """Whether every event of the window was sent to the bus."""
        return self.state is ReplayState.COMPLETED

    @property
    def fraction(self) -> float:
        """How far through its window the replay is, 0..1, from `EventLastReplayedTime`."""
        if self.state is ReplayState.COMPLETED:
            return 1.0
        if self.last_replayed is None or self.event_start is None or self.event_end is None:
            return 0.0
        span = (self.event_end - self.event_start).total_seconds()
        if span <= 0:
            return 0.0
        done = (self.last_replayed - self.event_start).total_seconds() / span
        return min(1.0, max(0.0, done))

    @property
    def duration(self) -> timedelta | None:
        """How long the replay ran (so far, when it has not ended)."""
        if self.replay_start is None:
            return None
        return (self.replay_end or datetime.now(UTC)) - self.replay_start


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


class Replays:
    """The EventBridge adapter for replays: start, describe, cancel."""

    def __init__(self, client: EventBridgeClient) -> None:
        self._client = client

    def start(self, name: str, target: ReplayTarget, since: datetime, until: datetime) -> str:
        """Start replaying `[since, until]` of the archive to the bus, for the projector rule only; its ARN.

        Raises `RebuildError` with EventBridge's reason when the replay cannot start (no such
        archive or bus, a replay of that name exists, too many replays running).
        """
        try:
            response = self._client.start_replay(
                ReplayName=name,
                Description=f"Rebuild the Jobs table from {target.archive_arn}",
                EventSourceArn=target.archive_arn,
                EventStartTime=since,
                EventEndTime=until,
                Destination={"Arn": target.bus_arn, "FilterArns": [target.rule_arn]},
            )
        except ClientError as error:
            raise RebuildError(
                f"EventBridge refused replay {name}: {_error_code(error)}: {_error_message(error)}"
            ) from error
        return str(response.get("ReplayArn", name))

    def describe(self, name: str) -> ReplayStatus:
        """The replay's current state and progress."""
        try:
            response = self._client.describe_replay(ReplayName=name)
        except ClientError as error:
            raise RebuildError(f"cannot describe replay {name}: {_error_message(error)}") from error
        return ReplayStatus.from_response(dict(response))

    def cancel(self, name: str) -> None:
        """Ask EventBridge to cancel the replay (it goes CANCELLING, then CANCELLED)."""
        try:
            self._client.cancel_replay(ReplayName=name)
        except ClientError as error:
            raise RebuildError(f"cannot cancel replay {name}: {_error_message(error)}") from error


class ReplayControl(Protocol):
    """What following a replay needs of EventBridge (`Replays`, or a fake in tests)."""

    def describe(self, name: str) -> ReplayStatus:
        """The replay's current state and progress."""
        ...

    def cancel(self, name: str) -> None:
        """Ask for the replay to be cancelled."""
        ...


def watch(
    replays: ReplayControl,
    name: str,
    *,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    on_status: Callable[[ReplayStatus], None] | None = None,
) -> ReplayStatus:
    """Poll `DescribeReplay` until the replay ends; `on_status` sees every answer."""
    while True:
        status = replays.describe(name)
        if on_status is not None:
            on_status(status)
        if status.is_terminal:
            return status
        sleep(poll_seconds)


# --- a file of events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line of the file that was not applied, and why."""

    line: int
    reason: str


def parse_line(text: str) -> JobStatusChanged:
    """The event on one line: an EventBridge envelope (`detail-type` + `detail`) or a bare detail.

    Raises `ValueError` saying what is wrong.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(document, dict):
        raise ValueError(f"a JSON {type(document).__name__}, not an object")
    if "detail" in document and "detail-type" in document:
        if document["detail-type"] != DETAIL_TYPE:
            raise ValueError(f"detail-type {document['detail-type']!r} is not {DETAIL_TYPE}")
        document = document["detail"]
        if not isinstance(document, dict):
            raise ValueError("the envelope's detail is not an object")
    try:
        return JobStatusChanged.from_detail(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'detail'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"not a valid {DETAIL_TYPE}: {problems}") from None


def read_events(lines: Iterable[str]) -> Iterator[tuple[int, JobStatusChanged] | LineProblem]:
    """Each non-blank line's event with its 1-based line number, or the problem with it."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, parse_line(text)
        except ValueError as error:
            yield LineProblem(number, str(error))


def _batches(
    items: Iterable[tuple[int, JobStatusChanged] | LineProblem], size: int
) -> Iterator[tuple[list[tuple[int, JobStatusChanged]], list[LineProblem], int]]:
    """Batches of `size` events, with the bad lines met on the way and the last line number seen."""
    events: list[tuple[int, JobStatusChanged]] = []
    problems: list[LineProblem] = []
    last = 0
    for item in items:
        if isinstance(item, LineProblem):
            problems.append(item)
            last = item.line
            continue
        events.append(item)
        last = item[0]
        if len(events) == size:
            yield events, problems, last
            events, problems = [], []
    if events or problems:
        yield events, problems, last


class Problems(list[LineProblem]):
    """The first `MAX_PROBLEMS_KEPT` problems of a kind, and how many there were in all."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, problems: Iterable[LineProblem]) -> None:
        """Count every problem; keep only the first ones (a file of bad lines must not fill memory)."""
        for problem in problems:
            self.total += 1
            if len(self) < MAX_PROBLEMS_KEPT:
                self.append(problem)


@dataclass
class FileSummary:
    """What applying a file did, counted per event (line) as ProjectorFn counts its metrics.

    Bounded whatever the file's size: counts, the first problems of each kind (their `total` says
    how many in all), and the first `MAX_JOB_IDS_KEPT` job ids (`job_count` counts job writes that
    applied or found the item current).
    """

    events: int = 0
    applied: int = 0  # the winner of a job whose write took it
    stale: int = 0  # every other event of a written job: superseded in its batch, or older than the item
    expired: int = 0
    invalid: Problems = field(default_factory=Problems)
    failed: Problems = field(default_factory=Problems)
    conflicting: Problems = field(default_factory=Problems)  # another owner's job (DESIGN §3)
    jobs: set[str] = field(default_factory=set)  # a sample: the first MAX_JOB_IDS_KEPT job ids
    batches: int = 0
    writes: int = 0
    requests: int = 0

    @property
    def ok(self) -> bool:
        """Whether every line was read and every event written or rightly skipped."""
        return not (self.invalid.total or self.failed.total or self.conflicting.total)

    def note_job(self, job_id: str) -> None:
        """Remember a written job's id while the sample has room."""
        if len(self.jobs) < MAX_JOB_IDS_KEPT:
            self.jobs.add(job_id)


MAX_JOB_IDS_KEPT: Final = 10_000


def apply_events(
    lines: Iterable[str],
    store: JobWriter,
    *,
    batch_size: int,
    ttl_days: int,
    now: float,
    on_progress: Callable[[int], None] | None = None,
    pool: Executor | None = None,
) -> FileSummary:
    """Fold the events of `lines` into the table through `coalesce` and `store`, `batch_size` at a time.

    Each batch's writes are in flight together on `pool` (given, or one of `WRITERS` threads for
    the call). Bad lines, events DynamoDB refuses and events that conflict with their job's owner
    are reported in the summary with their line numbers, and the rest is applied, by the same
    rules as ProjectorFn's. `on_progress` gets the number of the last line handled after each
    batch. Raises `RebuildError` when the table is missing (no write can succeed).
    """
    if batch_size < 1:
        raise RebuildError(f"batch size must be at least 1, not {batch_size}")
    if pool is None:
        with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="rebuild") as own:
            return apply_events(
                lines,
                store,
                batch_size=batch_size,
                ttl_days=ttl_days,
                now=now,
                on_progress=on_progress,
                pool=own,
            )
    summary = FileSummary()
    for events, problems, last_line in _batches(read_events(lines), batch_size):
        summary.invalid.add(problems)
        summary.events += len(events)
        live = [(str(line), event) for line, event in events if not is_expired(event, ttl_days, now)]
        summary.expired += len(events) - len(live)
        summary.batches += 1 if events else 0
        for attempt in write_all(store, coalesce(live), pool):
            _count(attempt, summary)
        if on_progress is not None:
            on_progress(last_line)
    return summary


def _count(attempt: Attempt, summary: FileSummary) -> None:
    job, error, result = attempt.batch, attempt.error, attempt.result
    lines = [int(record_id) for record_id in job.record_ids]
    if isinstance(error, InvalidForStore):
        if len(lines) == 1:  # a coalesced write refused is followed by each of its events alone
            summary.invalid.add([LineProblem(lines[0], f"DynamoDB refused job {job.job_id}: {error}")])
        return
    if isinstance(error, ClientError):
        if _error_code(error) == "ResourceNotFoundException":
            raise RebuildError(f"the Jobs table does not exist: {_error_message(error)}") from error
        reason = f"writing job {job.job_id} failed: {_error_code(error)}: {_error_message(error)}"
        summary.failed.add(LineProblem(line, reason) for line in lines)
        return
    if isinstance(error, BotoCoreError):
        reason = f"writing job {job.job_id} failed: {error}"
        summary.failed.add(LineProblem(line, reason) for line in lines)
        return
    if error is not None:
        raise error  # a bug: stop, as a one-thread rebuild would have
    assert result is not None  # an attempt holds a result or an error
    summary.writes += 1
    summary.requests += result.requests
    if result.outcome is Outcome.CONFLICT:
        reason = (
            f"job {job.job_id} belongs to userId {result.stored_user_id!r}, createdAt "
            f"{result.stored_created_at!r}; the event says userId {job.winner.user_id!r}, createdAt "
            f"{job.winner.created_at!r}: not applied"
        )
        summary.conflicting.add(LineProblem(line, reason) for line in lines)
        return
    applied = 1 if result.outcome is Outcome.APPLIED else 0
    summary.applied += applied
    summary.stale += len(lines) - applied
    summary.note_job(job.job_id)


def batch_size_of(template: Template, function_id: str = PROJECTOR_FN_ID) -> int:
    """The SQS `BatchSize` the template gives a function's queue event (100 when it says none)."""
    events = template.properties(function_id).get("Events", {})
    for event in events.values():
        if event.get("Type") == "SQS":
            return int(event.get("Properties", {}).get("BatchSize", DEFAULT_BATCH_SIZE))
    return DEFAULT_BATCH_SIZE
