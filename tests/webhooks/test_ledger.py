"""The pure delivery rules: decide, the retry schedule, SQS visibility for long waits."""

from __future__ import annotations

import pytest

from webhooks.ledger import (
    Claim,
    Drop,
    Exhausted,
    Ledger,
    Wait,
    decide,
    retry_delay,
    visibility_for,
)

pytestmark = pytest.mark.unit

V1, V2, V3 = (
    "0001#1#2026-11-22T07:00:00.000Z#a",
    "0001#2#2026-11-22T07:00:01.000Z#b",
    "0001#3#2026-11-22T07:00:02.000Z#c",
)
NOW = 1000.0


@pytest.mark.parametrize(
    ("ledger", "version", "decision"),
    [
        (Ledger(), V2, Claim(1)),
        (
            Ledger(highest=V1, attempts=3, retry_at=NOW + 500),
            V2,
            Claim(1),
        ),  # never waits for an older backoff
        (Ledger(highest=V3, attempts=1), V2, Drop("overtaken")),
        (Ledger(highest=V3, attempts=1, delivered=V3), V2, Drop("overtaken")),
        (Ledger(highest=V2, attempts=1, delivered=V2), V2, Drop("delivered")),
        (Ledger(highest=V2, attempts=1, gone=True), V3, Drop("gone")),
        # a held lease: look again in 2 s (the attempt usually settles and releases it long
        # before the lease ends), or when the lease ends if that is sooner
        (Ledger(highest=V1, attempts=1, lease_until=NOW + 7), V2, Wait(2, "an attempt is in flight")),
        (Ledger(highest=V2, attempts=1, lease_until=NOW + 7), V2, Wait(2, "an attempt is in flight")),
        (Ledger(highest=V1, attempts=1, lease_until=NOW + 1.5), V2, Wait(1.5, "an attempt is in flight")),
        (
            Ledger(highest=V2, attempts=2, lease_until=NOW - 1, retry_at=NOW + 300),
            V2,
            Wait(300, "next attempt not due"),
        ),
        (Ledger(highest=V2, attempts=2, retry_at=NOW), V2, Claim(3)),
        (Ledger(highest=V2, attempts=9, retry_at=NOW - 1), V2, Claim(10)),
        (Ledger(highest=V2, attempts=10), V2, Exhausted()),
    ],
)
def test_decide(ledger, version, decision):
    assert decide(ledger, version, NOW) == decision


def test_the_standard_webhooks_schedule_then_nothing():
    waits = [retry_delay(attempt) for attempt in range(1, 11)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None]


@pytest.mark.parametrize(
    ("wait", "visibility"),
    [(0, 1), (0.2, 1), (5, 5), (5.1, 6), (43200, 43200), (50400, 43200), (86400, 43200)],
)
def test_visibility_is_whole_seconds_within_sqs_limits(wait, visibility):
    assert visibility_for(wait) == visibility
