"""The deliveries table adapter on moto: each conditional write refuses exactly what the ledger forbids."""

from __future__ import annotations

import pytest

from webhooks.ledger import Ledger
from webhooks.store import ClaimLost, delivery_key

pytestmark = pytest.mark.unit

V1, V2 = "0001#1#2026-11-22T07:00:00.000Z#a", "0001#3#2026-11-22T07:00:09.000Z#b"
NOW = 1_800_000_000.0
KEY = delivery_key("job-1", "https://hooks.example.com/in")


def test_key_is_the_job_and_a_short_hash_of_the_url():
    assert KEY.startswith("job-1#") and len(KEY) == len("job-1#") + 32
    assert delivery_key("job-1", "https://hooks.example.com/other") != KEY


def test_first_claim_then_a_second_one_while_the_lease_is_held_loses(ledger):
    assert ledger.load(KEY) == Ledger()
    claimed = ledger.claim(KEY, V1, 1, NOW)
    assert claimed == Ledger(highest=V1, attempts=1, lease_until=NOW + 60)
    lost = ledger.claim(KEY, V2, 1, NOW + 1)  # newer, but V1's attempt is in flight
    assert lost == ClaimLost(Ledger(highest=V1, attempts=1, lease_until=NOW + 60))
    assert isinstance(ledger.claim(KEY, V2, 1, NOW + 61), Ledger)  # the lease lapsed


def test_an_older_claim_after_a_newer_one_loses(ledger):
    ledger.claim(KEY, V2, 1, NOW)
    ledger.failed(KEY, V2, NOW + 5)
    lost = ledger.claim(KEY, V1, 1, NOW + 10)
    assert isinstance(lost, ClaimLost) and lost.ledger.highest == V2


def test_a_retry_claim_needs_the_due_time_and_the_same_attempt_count(ledger):
    ledger.claim(KEY, V1, 1, NOW)
    assert ledger.failed(KEY, V1, NOW + 5) == Ledger(highest=V1, attempts=1, retry_at=NOW + 5)
    assert isinstance(ledger.claim(KEY, V1, 2, NOW + 4), ClaimLost)  # not due yet
    assert isinstance(ledger.claim(KEY, V1, 3, NOW + 5), ClaimLost)  # not the attempt that follows
    assert ledger.claim(KEY, V1, 2, NOW + 5) == Ledger(
        highest=V1, attempts=2, retry_at=NOW + 5, lease_until=NOW + 65
    )
    assert isinstance(ledger.claim(KEY, V1, 2, NOW + 5), ClaimLost)  # the same retry only once


def test_delivered_and_gone_settle_only_the_claimed_version(ledger):
    ledger.claim(KEY, V2, 1, NOW)
    assert isinstance(ledger.delivered(KEY, V1), ClaimLost)
    assert ledger.delivered(KEY, V2) == Ledger(highest=V2, attempts=1, delivered=V2)
    assert isinstance(ledger.claim(KEY, V2, 1, NOW + 1), ClaimLost)  # delivered: never again
    other = delivery_key("job-2", "https://hooks.example.com/in")
    ledger.claim(other, V1, 1, NOW)
    assert ledger.gone(other, V1) == Ledger(highest=V1, attempts=1, gone=True)
    assert isinstance(ledger.claim(other, V2, 1, NOW + 1), ClaimLost)
