"""The status publisher's bookkeeping: pending events, counters, and the line for each undelivered one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from producers.publishing.entries import StatusEntry

logger = Logger(child=True)


@dataclass(slots=True)
class Pending:
    """One event not yet delivered, and how its attempts went."""

    item: StatusEntry
    attempts: int = 0
    not_before: float = 0.0
    last_error: str = ""
    log_keys: dict[str, Any] = field(default_factory=dict)  # the function that published it (`logkeys`)


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What happened to the events since the previous flush."""

    published: int
    retried: int
    undelivered: int  # handed to the outbox, or lost when the outbox refused them too
    lost: int
    circuit_open: bool = False  # the breaker was open at some point since the previous flush


@dataclass(slots=True)
class Counters:
    """Events by outcome, since the publisher started."""

    published: int = 0
    retried: int = 0
    undelivered: int = 0
    lost: int = 0


@dataclass(slots=True)
class DeliveryState:
    """What the senders share, under the publisher's lock."""

    pending: dict[str, Pending] = field(default_factory=dict)  # by eventId, in publish order
    in_flight: set[str] = field(default_factory=set)
    outbox_busy: int = 0
    counters: Counters = field(default_factory=Counters)
    reported: Counters = field(default_factory=Counters)
    reported_openings: int = 0
    outbox_seconds: float = 0.0  # EWMA of the outbox hand-over's duration


def log_undelivered(items: list[Pending], refused: dict[int, str], reason: str) -> None:
    """One ERROR line per event handed to the outbox; `refused` says, by `id(entry)`, what it refused."""
    for pending in items:
        entry = pending.item.entry
        outbox_error = refused.get(id(entry))
        logger.error(
            "status event not delivered to EventBridge"
            + (
                "; outbox refused it too, this line is the only record"
                if outbox_error
                else "; sent to outbox"
            ),
            extra={
                "jobId": pending.item.job_id,
                "eventId": pending.item.event.event_id,
                "status": pending.item.event.status.value,
                "reason": reason,
                "lastError": pending.last_error,
                "attempts": pending.attempts,
                "fallback": "none" if outbox_error else "outbox",
                "outboxError": outbox_error,
                "entry": dict(entry),
            },
        )
