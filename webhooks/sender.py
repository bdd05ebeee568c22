"""The sender's logic: one delivery message in, one outcome out (DESIGN §4c).

Order and retries come from the ledger (`webhooks.ledger`, stored by `webhooks.store`): claim,
check the URL again (SSRF, resolved now), sign, POST to the checked address, settle. The SQS
side (hide for the retry's wait, move to the DLQ) is the handler's, from the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from webhooks.http import HttpAnswer, post
from webhooks.ledger import Claim, Drop, Exhausted, Ledger, Wait, decide, retry_delay, visibility_for
from webhooks.model import Delivery
from webhooks.signing import signed_headers, webhook_id
from webhooks.ssrf import CheckedUrl, Resolver, WebhookRefused, check_webhook_url, system_resolver
from webhooks.store import ClaimLost, delivery_key

CLAIM_TRIES = 3


class LedgerStore(Protocol):
    """What the sender needs of the deliveries table (`webhooks.store.DeliveryLedgerStore`)."""

    def load(self, key: str) -> Ledger:
        """The stored ledger."""
        ...

    def claim(self, key: str, version: str, attempt: int, now: float) -> Ledger | ClaimLost:
        """Take the lease for an attempt."""
        ...

    def delivered(self, key: str, version: str) -> Ledger | ClaimLost:
        """Record a 2xx."""
        ...

    def failed(self, key: str, version: str, retry_at: float | None) -> Ledger | ClaimLost:
        """Record a failed attempt."""
        ...

    def gone(self, key: str, version: str) -> Ledger | ClaimLost:
        """Record a 410."""
        ...


Poster = Callable[[CheckedUrl, dict[str, str], bytes], HttpAnswer]


class Outcome(StrEnum):
    """What became of one delivery message."""

    DELIVERED = "delivered"  # 2xx: done
    GONE = "gone"  # 410: done, and no more for this job and URL
    DROPPED = "dropped"  # overtaken, a duplicate, or after a 410: done
    RETRY = "retry"  # the attempt failed: hide the message for the schedule's wait
    WAIT = "wait"  # not attempted (lease held, or not due yet): hide it for a while
    DEAD = "dead"  # schedule exhausted or a URL that can never pass: to the DLQ


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome, how long to hide the message (RETRY, WAIT), and a word on why."""

    outcome: Outcome
    visibility: int = 0
    detail: str = ""
    attempt: int = 0
    status_code: int | None = None


@dataclass
class Sender:
    """Delivers messages; every collaborator is passed in (tests give fakes and a fake clock)."""

    ledger: LedgerStore
    secret_for: Callable[[str], str]
    poster: Poster = post
    resolver: Resolver = system_resolver
    allow_local: bool = False
    clock: Callable[[], float] = time.time  # the schedule's clock
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # webhook-timestamp's

    def deliver(self, delivery: Delivery) -> Result:
        """Decide, claim, attempt and settle one delivery."""
        key = delivery_key(delivery.job_id, delivery.url)
        # No read first: most messages are a version's first attempt, whose claim needs none. A claim
        # that loses comes back with the stored ledger (ReturnValuesOnConditionCheckFailure), and
        # `decide` runs again on it.
        ledger = Ledger()
        for _ in range(CLAIM_TRIES):
            decision = decide(ledger, delivery.version, self.clock())
            if isinstance(decision, Drop):
                return Result(Outcome.DROPPED, detail=decision.reason)
            if isinstance(decision, Wait):
                return Result(Outcome.WAIT, visibility_for(decision.seconds), decision.reason)
            if isinstance(decision, Exhausted):
                return Result(Outcome.DEAD, detail="every scheduled attempt failed")
            assert isinstance(decision, Claim)
            claimed = self.ledger.claim(key, delivery.version, decision.attempt, self.clock())
            if isinstance(claimed, ClaimLost):
                ledger = claimed.ledger
                continue
            return self._attempt(delivery, key, decision.attempt)
        return Result(Outcome.WAIT, 1, "the ledger kept moving")

    def _attempt(self, delivery: Delivery, key: str, attempt: int) -> Result:
        try:
            checked = check_webhook_url(delivery.url, self.resolver, self.allow_local)
        except WebhookRefused as refused:
            if refused.permanent:
                self.ledger.failed(key, delivery.version, None)
                return Result(Outcome.DEAD, detail=f"refused: {refused.reason}", attempt=attempt)
            return self._failed(delivery, key, attempt, f"refused: {refused.reason}", None)
        message_id = webhook_id(delivery.job_id, delivery.version)
        headers = signed_headers(
            self.secret_for(delivery.user_id), message_id, delivery.body, self.wall_clock()
        )
        try:
            answer = self.poster(checked, headers, delivery.body.encode())
        except Exception as error:  # a poster must not raise; if one does, it is a failed attempt
            answer = HttpAnswer(None, f"{type(error).__name__}: {error}")
        if answer.status is not None and 200 <= answer.status < 300:
            self.ledger.delivered(key, delivery.version)
            return Result(Outcome.DELIVERED, attempt=attempt, status_code=answer.status)
        if answer.status == 410:
            self.ledger.gone(key, delivery.version)
            return Result(Outcome.GONE, attempt=attempt, status_code=410)
        why = answer.error or f"HTTP {answer.status}"
        return self._failed(delivery, key, attempt, why, answer.status)

    def _failed(self, delivery: Delivery, key: str, attempt: int, why: str, status: int | None) -> Result:
        delay = retry_delay(attempt)
        retry_at = None if delay is None else self.clock() + delay
        self.ledger.failed(key, delivery.version, retry_at)
        if delay is None:
            return Result(
                Outcome.DEAD,
                detail=f"attempt {attempt} failed ({why}); schedule exhausted",
                attempt=attempt,
                status_code=status,
            )
        return Result(Outcome.RETRY, visibility_for(delay), why, attempt, status)
