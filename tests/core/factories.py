"""Event and history builders shared by the core tests."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from jobstatus.events import JobStatusChanged, Status, format_timestamp, parse_timestamp
from projector.fold import ttl_of

CREATED_AT = "2026-11-22T07:00:00.000Z"
TTL_DAYS = 30
NOW = float(ttl_of(CREATED_AT, TTL_DAYS) - 86_400)  # a day before the jobs expire


def event(
    status: Status | str = Status.QUEUED,
    occurred_at: str = "2026-11-22T07:00:01.000Z",
    *,
    job_id: str = "job-1",
    attempt: int = 1,
    created_at: str = CREATED_AT,
    **fields: Any,
) -> JobStatusChanged:
    """One event of `job_id` with a fresh eventId."""
    return JobStatusChanged(
        event_id=str(uuid.uuid4()),
        job_id=job_id,
        user_id=f"user-of-{job_id}",
        status=Status(status),
        occurred_at=occurred_at,
        created_at=created_at,
        attempt=attempt,
        **fields,
    )


def at(seconds: float) -> str:
    """The contract timestamp `seconds` after CREATED_AT."""
    base = parse_timestamp(CREATED_AT).timestamp()
    return format_timestamp(datetime.fromtimestamp(base + seconds, UTC))


def history(job_id: str, rnd: random.Random, *, created_at: str = CREATED_AT) -> list[JobStatusChanged]:
    """A plausible life of one job: 4-6 events, sometimes a failed first attempt and a retry."""
    events = [event(Status.QUEUED, at(1), job_id=job_id, created_at=created_at)]
    events.append(
        event(Status.PROCESSING, at(2), job_id=job_id, started_at=at(2), progress=10, created_at=created_at)
    )
    if rnd.random() < 0.3:
        error = {"code": "FAL_ERROR", "message": "boom", "retryable": True}
        events.append(event(Status.FAILED, at(3), job_id=job_id, error=error, created_at=created_at))
        events.append(event(Status.QUEUED, at(4), job_id=job_id, attempt=2, created_at=created_at))
        events.append(
            event(
                Status.COMPLETED,
                at(5),
                job_id=job_id,
                attempt=2,
                output_url=f"https://cdn.example.com/{job_id}.mp4",
                result={"seed": rnd.randint(0, 9)},
                metrics={"falLatencyMs": 1234.5},
                created_at=created_at,
            )
        )
    else:
        events.append(event(Status.PROCESSING, at(3), job_id=job_id, progress=60, created_at=created_at))
        if rnd.random() < 0.5:
            events.append(
                event(
                    Status.COMPLETED,
                    at(5),
                    job_id=job_id,
                    output_url=f"https://cdn.example.com/{job_id}.mp4",
                    metrics={"falLatencyMs": 99},
                    created_at=created_at,
                )
            )
        else:
            error = {"code": "NSFW", "message": "refused", "retryable": False}
            events.append(event(Status.FAILED, at(5), job_id=job_id, error=error, created_at=created_at))
    return events
