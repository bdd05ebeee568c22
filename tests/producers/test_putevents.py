"""PutEvents helpers: batching limits, error classification, retries of failed entries only."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from producers.publishing.putevents import Backoff, chunks, failure_of_call, put_once, put_with_retries
from tests.producers.fakes import FakeEvents, throttled

pytestmark = pytest.mark.unit


def client_error(code: str, status: int) -> ClientError:
    metadata: Any = {"HTTPStatusCode": status}
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": metadata}, "PutEvents")


def entry(n: int, size: int = 10) -> Any:
    return {
        "Source": "jobs.submit",
        "DetailType": "JobStatusChanged",
        "Detail": "x" * size,
        "EventBusName": f"b{n}",
    }


def test_chunks_respect_ten_entries_and_256_kib() -> None:
    assert [len(c) for c in chunks([entry(i) for i in range(23)])] == [10, 10, 3]
    big = [entry(i, 100 * 1024) for i in range(5)]
    assert [len(c) for c in chunks(big)] == [2, 2, 1]


def test_backoff_is_full_jitter_under_the_cap() -> None:
    rng = random.Random(1)
    backoff = Backoff(base_seconds=0.1, cap_seconds=0.3)
    delays = [backoff.delay(n, rng) for n in range(1, 8) for _ in range(50)]
    assert all(0 <= d <= 0.3 for d in delays) and max(delays) > 0.2


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (throttled(), "ThrottlingException", True),
        (
            client_error("Weird", 503),
            "Weird",
            True,
        ),
        (
            client_error("AccessDeniedException", 400),
            "AccessDeniedException",
            False,
        ),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "NetworkError", True),
        (NoCredentialsError(), "NoCredentialsError", False),
        (RuntimeError("bug"), "RuntimeError", False),
    ],
)
def test_call_failures_are_classified(error: Exception, code: str, retryable: bool) -> None:
    failure = failure_of_call(error)
    assert (failure.code, failure.retryable) == (code, retryable)


def test_an_answer_without_a_result_counts_as_a_retryable_failure() -> None:
    class Short:
        def put_events(self, *, Entries):
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}

    first, second = put_once(Short(), [entry(1), entry(2)])
    assert first is None and second is not None and second.retryable


def test_put_with_retries_resends_only_failed_entries() -> None:
    events = FakeEvents(
        lambda n, e: ["InternalException", None, "InvalidArgument"] if n == 1 else [None] * len(e)
    )
    sent = put_with_retries(
        events, [entry(1), entry(2), entry(3)], deadline=float("inf"), backoff=Backoff(0.001, 0.001)
    )
    assert [e["EventBusName"] for e in sent.delivered] == ["b2", "b1"]
    assert [(e["EventBusName"], f.code) for e, f in sent.failed] == [("b3", "InvalidArgument")]
    assert events.calls[1] == [entry(1)] and sent.retried == 1


def test_put_with_retries_stops_at_the_deadline() -> None:
    now = [0.0]
    events = FakeEvents(lambda n, e: throttled())
    sent = put_with_retries(
        events,
        [entry(1)],
        deadline=1.0,
        backoff=Backoff(0.4, 0.4),
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        rng=random.Random(3),
        max_attempts=100,
    )
    assert sent.failed and sent.failed[0][1].code == "ThrottlingException"
    assert now[0] < 1.0 and len(events.calls) >= 2
