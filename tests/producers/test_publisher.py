"""StatusPublisher: build errors at the call site, background delivery, per-entry retries, the outbox."""

from __future__ import annotations

import json
import logging
import time

import boto3
import pytest
from moto import mock_aws

from jobstatus.events import Status
from local.engines import free_port
from producers.aws import FAST_FAIL
from producers.publishing.entries import InvalidStatusEvent, JobRef, build_status_entry, status_entry_from
from producers.publishing.outbox import SqsOutbox
from producers.publishing.publisher import StatusPublisher
from producers.publishing.putevents import Backoff
from tests.producers.fakes import FakeEvents, FakeMetrics, FakeOutbox, throttled

pytestmark = pytest.mark.unit

JOB = JobRef("job-1", "user-1", "2026-11-22T07:20:31.123Z")
FAST = Backoff(base_seconds=0.001, cap_seconds=0.005)


def publisher(events, outbox=None, metrics=None, **kwargs) -> StatusPublisher:
    return StatusPublisher(
        events,
        outbox or FakeOutbox(),
        bus_name="jobs-test",
        source="jobs.fal-invoker",
        metrics=metrics,
        backoff=kwargs.pop("backoff", FAST),
        **kwargs,
    )


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


def test_build_refuses_an_event_the_contract_refuses() -> None:
    with pytest.raises(InvalidStatusEvent, match="outputUrl"):
        build_status_entry(JOB, Status.QUEUED, bus_name="b", source="s", output_url="https://x.test/v.mp4")


def test_build_refuses_an_entry_over_256_kib() -> None:
    with pytest.raises(InvalidStatusEvent, match="bytes"):
        build_status_entry(JOB, Status.QUEUED, bus_name="b", source="s" * (256 * 1024))


def test_emit_raises_only_from_build_and_enqueues_nothing_then() -> None:
    events = FakeEvents()
    pub = publisher(events)
    with pytest.raises(InvalidStatusEvent):
        pub.emit(JOB, Status.PROCESSING, error={"code": "X", "message": "m", "retryable": False})
    assert pub.pending() == 0
    assert pub.flush(soon()).published == 0


def test_healthy_bus_delivers_every_event_once_and_counts_it() -> None:
    events, metrics = FakeEvents(), FakeMetrics()
    pub = publisher(events, metrics=metrics)
    for status in (Status.QUEUED, Status.PROCESSING):
        pub.emit(JOB, status)
    report = pub.flush(soon())
    assert report.published == 2 and report.undelivered == 0
    assert [d["status"] for d in events.details()] == ["QUEUED", "PROCESSING"]
    assert (
        events.delivered[0]["Source"] == "jobs.fal-invoker"
        and events.delivered[0]["EventBusName"] == "jobs-test"
    )
    assert metrics.values["StatusEventsPublished"] == 2
    # The next flush reports only what happened since.
    assert pub.flush(soon()).published == 0
    pub.close()


def test_partial_failures_resend_only_the_failed_entries() -> None:
    # Given: the first call fails its second entry (throttled), the next ones succeed
    def script(call_no, entries):
        return [None, "ThrottlingException"] if call_no == 1 and len(entries) == 2 else [None] * len(entries)

    events, metrics = FakeEvents(script), FakeMetrics()
    pub = publisher(events, metrics=metrics)
    first = pub.build(JOB, Status.QUEUED)
    second = pub.build(JOB, Status.PROCESSING)
    # When: both are published together
    with pub._cond:  # hold the worker so both go in one call
        pub.publish(first)
        pub.publish(second)
    report = pub.flush(soon())
    # Then: the failed one was sent again, alone; each was delivered exactly once
    assert report.published == 2 and report.retried >= 1
    ids = [json.loads(e["Detail"])["eventId"] for e in events.delivered]
    assert sorted(ids) == sorted([first.event.event_id, second.event.event_id])
    assert all(len(call) == 1 for call in events.calls[1:])
    assert metrics.values["StatusEventsRetried"] >= 1


def test_internal_failure_codes_are_retried() -> None:
    events = FakeEvents(
        lambda n, entries: ["InternalFailure"] * len(entries) if n <= 2 else [None] * len(entries)
    )
    pub = publisher(events)
    pub.emit(JOB, Status.QUEUED)
    assert pub.flush(soon()).published == 1
    assert len(events.calls) == 3


def test_throttled_calls_end_in_the_outbox_at_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    events, outbox, metrics = FakeEvents(lambda n, e: throttled()), FakeOutbox(), FakeMetrics()
    pub = publisher(events, outbox, metrics, max_attempts=10_000)
    item = pub.emit(JOB, Status.COMPLETED, output_url="https://cdn.test/v.mp4")
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        report = pub.flush(time.monotonic() + 0.5)  # room for a retry even on a busy machine
    assert time.monotonic() - started < 5.0  # bounded by the deadline, not by 10,000 attempts
    assert report.undelivered == 1 and report.lost == 0 and report.published == 0
    assert outbox.stored == [item.entry]
    assert metrics.values["StatusEventsUndelivered"] == 1
    assert len(events.calls) >= 2  # it did retry before giving up
    line = next(r for r in caplog.records if "not delivered" in r.getMessage())
    assert line.levelno == logging.ERROR
    fields = vars(line)
    assert fields["jobId"] == "job-1" and fields["entry"] == item.entry and fields["fallback"] == "outbox"


def test_a_permanent_entry_error_goes_to_the_outbox_without_waiting() -> None:
    events, outbox = FakeEvents(lambda n, e: ["MalformedDetail"] * len(e)), FakeOutbox()
    pub = publisher(events, outbox)
    pub.emit(JOB, Status.QUEUED)
    started = time.monotonic()
    report = pub.flush(time.monotonic() + 5)
    assert time.monotonic() - started < 2
    assert report.undelivered == 1 and len(events.calls) == 1 and len(outbox.stored) == 1


def test_exhausted_attempts_go_to_the_outbox_from_the_background() -> None:
    events, outbox = FakeEvents(lambda n, e: throttled()), FakeOutbox()
    pub = publisher(events, outbox, max_attempts=3)
    pub.emit(JOB, Status.QUEUED)
    report = pub.flush(soon(5))
    assert len(events.calls) == 3 and report.undelivered == 1 and len(outbox.stored) == 1


def test_when_the_outbox_refuses_too_the_log_line_is_the_record(caplog: pytest.LogCaptureFixture) -> None:
    pub = publisher(FakeEvents(lambda n, e: throttled()), FakeOutbox(refuse="AccessDenied"))
    item = pub.emit(JOB, Status.QUEUED)
    with caplog.at_level(logging.ERROR):
        report = pub.flush(time.monotonic() + 0.03)
    assert report.undelivered == 1 and report.lost == 1
    line = next(r for r in caplog.records if "only record" in r.getMessage())
    assert vars(line)["entry"] == item.entry and vars(line)["outboxError"] == "AccessDenied"


def test_an_outbox_that_raises_does_not_reach_the_caller() -> None:
    class Exploding:
        def send(self, entries):
            raise RuntimeError("boom")

    pub = publisher(FakeEvents(lambda n, e: throttled()), Exploding())
    pub.emit(JOB, Status.QUEUED)
    assert pub.flush(time.monotonic() + 0.02).lost == 1


def test_an_unreachable_endpoint_lands_in_the_outbox_by_the_deadline() -> None:
    # Given: a real EventBridge client pointed at a closed port, with our fast-fail config
    events = boto3.client("events", endpoint_url=f"http://127.0.0.1:{free_port()}", config=FAST_FAIL)
    outbox = FakeOutbox()
    pub = publisher(events, outbox)
    # When
    pub.emit(JOB, Status.QUEUED)  # what this costs the caller is measured by bench/producers.py
    report = pub.flush(time.monotonic() + 0.1)
    # Then
    assert report.undelivered == 1 and len(outbox.stored) == 1


@mock_aws
def test_sqs_outbox_stores_each_entry_as_its_json() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="outbox")["QueueUrl"]
    entries = [
        build_status_entry(JOB, Status.QUEUED, bus_name="b", source="jobs.submit").entry for _ in range(12)
    ]
    assert SqsOutbox(sqs, url).send(entries) == []
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch]
        )
    assert sorted(b["Detail"] for b in bodies) == sorted(e["Detail"] for e in entries)


@mock_aws
def test_sqs_outbox_reports_what_it_could_not_store() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    entry = build_status_entry(JOB, Status.QUEUED, bus_name="b", source="jobs.submit").entry
    missing = "https://sqs.us-east-1.amazonaws.com/123456789012/nope"
    assert next(why for _, why in SqsOutbox(sqs, missing).send([entry]))
    assert SqsOutbox(sqs, "").send([entry])[0][1].startswith("no outbox queue")


def test_a_recorded_entry_reads_back_as_the_same_event() -> None:
    item = build_status_entry(JOB, Status.QUEUED, bus_name="b", source="s")
    stored = json.loads(json.dumps(dict(item.entry)))  # as an idempotency record keeps it
    assert status_entry_from(stored) == item


@pytest.mark.parametrize(
    "change",
    [
        {"DetailType": "Other"},
        {"Detail": "{not json"},
        {"Detail": json.dumps({"jobId": "job-1"})},
        {"EventBusName": None},
    ],
)
def test_an_unreadable_recorded_entry_is_refused_with_a_log_line(
    change: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    entry = dict(build_status_entry(JOB, Status.QUEUED, bus_name="b", source="s").entry)
    entry.update(change)
    entry = {k: v for k, v in entry.items() if v is not None}
    with caplog.at_level(logging.ERROR):
        assert status_entry_from(entry) is None
    assert "unreadable" in caplog.text
