"""The delivery message, dispatcher to sender: one change of one job for one URL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from jobstatus.contract import STATUSES

DEFAULT_EVENTS: Final = ("COMPLETED", "FAILED")


class BadMessage(ValueError):
    """A delivery message that is not one we wrote; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """`{jobId, userId, url, version, status, body}`: `body` is the exact JSON text to sign and send."""

    job_id: str
    user_id: str
    url: str
    version: str
    status: str
    body: str

    def to_message(self) -> str:
        """The SQS message body (camelCase JSON)."""
        data = asdict(self)
        return json.dumps(
            {
                "jobId": data["job_id"],
                "userId": data["user_id"],
                "url": data["url"],
                "version": data["version"],
                "status": data["status"],
                "body": data["body"],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_message(cls, text: str) -> Delivery:
        """Parse an SQS message body; BadMessage when it is not a delivery."""
        try:
            data: Any = json.loads(text)
        except ValueError as error:
            raise BadMessage(f"not JSON: {error}") from None
        if not isinstance(data, dict):
            raise BadMessage("not a JSON object")
        fields = ("jobId", "userId", "url", "version", "status", "body")
        missing = [name for name in fields if not isinstance(data.get(name), str) or not data[name]]
        if missing:
            raise BadMessage(f"missing or not a string: {', '.join(missing)}")
        if data["status"] not in STATUSES:
            raise BadMessage(f"unknown status {data['status']!r}")
        return cls(data["jobId"], data["userId"], data["url"], data["version"], data["status"], data["body"])
