"""The DynamoDB adapter of the projector: one conditional `UpdateItem` per job (and owner) per batch.

The condition "the item is new, or it has the event's owner and an older version" makes every
write idempotent and order-free, and no event of another owner can touch an item (DESIGN §3).
A failed condition is a normal outcome: the event is stale or a duplicate, or it is a conflict
(the item's `userId` or `createdAt` differ). `ReturnValuesOnConditionCheckFailure` tells which,
and whether a stale event still has fill-in fields to write (a damaged item, or `request` not
yet stored); that second write is itself conditioned on the owner. An engine that returns no
item (dynalite) gets the second write anyway, and a read only when that one fails too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from decimal import Clamped, Context, Decimal, DecimalException, Inexact, Overflow, Rounded, Underflow
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from botocore.exceptions import ClientError

from projector.fold import FILL_IN_FIELDS, OWNER_FIELDS, WINNER_FIELDS, JobBatch, winner_fields

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY: Final = "jobId"
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# Errors about the request itself: retrying cannot help, the record is bad for this table.
INVALID_REQUEST_CODES: Final = frozenset({"ValidationException", "SerializationException"})

# The parts of the condition, named. An item without a version (or an owner field) is damaged,
# and an event of the right owner may repair it, as the pure fold does.
ITEM_IS_NEW: Final = "attribute_not_exists(#jobId)"
ITEM_EXISTS: Final = "attribute_exists(#jobId)"
SAME_USER: Final = "(attribute_not_exists(#userId) OR #userId = :userId)"
SAME_CREATED_AT: Final = "(attribute_not_exists(#createdAt) OR #createdAt = :createdAt)"
SAME_OWNER: Final = f"{SAME_USER} AND {SAME_CREATED_AT}"
STORED_IS_OLDER: Final = "(attribute_not_exists(#version) OR #version < :version)"
WINNER_CONDITION: Final = f"{ITEM_IS_NEW} OR ({SAME_OWNER} AND {STORED_IS_OLDER})"
FILL_IN_CONDITION: Final = f"{ITEM_EXISTS} AND {SAME_OWNER}"


# DynamoDB's numbers: 38 significant digits, exponent -130..125 (as boto3's TypeSerializer checks).
NUMBERS: Final = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
MAX_EXACT_INT: Final = 10**38  # an int below it in magnitude is its own DynamoDB number


def to_attribute_value(value: Any) -> Any:
    """One plain Python value as a DynamoDB attribute value, as `jobstatus.codec` writes it.

    The same rules as boto3's `TypeSerializer` after `jobstatus.codec`'s floats-to-Decimal
    (tests/core/test_store_codec.py checks that they agree), without importing boto3 (and
    s3transfer) on ProjectorFn's cold start. Raises `TypeError` for a value DynamoDB cannot hold
    (NaN, infinity, an unknown type) and `DecimalException` for a number out of its range.
    """
    kind = type(value)  # the common exact types first: a write encodes some 14 values
    if kind is str:
        return {"S": value}
    if kind is int and -MAX_EXACT_INT < value < MAX_EXACT_INT:
        return {"N": str(value)}  # what NUMBERS writes for an int of at most 38 digits
    return _any_attribute_value(value)


def _any_attribute_value(value: Any) -> Any:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool | str):
        return {"BOOL" if isinstance(value, bool) else "S": value}
    if isinstance(value, int | float | Decimal):
        text = str(NUMBERS.create_decimal(Decimal(repr(value)) if isinstance(value, float) else value))
        if not NUMBERS.create_decimal(text).is_finite():
            raise TypeError("Infinity and NaN not supported")
        return {"N": text}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {key: to_attribute_value(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute_value(item) for item in value]}
    raise TypeError(f"Unsupported type {type(value)!r} for value {value!r}")


def _number(text: str) -> int | float:
    number = NUMBERS.create_decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


_READERS: Final[dict[str, Any]] = {
    "S": lambda raw: raw,
    "BOOL": lambda raw: raw,
    "NULL": lambda raw: None,
    "N": _number,
    "B": bytes,
    "SS": set,
    "BS": set,
    "NS": lambda raw: {NUMBERS.create_decimal(n) for n in raw},
    "M": lambda raw: {key: from_attribute_value(item) for key, item in raw.items()},
    "L": lambda raw: [from_attribute_value(item) for item in raw],
}


def from_attribute_value(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as a plain Python value (integral numbers int, others float)."""
    ((kind, raw),) = value.items()
    if kind not in _READERS:
        raise TypeError(f"Unknown DynamoDB type {kind!r}")
    return _READERS[kind](raw)


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values."""
    return {name: from_attribute_value(value) for name, value in item.items()}


class Outcome(StrEnum):
    """What a job's write did."""

    APPLIED = "applied"  # the batch's winner is now the item's winner
    STALE = "stale"  # the item already holds this or a greater version: nothing to do
    FILLED = "filled"  # stale, but missing fill-in fields were written
    CONFLICT = "conflict"  # the item has another owner (userId or createdAt): nothing written


class InvalidForStore(Exception):
    """DynamoDB refused the job's write as malformed (or it cannot be encoded): retrying will not help."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A job's outcome, how many DynamoDB requests it took, and for a conflict the stored owner."""

    outcome: Outcome
    requests: int
    stored_user_id: str | None = None
    stored_created_at: str | None = None


class JobWriter(Protocol):
    """The port the projector writes through (`JobStore`, or an in-memory fake in tests)."""

    def write(self, batch: JobBatch) -> WriteResult:
        """Apply one job's winning event; see `JobStore.write` for the errors it may raise."""
        ...


class JobStore:
    """Writes folded jobs to the Jobs table; never reads before writing."""

    def __init__(self, client: DynamoDBClient, table_name: str, ttl_days: int) -> None:
        self._client = client
        self._table = table_name
        self._ttl_days = ttl_days

    @property
    def table_name(self) -> str:
        """The Jobs table this store writes."""
        return self._table

    def write(self, batch: JobBatch) -> WriteResult:
        """Apply a job's winning event with one conditional write (two for a stale event with fill-ins to do).

        Never writes anything of an event whose owner differs from the item's (`Outcome.CONFLICT`).
        Raises `ClientError` / `BotoCoreError` for throttling, service and connection errors
        (the caller fails that job's records so SQS redelivers them) and `InvalidForStore` for a
        request DynamoDB refuses or a value it cannot hold.
        """
        event = batch.winner
        winners = winner_fields(event)
        fill_ins = {k: v for k, v in batch.fill_ins(self._ttl_days).items() if k != KEY}
        names = {f"#{name}": name for name in (KEY, *WINNER_FIELDS, *fill_ins)}
        values = _attribute_values({**winners, **fill_ins})
        assignments = [f"#{name} = :{name}" for name in winners]
        assignments += [f"#{name} = if_not_exists(#{name}, :{name})" for name in fill_ins]
        # A winner field the winning event lacks must not survive from an older winner.
        removals = [f"#{name}" for name in WINNER_FIELDS if name not in winners]
        update = "SET " + ", ".join(assignments)
        if removals:
            update += " REMOVE " + ", ".join(removals)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": batch.job_id}},
                UpdateExpression=update,
                ConditionExpression=WINNER_CONDITION,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            _raise_unless_condition_failed(error)
            returned = cast("dict[str, Any]", error.response).get("Item")
            owner = {name: fill_ins[name] for name in OWNER_FIELDS}
            if returned is None:  # an engine that ignores ReturnValuesOnConditionCheckFailure
                return self._fill_in(batch.job_id, owner, fill_ins, requests=1)
            stored = from_item(returned)
            if _is_conflict(stored, owner):
                return _conflict(stored, requests=1)
            missing = {name: value for name, value in fill_ins.items() if name not in stored}
            if not missing:
                return WriteResult(Outcome.STALE, 1)
            return self._fill_in(batch.job_id, owner, missing, requests=1)
        return WriteResult(Outcome.APPLIED, 1)

    def _fill_in(
        self, job_id: str, owner: dict[str, Any], fill_ins: dict[str, Any], *, requests: int
    ) -> WriteResult:
        """Write the fill-ins the item lacks, only if it exists and has the same `owner`."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": job_id}},
                UpdateExpression="SET "
                + ", ".join(f"#{name} = if_not_exists(#{name}, :{name})" for name in fill_ins),
                ConditionExpression=FILL_IN_CONDITION,
                ExpressionAttributeNames={f"#{name}": name for name in (KEY, *OWNER_FIELDS, *fill_ins)},
                ExpressionAttributeValues=_attribute_values({**owner, **fill_ins}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            _raise_unless_condition_failed(error)
            returned = cast("dict[str, Any]", error.response).get("Item")
            if returned is None:  # no item came back: it vanished, or the engine returns none
                returned = self._read(job_id)
                requests += 1
            if returned is not None and _is_conflict(stored := from_item(returned), owner):
                return _conflict(stored, requests=requests + 1)
            # The item vanished in between (TTL or a wipe): nothing to repair.
            return WriteResult(Outcome.STALE, requests + 1)
        return WriteResult(Outcome.FILLED, requests + 1)

    def _read(self, job_id: str) -> dict[str, Any] | None:
        answer = self._client.get_item(
            TableName=self._table,
            Key={KEY: {"S": job_id}},
            ProjectionExpression="#userId, #createdAt",
            ExpressionAttributeNames={"#userId": "userId", "#createdAt": "createdAt"},
            ConsistentRead=True,
        )
        return cast("dict[str, Any] | None", answer.get("Item"))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One write of a job's share and what came of it: its `result`, or the exception it raised."""

    batch: JobBatch
    result: WriteResult | None = None
    error: Exception | None = None


def write_share(store: JobWriter, batch: JobBatch) -> list[Attempt]:
    """Write one share; when DynamoDB refuses it as malformed and it holds several records, each alone.

    Each record alone (smallest version first) finds the refused event, and the others are
    applied as if it were absent. Never raises for a failed write: the attempts say what happened,
    so that the caller logs and counts them on its own thread.
    """
    try:
        return [Attempt(batch, store.write(batch))]
    except InvalidForStore as error:
        if len(batch.record_ids) < 2:
            return [Attempt(batch, error=error)]
        return [Attempt(batch, error=error), *(a for one in batch.singles() for a in write_share(store, one))]
    except Exception as error:  # reported per job by the caller; one job's failure stops no other
        return [Attempt(batch, error=error)]


def _write_job(store: JobWriter, shares: Sequence[JobBatch]) -> list[Attempt]:
    # A job's shares (one per owner) one after the other: each is judged against the item the
    # one before left (DESIGN §3).
    return [attempt for share in shares for attempt in write_share(store, share)]


def write_all(store: JobWriter, shares: Iterable[JobBatch], pool: Executor | None = None) -> list[Attempt]:
    """Write every share, the jobs' writes in flight together on `pool` (one after another without).

    Jobs are independent items, so nothing orders their writes; a job's own shares are written in
    the order given (`coalesce`'s: smallest version first). The attempts come back in the order of
    the shares, whatever order the writes finished in.
    """
    by_job: dict[str, list[JobBatch]] = {}
    for share in shares:
        by_job.setdefault(share.job_id, []).append(share)
    jobs = list(by_job.values())
    if pool is None or len(jobs) < 2:
        done = [_write_job(store, job) for job in jobs]
    else:
        done = list(pool.map(_write_job, [store] * len(jobs), jobs))
    return [attempt for job in done for attempt in job]


def _is_conflict(stored: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(name in stored and stored[name] != owner[name] for name in OWNER_FIELDS)


def _conflict(stored: dict[str, Any], *, requests: int) -> WriteResult:
    user_id, created_at = (stored.get(name) for name in OWNER_FIELDS)
    return WriteResult(
        Outcome.CONFLICT,
        requests,
        user_id if isinstance(user_id, str) else None,
        created_at if isinstance(created_at, str) else None,
    )


def _raise_unless_condition_failed(error: ClientError) -> None:
    if _code(error) in INVALID_REQUEST_CODES:
        raise InvalidForStore(str(error)) from error
    if _code(error) != CONDITION_FAILED:
        raise error


def _attribute_values(values: dict[str, Any]) -> dict[str, Any]:
    try:
        return {f":{name}": to_attribute_value(value) for name, value in values.items()}
    except (TypeError, ValueError, DecimalException) as error:
        # e.g. a number with more than 38 significant digits, which DynamoDB cannot store.
        raise InvalidForStore(f"a value cannot be stored in DynamoDB: {error!r}") from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


__all__ = [
    "FILL_IN_FIELDS",
    "Attempt",
    "InvalidForStore",
    "JobStore",
    "JobWriter",
    "Outcome",
    "WriteResult",
    "write_all",
    "write_share",
]
