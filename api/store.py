"""The DynamoDB adapter of the read API: `GetItem` on the Jobs table and `Query` on its `ByUser` index.

The only reads GetJobFn makes, and the only permissions it needs. Items come back as plain
Python values exactly as the projector's `jobstatus.codec.from_item` gives them (integral
numbers as int, others as float), but read here: that codec imports `boto3.dynamodb.types`,
which imports all of boto3 (s3transfer included), about 45 ms of CPU on this function's cold
start for a dozen lines. A property test keeps the two equal on every value the projector writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from jobstatus.errors import client_error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INDEX_NAME: Final = "ByUser"
KEY_FIELDS: Final = ("jobId", "userId", "createdAt")  # the table's key and the index's: a position
MAX_QUERIES_PER_PAGE: Final = 10  # a sparse status filter must not turn one request into a scan
THROTTLING_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)

# The parts of the list query, named.
OWNED_BY: Final = "#userId = :userId"
NOT_EXPIRED: Final = "(attribute_not_exists(#ttl) OR #ttl > :now)"
HAS_STATUS: Final = "#status = :status"

Item = dict[str, Any]


def _number(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


def from_attribute_value(value: dict[str, Any]) -> Any:
    """One DynamoDB attribute value (`{"S": ...}`, `{"M": ...}`, ...) as a plain Python value."""
    ((kind, data),) = value.items()
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"unknown DynamoDB attribute type {kind!r}")
    return reader(data)


# How each attribute type reads; sets and binaries, which the projector never writes, as sets and bytes.
_READERS: Final[dict[str, Callable[[Any], Any]]] = {
    "S": lambda data: data,
    "BOOL": lambda data: data,
    "B": lambda data: data,
    "NULL": lambda _: None,
    "N": _number,
    "M": lambda data: {name: from_attribute_value(inner) for name, inner in data.items()},
    "L": lambda data: [from_attribute_value(inner) for inner in data],
    "SS": set,
    "BS": set,
    "NS": lambda data: {_number(text) for text in data},
}


def from_item(item: dict[str, Any]) -> Item:
    """A DynamoDB item as plain Python values (integral numbers as int, others as float)."""
    return {name: from_attribute_value(value) for name, value in item.items()}


class StoreUnavailable(Exception):
    """DynamoDB is throttling or unavailable: the client may retry later."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a user's jobs, newest first, and where the next page starts (None: no more)."""

    items: list[Item]
    next_position: Item | None


class JobReader:
    """Reads jobs from the Jobs table; never writes."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, job_id: str) -> Item | None:
        """The job's item, or None when there is none."""
        try:
            response = self._client.get_item(TableName=self._table, Key={"jobId": {"S": job_id}})
        except ClientError as error:
            raise _unavailable_or(error) from error
        item = response.get("Item")
        return from_item(item) if item is not None else None

    def list_for_user(
        self, user_id: str, *, limit: int, status: str | None, start: Item | None, now: float
    ) -> Page:
        """Up to `limit` live jobs of `user_id`, newest first, optionally of one status.

        A filter applies after DynamoDB's `Limit`, so one Query may return fewer items than
        asked: query again from `LastEvaluatedKey` until the page is full or the index ends.
        """
        names = {"#userId": "userId", "#ttl": "ttl"}
        values: dict[str, Any] = {":userId": {"S": user_id}, ":now": {"N": str(int(now))}}
        conditions = [NOT_EXPIRED]
        if status is not None:
            names["#status"] = "status"
            values[":status"] = {"S": status}
            conditions.append(HAS_STATUS)
        raw: list[dict[str, Any]] = []
        position = start
        for _ in range(MAX_QUERIES_PER_PAGE):
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": INDEX_NAME,
                "KeyConditionExpression": OWNED_BY,
                "FilterExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
                "Limit": limit,
            }
            if position is not None:
                request["ExclusiveStartKey"] = position
            try:
                response = self._client.query(**request)
            except ClientError as error:
                raise _unavailable_or(error) from error
            found = response.get("Items", [])
            room = limit - len(raw)
            raw.extend(found[:room])
            position = response.get("LastEvaluatedKey")
            if len(found) > room:
                # The page filled up inside this response: continue right after its last item.
                position = {name: raw[-1][name] for name in KEY_FIELDS}
                break
            if position is None or len(raw) == limit:
                break
        return Page([from_item(item) for item in raw], position)


def _unavailable_or(error: ClientError) -> Exception:
    code = client_error_code(error)
    return StoreUnavailable(code) if code in THROTTLING_CODES else error
