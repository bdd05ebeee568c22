"""PutEvents with per-entry outcomes: which entries landed, which failed and whether a retry can help.

EventBridge answers a PutEvents call with one result per entry; a call can half succeed
(`FailedEntryCount`). Only the entries that failed with a transient cause (throttling, an
internal error, a 5xx, the network) are worth sending again, and only those are retried, with
exponential backoff and full jitter. Botocore's own retries are switched off on the clients
we build (`producers.aws`), so this loop is the only one and a deadline really bounds it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from jobstatus.errors import client_error_code
from jobstatus.events import EVENTBRIDGE_MAX_ENTRY_BYTES, put_events_entry_size

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef, PutEventsResponseTypeDef

    Entry = PutEventsRequestEntryTypeDef
else:
    Entry = dict

MAX_ENTRIES_PER_CALL: Final = 10
# AWS counts the whole request against the same 256 KiB as a single entry.
MAX_BYTES_PER_CALL: Final = EVENTBRIDGE_MAX_ENTRY_BYTES
# Per-entry and per-call error codes after which the same entry may well succeed.
RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "InternalException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
NETWORK_ERROR: Final = "NetworkError"


class EventsPort(Protocol):
    """The part of the EventBridge client the producers use."""

    def put_events(self, *, Entries: Sequence[Entry]) -> PutEventsResponseTypeDef:  # boto3's name
        """Send up to 10 entries; one result per entry, in order."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: a retry waits uniformly in [0, min(cap, base * 2^n))."""

    base_seconds: float = 0.025
    cap_seconds: float = 1.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(retry - 1, 0)))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class EntryFailure:
    """Why one entry was not delivered."""

    code: str
    message: str
    retryable: bool


@dataclass(slots=True)
class SendResult:
    """What a `put_with_retries` call achieved."""

    delivered: list[Entry] = field(default_factory=list)
    failed: list[tuple[Entry, EntryFailure]] = field(default_factory=list)
    retried: int = 0  # entries sent again after a transient failure
    calls: int = 0


def entry_size(entry: Entry) -> int:
    """The size EventBridge charges `entry` against its 256 KiB limit."""
    return put_events_entry_size(dict(entry))


def chunks(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """Split entries into PutEvents calls: at most 10 entries and 256 KiB per call."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        this = entry_size(entry)
        if chunk and (len(chunk) == MAX_ENTRIES_PER_CALL or size + this > MAX_BYTES_PER_CALL):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += this
    if chunk:
        yield chunk


def failure_of_call(error: Exception) -> EntryFailure:
    """Classify an exception raised by a whole PutEvents call."""
    if isinstance(error, ClientError):
        code = client_error_code(error) or "Unknown"
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return EntryFailure(code, str(error), code in RETRYABLE_CODES or status >= 500)
    if isinstance(error, ConnectionError | HTTPClientError):
        # Refused, unreachable, connect or read timeout, connection reset: all transient.
        return EntryFailure(NETWORK_ERROR, f"{type(error).__name__}: {error}", True)
    if isinstance(error, BotoCoreError):
        # Missing credentials, parameter validation, ...: sending again changes nothing.
        return EntryFailure(type(error).__name__, str(error), False)
    return EntryFailure(type(error).__name__, str(error), False)


@dataclass(frozen=True, slots=True)
class CallResult:
    """One PutEvents call: per-entry outcomes, and the failure of the call itself if it raised."""

    outcomes: list[EntryFailure | None]
    call_failure: EntryFailure | None = None  # None when EventBridge answered (even with failed entries)


def put_call(client: EventsPort, entries: Sequence[Entry]) -> CallResult:
    """One PutEvents call: `None` for each delivered entry, else why it failed. Never raises."""
    try:
        response = client.put_events(Entries=list(entries))
    except Exception as error:  # any failure of the call is a failure of each of its entries
        failure = failure_of_call(error)
        return CallResult([failure] * len(entries), failure)
    results = response.get("Entries", [])
    outcomes: list[EntryFailure | None] = []
    for index in range(len(entries)):
        result: dict[str, Any] = dict(results[index]) if index < len(results) else {}
        code = result.get("ErrorCode")
        if code:
            outcomes.append(
                EntryFailure(str(code), str(result.get("ErrorMessage", "")), code in RETRYABLE_CODES)
            )
        elif result.get("EventId"):
            outcomes.append(None)
        else:  # a malformed answer: we cannot know, so assume it did not land and may be retried
            outcomes.append(EntryFailure("MissingResult", "PutEvents returned no result for the entry", True))
    return CallResult(outcomes)


def put_once(client: EventsPort, entries: Sequence[Entry]) -> list[EntryFailure | None]:
    """One PutEvents call: `None` for each delivered entry, else why it failed. Never raises."""
    return put_call(client, entries).outcomes


def put_with_retries(
    client: EventsPort,
    entries: Sequence[Entry],
    *,
    deadline: float,
    backoff: Backoff,
    max_attempts: int = 5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> SendResult:
    """Send `entries`, retrying only the failed transient ones until `deadline` (a `clock` value).

    Never raises; what is undelivered at the end is in `failed` with its last failure.
    """
    rng = rng or random.Random()  # jitter, not security
    result = SendResult()
    pending = list(entries)
    attempt = 0
    while pending:
        attempt += 1
        retry_next: list[tuple[Entry, EntryFailure]] = []
        for chunk in chunks(pending):
            result.calls += 1
            for entry, outcome in zip(chunk, put_once(client, chunk), strict=True):
                if outcome is None:
                    result.delivered.append(entry)
                elif outcome.retryable:
                    retry_next.append((entry, outcome))
                else:
                    result.failed.append((entry, outcome))
        if not retry_next:
            break
        pause = backoff.delay(attempt, rng)
        if attempt >= max_attempts or clock() + pause >= deadline:
            result.failed.extend(retry_next)
            break
        sleep(pause)
        pending = [entry for entry, _ in retry_next]
        result.retried += len(pending)
    return result


def entry_json(entry: Entry) -> str:
    """The entry as the JSON the outbox stores (and the republisher sends back)."""
    return json.dumps(dict(entry), separators=(",", ":"), ensure_ascii=False)
