"""A `JobStatusChanged` event as a PutEvents entry: built and validated before anything is sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from jobstatus.events import DETAIL_TYPE, EVENTBRIDGE_MAX_ENTRY_BYTES, JobStatusChanged, Status, utc_now
from producers.publishing.putevents import Entry, entry_size

logger = Logger(child=True)


class InvalidStatusEvent(ValueError):
    """The event breaks the contract or exceeds 256 KiB: refused before it is enqueued."""


@dataclass(frozen=True, slots=True)
class JobRef:
    """The fields every event of one job (attempt) repeats."""

    job_id: str
    user_id: str
    created_at: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A validated event and the PutEvents entry that carries it."""

    event: JobStatusChanged
    entry: Entry

    @property
    def job_id(self) -> str:
        """The event's jobId."""
        return self.event.job_id


def build_status_entry(
    job: JobRef,
    status: Status,
    *,
    bus_name: str,
    source: str,
    occurred_at: str | None = None,
    event_id: str | None = None,
    **details: Any,
) -> StatusEntry:
    """Build and validate a `JobStatusChanged` entry; `details` are optional model fields.

    Raises `InvalidStatusEvent` when the contract refuses the event or it is over 256 KiB.
    """
    fields = {name: value for name, value in details.items() if value is not None}
    try:
        event = JobStatusChanged(
            event_id=event_id or str(uuid.uuid4()),
            job_id=job.job_id,
            user_id=job.user_id,
            status=status,
            occurred_at=occurred_at or utc_now(),
            created_at=job.created_at,
            attempt=job.attempt,
            **fields,
        )
    except ValidationError as error:
        raise InvalidStatusEvent(f"{status} event for job {job.job_id!r} is invalid: {error}") from error
    entry: Entry = {
        "Source": source,
        "DetailType": DETAIL_TYPE,
        "Detail": event.model_dump_json(exclude_none=True),
        "EventBusName": bus_name,
    }
    size = entry_size(entry)
    if size > EVENTBRIDGE_MAX_ENTRY_BYTES:
        raise InvalidStatusEvent(
            f"{status} event for job {job.job_id!r} is {size} bytes; EventBridge takes at most "
            f"{EVENTBRIDGE_MAX_ENTRY_BYTES}"
        )
    return StatusEntry(event, entry)


def status_entry_from(entry: Mapping[str, Any]) -> StatusEntry | None:
    """A recorded PutEvents entry of a status event, validated again; None (with an ERROR line) if not one."""
    try:
        if entry.get("DetailType") != DETAIL_TYPE:
            raise ValueError(f"DetailType is {entry.get('DetailType')!r}")
        event = JobStatusChanged.from_detail(json.loads(entry["Detail"]))
        restored: Entry = {
            "Source": str(entry["Source"]),
            "DetailType": DETAIL_TYPE,
            "Detail": str(entry["Detail"]),
            "EventBusName": str(entry["EventBusName"]),
        }
    except (KeyError, TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        logger.error(
            "a recorded status entry is unreadable", extra={"entry": dict(entry), "error": str(error)}
        )
        return None
    return StatusEntry(event, restored)
