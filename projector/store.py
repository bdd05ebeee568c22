"""The DynamoDB adapter of the projector: one conditional `UpdateItem` per job per batch.

The condition `attribute_not_exists(jobId) OR version < :version` makes every write
idempotent and order-free; a failed condition is a normal outcome (the event is stale or a
duplicate), not an error. Only when the stored item lacks a fill-in field (a damaged table)
does a second, fill-in-only write follow; `ReturnValuesOnConditionCheckFailure` says so
without a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import ClientError

from jobstatus.codec import to_attribute_value
from projector.fold import FILL_IN_FIELDS, WINNER_FIELDS, JobBatch, fill_in_fields, winner_fields

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY: Final = "jobId"
CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# Errors about the request itself: retrying cannot help, the record is bad for this table.
INVALID_REQUEST_CODES: Final = frozenset({"ValidationException", "SerializationException"})

# The parts of the condition, named (the item is new, or what it holds is older).
ITEM_IS_NEW: Final = "attribute_not_exists(#jobId)"
STORED_IS_OLDER: Final = "#version < :version"
ITEM_EXISTS: Final = "attribute_exists(#jobId)"


class Outcome(StrEnum):
    """What a job's write did."""

    APPLIED = "applied"  # the batch's winner is now the item's winner
    STALE = "stale"  # the item already holds this or a greater version: nothing to do
    FILLED = "filled"  # stale, but missing fill-in fields were written


class InvalidForStore(Exception):
    """DynamoDB refused the job's write as malformed: retrying will not help."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A job's outcome and how many DynamoDB requests it took."""

    outcome: Outcome
    requests: int


class JobStore:
    """Writes folded jobs to the Jobs table; never reads before writing."""

    def __init__(self, client: DynamoDBClient, table_name: str, ttl_days: int) -> None:
        self._client = client
        self._table = table_name
        self._ttl_days = ttl_days

    def write(self, batch: JobBatch) -> WriteResult:
        """Apply a job's winning event with one conditional write (two for a damaged item).

        Raises `ClientError` for throttling and service errors (the caller fails that job's
        records so SQS redelivers them) and `InvalidForStore` for a request DynamoDB refuses.
        """
        event = batch.winner
        winners = winner_fields(event)
        fill_ins = {k: v for k, v in fill_in_fields(event, self._ttl_days).items() if k != KEY}
        names = {f"#{name}": name for name in (KEY, *WINNER_FIELDS, *fill_ins)}
        values = {f":{name}": to_attribute_value(value) for name, value in {**winners, **fill_ins}.items()}
        assignments = [f"#{name} = :{name}" for name in winners]
        assignments += [f"#{name} = if_not_exists(#{name}, :{name})" for name in fill_ins]
        removals = [f"#{name}" for name in WINNER_FIELDS if name not in winners]
        update = "SET " + ", ".join(assignments)
        if removals:
            update += " REMOVE " + ", ".join(removals)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": batch.job_id}},
                UpdateExpression=update,
                ConditionExpression=f"{ITEM_IS_NEW} OR {STORED_IS_OLDER}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == CONDITION_FAILED:
                stored = cast("dict[str, Any]", error.response).get("Item", {})
                return self._fill_in_if_missing(batch.job_id, stored, fill_ins)
            if code in INVALID_REQUEST_CODES:
                raise InvalidForStore(str(error)) from error
            raise
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
                ExpressionAttributeValues={f":{name}": to_attribute_value(v) for name, v in missing.items()},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != CONDITION_FAILED:
                raise
        return WriteResult(Outcome.FILLED, 2)


__all__ = ["FILL_IN_FIELDS", "InvalidForStore", "JobStore", "Outcome", "WriteResult"]
