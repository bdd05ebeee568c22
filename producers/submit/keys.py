"""SubmitJobFn's `Idempotency-Key` store: two records per (user, key) in `IdempotencyTable`.

Powertools Idempotency's (`submit.request#<md5>`: in progress, then the stored 202 replayed to
repeats) and the job's reservation (`submit.job#<sha256>`: its jobId, createdAt and payload
hash, written before anything is published and kept across a failed run, so a retry publishes
the same job, DESIGN §2, §3). Both expire with the job (`JOB_TTL_DAYS` after its creation).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.exceptions import ClientError

from jobstatus.errors import client_error_code
from jobstatus.events import parse_timestamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RESERVATION_PREFIX: Final = "submit.job"
# Powertools' own attribute names (DynamoDBPersistenceLayer's defaults), shared by both records.
KEY_ATTR: Final = "id"
EXPIRY_ATTR: Final = "expiration"
# A reservation can vanish between the failed PutItem and the GetItem (it expired); try again.
MAX_RESERVE_ATTEMPTS: Final = 3


class KeyReused(Exception):
    """The Idempotency-Key already names a job submitted with another payload."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The job an Idempotency-Key names: its jobId, createdAt, and the hash of its payload."""

    job_id: str
    created_at: str
    payload_hash: str


def payload_hash(payload: Any) -> str:
    """A stable hash of a JSON payload (keys sorted, so the order of a body's keys is irrelevant)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def reservation_id(user_id: str, idempotency_key: str) -> str:
    """The table key of the reservation of (user, key); the key itself is never stored in clear."""
    # JSON, not a separator: no (user, key) pair can spell another one.
    digest = hashlib.sha256(json.dumps([user_id, idempotency_key]).encode()).hexdigest()
    return f"{RESERVATION_PREFIX}#{digest}"


@dataclass
class JobKeys:
    """The idempotency table, as SubmitJobFn uses it (one DynamoDB client for both records)."""

    client: DynamoDBClient
    table_name: str
    ttl_days: int
    wall_clock: Callable[[], float] = time.time
    persistence: DynamoDBPersistenceLayer = field(init=False)

    def __post_init__(self) -> None:
        self.persistence = DynamoDBPersistenceLayer(
            table_name=self.table_name,
            boto3_client=self.client,
            key_attr=KEY_ATTR,
            expiry_attr=EXPIRY_ATTR,
        )

    @property
    def expiry_seconds(self) -> int:
        """How long a key is remembered: as long as the job lives."""
        return self.ttl_days * 24 * 3600

    def reserve(self, user_id: str, idempotency_key: str, wanted: Reservation) -> Reservation:
        """The job the key names: `wanted` if the key is new (or its job expired), else the stored one.

        Raises `KeyReused` when the stored job was submitted with another payload, and botocore's
        errors when the table cannot be reached (nothing may be published then).
        """
        key = reservation_id(user_id, idempotency_key)
        expiration = int(parse_timestamp(wanted.created_at).timestamp()) + self.expiry_seconds
        for _ in range(MAX_RESERVE_ATTEMPTS):
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        KEY_ATTR: {"S": key},
                        "jobId": {"S": wanted.job_id},
                        "createdAt": {"S": wanted.created_at},
                        "payloadHash": {"S": wanted.payload_hash},
                        EXPIRY_ATTR: {"N": str(expiration)},
                    },
                    # TTL deletion lags by up to days: an expired reservation counts as absent.
                    ConditionExpression="attribute_not_exists(#id) OR #expiration < :now",
                    ExpressionAttributeNames={"#id": KEY_ATTR, "#expiration": EXPIRY_ATTR},
                    ExpressionAttributeValues={":now": {"N": str(int(self.wall_clock()))}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return wanted
            except ClientError as error:
                if client_error_code(error) != "ConditionalCheckFailedException":
                    raise
                old: Any = error.response
                item = old.get("Item") or self._get(key)
            if item is None:
                continue
            stored = Reservation(item["jobId"]["S"], item["createdAt"]["S"], item["payloadHash"]["S"])
            if stored.payload_hash != wanted.payload_hash:
                raise KeyReused("the Idempotency-Key was used before with another request body")
            return stored
        raise RuntimeError(f"the reservation {key} kept changing; giving up")  # pragma: no cover

    def _get(self, key: str) -> dict[str, Any] | None:
        # Only for stores that do not return the old item with a failed condition.
        response = self.client.get_item(
            TableName=self.table_name, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True
        )
        item = response.get("Item")
        return dict(item) if item else None
