"""The DynamoDB adapter of the projector: one conditional `UpdateItem` per job per batch.

The condition `attribute_not_exists(jobId) OR attribute_not_exists(version) OR version < :version`
makes every write idempotent and order-free; a failed condition is a normal outcome (the event
is stale or a duplicate), not an error. Only when the stored item lacks a fill-in field (a
damaged table) does a second, fill-in-only write follow; `ReturnValuesOnConditionCheckFailure`
says so without a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import DecimalException
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from botocore.exceptions import ClientError

from jobstatus.codec import to_attribute_value
from projector.fold import FILL_IN_FIELDS, WINNER_FIELDS, JobBatch, fill_in_fields, winner_fields

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY: Final = "jobId"
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# Errors about the request itself: retrying cannot help, the record is bad for this table.
INVALID_REQUEST_CODES: Final = frozenset({"ValidationException", "SerializationException"})

# The parts of the condition, named: the item is new, or what it holds is older (an item
# without a version is damaged, and any event may repair it, as the pure fold does).
ITEM_IS_NEW: Final = "attribute_not_exists(#jobId)"
ITEM_HAS_NO_VERSION: Final = "attribute_not_exists(#version)"
STORED_IS_OLDER: Final = "#version < :version"
WINNER_CONDITION: Final = f"{ITEM_IS_NEW} OR {ITEM_HAS_NO_VERSION} OR {STORED_IS_OLDER}"
ITEM_EXISTS: Final = "attribute_exists(#jobId)"


class Outcome(StrEnum):
    """What a job's write did."""

    APPLIED = "applied"  # the batch's winner is now the item's winner
    STALE = "stale"  # the item already holds this or a greater version: nothing to do
    FILLED = "filled"  # stale, but missing fill-in fields were written


class InvalidForStore(Exception):
    """DynamoDB refused the job's write as malformed (or it cannot be encoded): retrying will not help."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A job's outcome and how many DynamoDB requests it took."""

    outcome: Outcome
    requests: int


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
        """Apply a job's winning event with one conditional write (two for a damaged item).

        Raises `ClientError` / `BotoCoreError` for throttling, service and connection errors
        (the caller fails that job's records so SQS redelivers them) and `InvalidForStore` for a
        request DynamoDB refuses or a value it cannot hold.
        """
        event = batch.winner
        winners = winner_fields(event)
        fill_ins = {k: v for k, v in fill_in_fields(event, self._ttl_days).items() if k != KEY}
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
            if _code(error) in INVALID_REQUEST_CODES:
                raise InvalidForStore(str(error)) from error
            if _code(error) != CONDITION_FAILED:
                raise
            stored = cast("dict[str, Any]", error.response).get("Item", {})
            return self._fill_in_if_missing(batch.job_id, stored, fill_ins)
        return WriteResult(Outcome.APPLIED, 1)

    def _fill_in_if_missing(
        self, job_id: str, stored: dict[str, Any], fill_ins: dict[str, Any]
    ) -> WriteResult:
        missing = {name: value for name, value in fill_ins.items() if name not in stored}
        if not missing:
            return WriteResult(Outcome.STALE, 1)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": job_id}},
                UpdateExpression="SET "
                + ", ".join(f"#{name} = if_not_exists(#{name}, :{name})" for name in missing),
                ConditionExpression=ITEM_EXISTS,
                ExpressionAttributeNames={"#jobId": KEY, **{f"#{name}": name for name in missing}},
                ExpressionAttributeValues=_attribute_values(missing),
            )
        except ClientError as error:
            if _code(error) in INVALID_REQUEST_CODES:
                raise InvalidForStore(str(error)) from error
            if _code(error) != CONDITION_FAILED:
                raise
            # The item vanished in between (TTL or a wipe): nothing to repair.
            return WriteResult(Outcome.STALE, 2)
        return WriteResult(Outcome.FILLED, 2)


def _attribute_values(values: dict[str, Any]) -> dict[str, Any]:
    try:
        return {f":{name}": to_attribute_value(value) for name, value in values.items()}
    except (TypeError, ValueError, DecimalException) as error:
        # e.g. a number with more than 38 significant digits, which DynamoDB cannot store.
        raise InvalidForStore(f"a value cannot be stored in DynamoDB: {error!r}") from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


__all__ = ["FILL_IN_FIELDS", "InvalidForStore", "JobStore", "JobWriter", "Outcome", "WriteResult"]
