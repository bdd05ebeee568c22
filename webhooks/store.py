"""The deliveries table adapter: one `Ledger` per job and URL, claimed and settled by conditional writes.

Every write that could let an older version out after a newer one is conditional (see
`webhooks.ledger`); a lost race comes back as `ClaimLost` holding the ledger that won, for the
caller to decide again. botocore's DynamoDB client, passed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import ClientError

from webhooks.ledger import LEASE_SECONDS, Ledger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY: Final = "deliveryKey"
TTL_ATTRIBUTE: Final = "expiresAt"
KEEP_SECONDS: Final = 30 * 86400  # far beyond the last retry (about 3.2 days after the first attempt)

# The parts of the conditions, named.
NO_LEDGER = "attribute_not_exists(#highest)"
VERSION_IS_NEWER = "#highest < :v"
VERSION_IS_CLAIMED = "#highest = :v"
NOT_DELIVERED_YET = "(attribute_not_exists(#delivered) OR #delivered < :v)"
NO_LEASE = "(attribute_not_exists(#lease) OR #lease <= :now)"
NOT_GONE = "attribute_not_exists(#gone)"
RETRY_IS_DUE = "(attribute_not_exists(#retryAt) OR #retryAt <= :now)"
SAME_ATTEMPTS = "#attempts = :prev"

NAMES: Final = {
    "#highest": "highest",
    "#delivered": "delivered",
    "#lease": "leaseUntil",
    "#gone": "gone",
    "#retryAt": "retryAt",
    "#attempts": "attempts",
    "#expiresAt": TTL_ATTRIBUTE,
}


def delivery_key(job_id: str, url: str) -> str:
    """The ledger's key: the job and a hash of the URL (URLs can be 2 KiB; keys stay short)."""
    return f"{job_id}#{hashlib.sha256(url.encode()).hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class ClaimLost:
    """Someone else's write got there first; `ledger` is what is stored now."""

    ledger: Ledger


def _number(value: float | int) -> dict[str, str]:
    return {"N": repr(round(float(value), 3))}


def ledger_of(item: dict[str, Any] | None) -> Ledger:
    """A stored item (DynamoDB JSON) as a Ledger; the empty ledger when there is none."""
    if not item:
        return Ledger()

    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return Ledger(
        highest=item.get("highest", {}).get("S"),
        attempts=int(float(item["attempts"]["N"])) if "attempts" in item else 0,
        retry_at=number("retryAt"),
        delivered=item.get("delivered", {}).get("S"),
        lease_until=number("leaseUntil"),
        gone=bool(item.get("gone", {}).get("BOOL", False)),
    )


class DeliveryLedgerStore:
    """Reads and conditionally writes the deliveries table."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def load(self, key: str) -> Ledger:
        """The ledger of `key` (strongly consistent: it decides what may be sent)."""
        answer = self._client.get_item(TableName=self._table, Key={KEY: {"S": key}}, ConsistentRead=True)
        return ledger_of(answer.get("Item"))

    def claim(self, key: str, version: str, attempt: int, now: float) -> Ledger | ClaimLost:
        """Take the lease to make attempt `attempt` of `version`; ClaimLost if the ledger moved."""
        values: dict[str, Any] = {
            ":v": {"S": version},
            ":now": _number(now),
            ":lease": _number(now + LEASE_SECONDS),
            ":attempt": {"N": str(attempt)},
            ":expires": {"N": str(int(now) + KEEP_SECONDS)},
        }
        if attempt == 1:
            condition = (
                f"({NO_LEDGER} OR {VERSION_IS_NEWER}) AND {NOT_DELIVERED_YET} AND {NO_LEASE} AND {NOT_GONE}"
            )
            update = (
                "SET #highest = :v, #attempts = :attempt, #lease = :lease, #expiresAt = :expires"
                " REMOVE #retryAt"
            )
        else:
            condition = (
                f"{VERSION_IS_CLAIMED} AND {SAME_ATTEMPTS} AND {NO_LEASE} AND {RETRY_IS_DUE} AND {NOT_GONE}"
            )
            update = "SET #attempts = :attempt, #lease = :lease, #expiresAt = :expires"
            values[":prev"] = {"N": str(attempt - 1)}
        return self._write(key, update, condition, values)

    def delivered(self, key: str, version: str) -> Ledger | ClaimLost:
        """Record a 2xx: `version` is delivered and the lease released."""
        return self._write(
            key, "SET #delivered = :v REMOVE #lease, #retryAt", VERSION_IS_CLAIMED, {":v": {"S": version}}
        )

    def failed(self, key: str, version: str, retry_at: float | None) -> Ledger | ClaimLost:
        """Record a failed attempt: release the lease, and say when the next one is due (None: none)."""
        values: dict[str, Any] = {":v": {"S": version}}
        if retry_at is None:
            update = "REMOVE #lease, #retryAt"
        else:
            update = "SET #retryAt = :retryAt REMOVE #lease"
            values[":retryAt"] = _number(retry_at)
        return self._write(key, update, VERSION_IS_CLAIMED, values)

    def gone(self, key: str, version: str) -> Ledger | ClaimLost:
        """Record a 410: no more deliveries to this URL for this job."""
        return self._write(
            key,
            "SET #gone = :true REMOVE #lease, #retryAt",
            VERSION_IS_CLAIMED,
            {":v": {"S": version}, ":true": {"BOOL": True}},
        )

    def _write(self, key: str, update: str, condition: str, values: dict[str, Any]) -> Ledger | ClaimLost:
        names = {name: attr for name, attr in NAMES.items() if name in update or name in condition}
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: v for k, v in values.items() if k in update or k in condition},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item: Any = cast(dict[str, Any], error.response).get("Item")
            return ClaimLost(ledger_of(item) if isinstance(item, dict) else self.load(key))
        return ledger_of(answer.get("Attributes"))
