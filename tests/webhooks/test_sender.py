"""The sender against a real receiver on 127.0.0.1 that verifies each delivery with `Webhook.verify`.

Ledger in moto (in-process); the schedule's clock is fake, the signature's is real (the receiver
checks the timestamp against its own clock, as a customer's would).
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime

import pytest

from tests.webhooks.conftest import MASTER, USER
from tests.webhooks.fakes import Clock
from tests.webhooks.receiver import Receiver
from webhooks.http import post
from webhooks.ledger import Ledger
from webhooks.model import Delivery
from webhooks.sender import Outcome, Sender
from webhooks.signing import signed_headers, user_secret
from webhooks.ssrf import check_webhook_url
from webhooks.store import delivery_key

pytestmark = pytest.mark.unit

V1 = "0001#1#2026-11-22T07:00:00.000Z#00000000-0000-4000-8000-000000000001"
V2 = "0001#2#2026-11-22T07:00:05.000Z#00000000-0000-4000-8000-000000000002"
V3 = "0001#3#2026-11-22T07:01:00.000Z#00000000-0000-4000-8000-000000000003"


def delivery(url: str, version: str = V3, job_id: str = "job-1", status: str = "COMPLETED") -> Delivery:
    body = json.dumps(
        {"type": f"job.{status.lower()}", "timestamp": "2026-11-22T07:01:00.000Z", "data": {"jobId": job_id}}
    )
    return Delivery(job_id, USER, url, version, status, body)


def make_sender(ledger, clock: Clock, timeout: float = 0.5) -> Sender:
    return Sender(
        ledger=ledger,
        secret_for=functools.partial(user_secret, MASTER),
        poster=functools.partial(post, timeout=timeout),
        allow_local=True,
        clock=clock,
    )


def test_a_delivery_is_signed_so_the_reference_library_verifies_it(ledger, receiver):
    # Given a receiver holding the user's secret
    sender = make_sender(ledger, Clock())
    # When a change is delivered
    result = sender.deliver(delivery(receiver.url))
    # Then it verified, with Standard Webhooks headers and the exact body
    assert (result.outcome, result.attempt, result.status_code) == (Outcome.DELIVERED, 1, 204)
    (arrival,) = receiver.arrivals
    assert arrival.verified
    assert arrival.webhook_id == f"job-1.{V3}"
    assert arrival.payload == {
        "type": "job.completed",
        "timestamp": "2026-11-22T07:01:00.000Z",
        "data": {"jobId": "job-1"},
    }
    assert arrival.headers["webhook-signature"].startswith("v1,")
    assert abs(int(arrival.headers["webhook-timestamp"]) - time.time()) < 30
    assert arrival.headers["host"] == f"127.0.0.1:{receiver.port}"


def test_another_users_secret_does_not_verify(ledger):
    other = Receiver(secret=user_secret(MASTER, "someone-else")).start()
    try:
        make_sender(ledger, Clock()).deliver(delivery(other.url))
        (arrival,) = other.arrivals
        assert arrival.verified is False
    finally:
        other.stop()


def test_the_same_version_is_delivered_once(ledger, receiver):
    sender = make_sender(ledger, Clock())
    assert sender.deliver(delivery(receiver.url)).outcome is Outcome.DELIVERED
    again = sender.deliver(delivery(receiver.url))
    assert (again.outcome, again.detail) == (Outcome.DROPPED, "delivered")
    assert len(receiver.arrivals) == 1


def test_an_older_version_after_a_newer_one_is_dropped_never_sent(ledger, receiver):
    sender = make_sender(ledger, Clock())
    assert sender.deliver(delivery(receiver.url, V3)).outcome is Outcome.DELIVERED
    late = sender.deliver(delivery(receiver.url, V2))
    assert (late.outcome, late.detail) == (Outcome.DROPPED, "overtaken")
    assert [a.webhook_id for a in receiver.arrivals] == [f"job-1.{V3}"]


def test_older_is_dropped_once_a_newer_one_was_attempted_even_if_it_failed(ledger, receiver):
    receiver.plan = lambda webhook_id, n: "500" if webhook_id.endswith(V3) and n == 1 else "ok"
    clock = Clock()
    sender = make_sender(ledger, clock)
    first = sender.deliver(delivery(receiver.url, V3))
    assert (first.outcome, first.visibility, first.status_code) == (Outcome.RETRY, 5, 500)
    assert sender.deliver(delivery(receiver.url, V2)).outcome is Outcome.DROPPED
    clock.now += 5
    assert sender.deliver(delivery(receiver.url, V3)).outcome is Outcome.DELIVERED
    assert [a.webhook_id.split(".", 1)[1] for a in receiver.arrivals] == [V3, V3]


def test_a_newer_version_waits_while_an_older_attempt_is_in_flight(ledger, receiver):
    clock = Clock()
    sender = make_sender(ledger, clock)
    # An attempt of V1 holds the lease (as another sender would, mid-request).
    held = ledger.claim(delivery_key("job-1", receiver.url), V1, 1, clock.now)
    assert isinstance(held, Ledger) and held.lease_until == clock.now + 60
    waiting = sender.deliver(delivery(receiver.url, V2))
    assert (waiting.outcome, waiting.visibility) == (Outcome.WAIT, 2)  # looks again soon
    clock.now += 2
    again = sender.deliver(delivery(receiver.url, V2))
    assert (again.outcome, again.visibility) == (Outcome.WAIT, 2)  # still held
    assert receiver.arrivals == []
    clock.now += 59  # the lease lapsed (its holder died): V2 goes, and V1 can never follow
    assert sender.deliver(delivery(receiver.url, V2)).outcome is Outcome.DELIVERED
    assert sender.deliver(delivery(receiver.url, V1)).outcome is Outcome.DROPPED


def test_a_newer_version_goes_at_the_next_look_once_the_older_attempt_settled(ledger, receiver):
    clock = Clock()
    sender = make_sender(ledger, clock)
    key = delivery_key("job-1", receiver.url)
    ledger.claim(key, V1, 1, clock.now)  # V1's attempt in flight
    assert sender.deliver(delivery(receiver.url, V2)).visibility == 2
    ledger.delivered(key, V1)  # it settles (and releases the lease) a moment later
    clock.now += 2
    assert sender.deliver(delivery(receiver.url, V2)).outcome is Outcome.DELIVERED
    assert [arrival.webhook_id for arrival in receiver.arrivals] == [f"job-1.{V2}"]


def test_retries_follow_the_schedule_then_the_message_is_dead(ledger, receiver):
    receiver.plan = lambda _id, _n: "500"
    clock = Clock()
    sender = make_sender(ledger, clock)
    seen = []
    for _ in range(40):
        result = sender.deliver(delivery(receiver.url))
        seen.append((result.outcome.value, result.visibility))
        if result.outcome is Outcome.DEAD:
            break
        clock.now += result.visibility
    attempts = [v for outcome, v in seen if outcome == "retry"]
    assert attempts == [5, 300, 1800, 7200, 18000, 36000, 43200, 43200, 43200]
    # The 14 h, 20 h and 24 h waits are chained: 12 h, then the rest, without an attempt.
    assert [v for outcome, v in seen if outcome == "wait"] == [7200, 28800, 43200]
    assert seen[-1][0] == "dead"
    assert len(receiver.arrivals) == 10


def test_a_410_stops_every_later_delivery_to_that_url_for_the_job(ledger, receiver):
    receiver.plan = lambda _id, _n: "410"
    sender = make_sender(ledger, Clock())
    assert sender.deliver(delivery(receiver.url, V2)).outcome is Outcome.GONE
    later = sender.deliver(delivery(receiver.url, V3))
    assert (later.outcome, later.detail) == (Outcome.DROPPED, "gone")
    assert len(receiver.arrivals) == 1
    # Another job to the same URL is not affected.
    receiver.plan = lambda _id, _n: "ok"
    assert sender.deliver(delivery(receiver.url, V3, job_id="job-2")).outcome is Outcome.DELIVERED


@pytest.mark.parametrize(
    ("action", "why"),
    [
        ("500", "HTTP 500"),
        ("slow", "timed out"),
        ("garbage", "Error"),
        ("drop", "Error"),
        ("redirect", "HTTP 307"),
    ],
)
def test_failures_are_retried(ledger, receiver, action, why):
    receiver.plan = lambda _id, n: action if n == 1 else "ok"
    clock = Clock()
    sender = make_sender(ledger, clock, timeout=0.5)
    started = time.monotonic()
    first = sender.deliver(delivery(receiver.url))
    assert time.monotonic() - started < 1.4  # the timeout holds even for a receiver taking 1.5 s
    assert first.outcome is Outcome.RETRY, first
    assert why in first.detail or why.lower() in first.detail.lower(), first.detail
    assert receiver.followed_redirects == []
    clock.now += first.visibility
    assert sender.deliver(delivery(receiver.url)).outcome is Outcome.DELIVERED


def test_at_most_64_kib_of_an_answer_is_read(receiver):
    receiver.plan = lambda _id, _n: "big"
    checked = check_webhook_url(receiver.url, allow_local=True)
    headers = signed_headers(user_secret(MASTER, USER), "job-1.v", "{}", datetime.now(UTC))
    answer = post(checked, headers, b"{}", timeout=2)
    assert (answer.status, answer.bytes_read) == (200, 64 * 1024)


def test_a_receiver_down_for_a_while_gets_the_delivery_when_back(ledger, receiver):
    clock = Clock()
    sender = make_sender(ledger, clock)
    receiver.stop()
    down = sender.deliver(delivery(receiver.url))
    assert down.outcome is Outcome.RETRY
    assert "Connection" in down.detail or "refused" in down.detail.lower(), down.detail
    receiver.start()
    clock.now += down.visibility
    assert sender.deliver(delivery(receiver.url)).outcome is Outcome.DELIVERED
    assert len(receiver.delivered()) == 1


def test_the_address_connected_to_is_the_one_checked(ledger, receiver):
    # A resolver whose answer changes after the check: the first answer is the loopback receiver,
    # every later one a metadata address. The sender resolves once per attempt and connects to that
    # answer, so the second answer is never used for this attempt.
    answers = iter([["127.0.0.1"], ["169.254.169.254"], ["169.254.169.254"]])
    sender = make_sender(ledger, Clock())
    sender.resolver = lambda _host, _port: next(answers)
    url = f"http://receiver.test:{receiver.port}/hook"
    assert sender.deliver(delivery(url)).outcome is Outcome.DELIVERED
    assert receiver.arrivals[0].headers["host"] == f"receiver.test:{receiver.port}"
    # The next attempt (another version) sees the rebinding and refuses to connect at all.
    refused = sender.deliver(delivery(url, job_id="job-2"))
    assert refused.outcome is Outcome.RETRY
    assert "169.254.169.254" in refused.detail and "metadata" in refused.detail
    assert len(receiver.arrivals) == 1


def test_a_url_that_can_never_pass_is_dead_at_once(ledger):
    sender = make_sender(ledger, Clock())
    sender.allow_local = False
    result = sender.deliver(delivery("http://127.0.0.1:9/hook"))
    assert result.outcome is Outcome.DEAD
    assert "https" in result.detail
