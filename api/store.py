"""The DynamoDB adapter of the read API: `GetItem` on the Jobs table and `Query` on its `ByUser` index.

The only reads GetJobFn makes, and the only permissions it needs. Items come back as plain
Python values through `jobstatus.codec`, the projector's own codec, so the API reads exactly
what the projector wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from jobstatus.codec import from_item

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
    code = error.response.get("Error", {}).get("Code", "")
    return StoreUnavailable(code) if code in THROTTLING_CODES else error
