"""Standard Webhooks signing (DESIGN §4c): per-user secrets, the delivery body, the signed headers.

Signed with the `standardwebhooks` reference library, never by hand, so a customer verifying with
the same library agrees with us byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from standardwebhooks import Webhook

from api.core import job_view

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix Standard Webhooks names
MIN_MASTER_SECRET_BYTES: Final = 32


class SecretReader(Protocol):
    """The one Secrets Manager call we make (a botocore `secretsmanager` client has it)."""

    def get_secret_value(self, *, SecretId: str) -> Mapping[str, Any]:
        """The secret's value."""
        ...


class MasterSecretError(ValueError):
    """The master secret is missing or too short to derive users' secrets from."""


def user_secret(master: bytes, user_id: str) -> str:
    """The `whsec_` secret of one user: base64(HMAC-SHA256(master, userId)).

    Derived, never stored: rotating the master secret rotates every user's secret.
    """
    if len(master) < MIN_MASTER_SECRET_BYTES:
        raise MasterSecretError(f"the master secret must have at least {MIN_MASTER_SECRET_BYTES} bytes")
    digest = hmac.new(master, user_id.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def read_master_secret(client: SecretReader, secret_id: str) -> bytes:
    """The master secret's bytes from Secrets Manager (its SecretString as UTF-8); read once per container."""
    value = client.get_secret_value(SecretId=secret_id)
    text = value.get("SecretString")
    if not isinstance(text, str) or not text:
        raise MasterSecretError(f"secret {secret_id} has no SecretString")
    master = text.encode()
    if len(master) < MIN_MASTER_SECRET_BYTES:
        raise MasterSecretError(f"secret {secret_id} is shorter than {MIN_MASTER_SECRET_BYTES} bytes")
    return master


def event_type(status: str) -> str:
    """The webhook `type` of a status: `job.completed`, `job.failed`, `job.processing`, `job.queued`."""
    return f"job.{status.lower()}"


def webhook_id(job_id: str, version: str) -> str:
    """`webhook-id`: `{jobId}.{version}`, the same on every retry of one change."""
    return f"{job_id}.{version}"


def delivery_body(item: Mapping[str, Any]) -> str:
    """The JSON body of one change: `{"type", "timestamp", "data": <the GET body>}`.

    `timestamp` is the change's own time (the item's `updatedAt`), so every retry sends the same bytes.
    """
    body = {
        "type": event_type(str(item.get("status", ""))),
        "timestamp": item.get("updatedAt"),
        "data": job_view(dict(item)),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def signed_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt at `at` (its second is `webhook-timestamp`)."""
    moment = at.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
        "content-type": "application/json",
    }
