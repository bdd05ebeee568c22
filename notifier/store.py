"""The connections table adapter (DESIGN §4b): who is connected, and who follows which topic.

One table, TTL 2 h (`expiresAt`): per connection a row `(connectionId, "#connection")` with the
caller (`userId`, `admin`), and a row `(connectionId, topic)` per subscription, the caller copied
onto it, so the notifier finds everything it needs in the `ByTopic` index (HASH `topic`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from jobstatus.http import Caller
from notifier.core import CONNECTION_TTL_SECONDS, Subscriber

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TOPIC_INDEX: Final = "ByTopic"
CONNECTION_ROW: Final = "#connection"  # the sort key of a connection's own row (no topic starts with #)
BATCH_WRITE_MAX: Final = 25
BATCH_WRITE_ATTEMPTS: Final = 5


class StoreError(Exception):
    """DynamoDB did not take a write after retries (the caller fails the message or record)."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One open connection: who opened it and the topics it follows."""

    connection_id: str
    caller: Caller
    topics: frozenset[str]


class ConnectionStore:
    """Reads and writes the connections table; built outside, passed in."""

    def __init__(self, client: DynamoDBClient, table_name: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def _row(self, connection_id: str, sort_key: str, caller: Caller) -> dict[str, Any]:
        return {
            "connectionId": {"S": connection_id},
            "sk": {"S": sort_key},
            "userId": {"S": caller.user_id},
            "admin": {"BOOL": caller.is_admin},
            "expiresAt": {"N": str(int(self._clock()) + CONNECTION_TTL_SECONDS)},
        }

    def add_connection(self, connection_id: str, caller: Caller) -> None:
        """Remember an opened connection and who opened it."""
        self._client.put_item(TableName=self._table, Item=self._row(connection_id, CONNECTION_ROW, caller))

    def connection(self, connection_id: str) -> Connection | None:
        """The connection and its topics (one Query), or None when it is unknown or gone."""
        caller: Caller | None = None
        topics: set[str] = set()
        for row in self._rows(connection_id):
            if row["sk"]["S"] == CONNECTION_ROW:
                caller = _caller_of(row)
            else:
                topics.add(row["sk"]["S"])
        if caller is None:
            return None
        return Connection(connection_id, caller, frozenset(topics))

    def _rows(self, connection_id: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#c = :c",
            "ExpressionAttributeNames": {"#c": "connectionId"},
            "ExpressionAttributeValues": {":c": {"S": connection_id}},
            "ConsistentRead": True,
        }
        while True:
            response = self._client.query(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def subscribe(self, connection: Connection, topics: Iterable[str]) -> None:
        """Add subscription rows for `topics` (each carries the topic and the connection's caller)."""
        requests = []
        for topic in topics:
            row = self._row(connection.connection_id, topic, connection.caller)
            row["topic"] = {"S": topic}
            requests.append({"PutRequest": {"Item": row}})
        self._batch_write(requests)

    def unsubscribe(self, connection_id: str, topics: Iterable[str]) -> None:
        """Delete the subscription rows of `topics` (absent ones are ignored)."""
        self._batch_write(
            [
                {"DeleteRequest": {"Key": {"connectionId": {"S": connection_id}, "sk": {"S": topic}}}}
                for topic in topics
                if topic != CONNECTION_ROW
            ]
        )

    def forget(self, connection_id: str) -> int:
        """Delete the connection and all its subscriptions; how many rows went."""
        keys = [
            {"DeleteRequest": {"Key": {"connectionId": row["connectionId"], "sk": row["sk"]}}}
            for row in self._rows(connection_id)
        ]
        self._batch_write(keys)
        return len(keys)

    def subscribers(self, topic: str) -> list[Subscriber]:
        """Every connection following `topic`, with its caller (from the `ByTopic` index)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": TOPIC_INDEX,
            "KeyConditionExpression": "#t = :t",
            "ExpressionAttributeNames": {"#t": "topic"},
            "ExpressionAttributeValues": {":t": {"S": topic}},
        }
        found: list[Subscriber] = []
        while True:
            response = self._client.query(**request)
            found.extend(
                Subscriber(row["connectionId"]["S"], _caller_of(row)) for row in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: Any = requests[start : start + BATCH_WRITE_MAX]
            for _ in range(BATCH_WRITE_ATTEMPTS):
                response = self._client.batch_write_item(RequestItems={self._table: pending})
                pending = response.get("UnprocessedItems", {}).get(self._table, [])
                if not pending:
                    break
            else:
                raise StoreError(f"{len(pending)} writes left unprocessed by DynamoDB")


def _caller_of(row: dict[str, Any]) -> Caller:
    return Caller(user_id=row["userId"]["S"], is_admin=bool(row.get("admin", {}).get("BOOL", False)))
