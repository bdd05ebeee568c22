"""The pure rules of delivery order and retries (DESIGN §4c): no boto3, no I/O.

For one job and URL the deliveries table keeps one `Ledger`: the greatest version ever claimed
(`highest`), its attempts so far, when its next attempt is due, the greatest version delivered,
an in-flight lease, and whether the receiver answered 410.

Why nothing older is ever delivered after something newer: a delivery is sent only by the
holder of a claim, and a claim is one conditional write that succeeds only when no lease is
held (so two versions never race on the wire) and its version is at least `highest` (so the
watermark only grows). Once a version has been claimed (attempted), every older one is dropped
as overtaken, even if that attempt failed: a timed-out attempt may still have reached the
receiver, so "attempted" is the only safe meaning of "has been delivered". The newer version
carries the newer state, so a dropped one loses nothing the receiver still needs; the newest
always ends delivered, in the DLQ, or stopped by a 410.

The lease covers one attempt only (at most the 10 s HTTP timeout, far below `LEASE_SECONDS`), not
the wait between retries: a newer version never waits for an older one's backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The Standard Webhooks retry schedule: the wait after each failed attempt (then the DLQ).
RETRY_SCHEDULE_SECONDS: Final = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)
MAX_ATTEMPTS: Final = len(RETRY_SCHEDULE_SECONDS) + 1
# Longer than any attempt can take (the HTTP timeout is 10 s, the function's 30 s).
LEASE_SECONDS: Final = 60
# A delivery that finds a lease held looks again this soon (or when the lease ends, if sooner):
# most attempts take milliseconds, and the lease is released when one settles, so waiting out
# the whole lease would hold a newer version back for up to a minute behind an older one.
LEASE_RECHECK_SECONDS: Final = 2
# SQS refuses a visibility timeout above 12 h: a longer wait is made of several (see `visibility_for`).
MAX_VISIBILITY_SECONDS: Final = 12 * 3600


@dataclass(frozen=True, slots=True)
class Ledger:
    """One job and URL's delivery record, as stored (times in epoch seconds)."""

    highest: str | None = None
    attempts: int = 0
    retry_at: float | None = None
    delivered: str | None = None
    lease_until: float | None = None
    gone: bool = False


@dataclass(frozen=True, slots=True)
class Drop:
    """Deliver nothing, forget the message: `reason` is `gone`, `delivered` or `overtaken`."""

    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: look again in `seconds` (a lease is held, or the next attempt is not due yet)."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class Claim:
    """Attempt now: attempt number `attempt` of this version (1 for a version never tried)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Every scheduled attempt failed: the message goes to the DLQ."""


Decision = Drop | Wait | Claim | Exhausted


def decide(ledger: Ledger, version: str, now: float) -> Decision:  # noqa: PLR0911 - one return per rule
    """What to do with a delivery of `version` given the stored ledger, at `now`."""
    if ledger.gone:
        return Drop("gone")
    if ledger.delivered is not None and ledger.delivered >= version:
        return Drop("delivered" if ledger.delivered == version else "overtaken")
    if ledger.highest is not None and ledger.highest > version:
        return Drop("overtaken")
    if ledger.lease_until is not None and ledger.lease_until > now:
        return Wait(min(ledger.lease_until - now, LEASE_RECHECK_SECONDS), "an attempt is in flight")
    if ledger.highest == version:
        if ledger.attempts >= MAX_ATTEMPTS:
            return Exhausted()
        if ledger.retry_at is not None and ledger.retry_at > now:
            return Wait(ledger.retry_at - now, "next attempt not due")
        return Claim(ledger.attempts + 1)
    return Claim(1)


def retry_delay(attempt: int) -> float | None:
    """The wait after failed attempt number `attempt`, or None when it was the last."""
    if attempt >= MAX_ATTEMPTS:
        return None
    return float(RETRY_SCHEDULE_SECONDS[attempt - 1])


def visibility_for(wait_seconds: float) -> int:
    """The SQS visibility timeout for a wait: whole seconds, at least 1, at most 12 h.

    A longer wait (the 14 h, 20 h and 24 h steps) is chained: the message comes back after 12 h,
    `decide` answers `Wait` for the rest (the due time is in the ledger, not in the message), and
    the sender hides it again. Receives that only wait never count as attempts.
    """
    return max(1, min(MAX_VISIBILITY_SECONDS, int(-(-wait_seconds // 1))))
