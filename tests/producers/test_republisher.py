"""RepublisherFn: outbox messages back on the bus; what still fails is a batch item failure."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from jobstatus.events import Status
from producers.publishing.entries import JobRef, build_status_entry
from producers.publishing.putevents import Backoff, entry_json
from producers.republisher.handler import RepublisherDeps, handle
from tests.producers.fakes import FakeEvents, FakeMetrics, lambda_context

pytestmark = pytest.mark.unit


def message(n: int, bus: str = "jobs-test") -> dict[str, str]:
    job = JobRef(f"job-{n}", "user-1", "2026-11-22T07:20:31.123Z")
    entry = build_status_entry(job, Status.QUEUED, bus_name=bus, source="jobs.fal-invoker").entry
    return {"messageId": f"m{n}", "body": entry_json(entry)}


def deps(events, metrics=None) -> RepublisherDeps:
    return RepublisherDeps(events=events, metrics=metrics, budget_seconds=0.05, backoff=Backoff(0.001, 0.002))


def test_every_message_goes_back_on_the_bus() -> None:
    events, metrics = FakeEvents(), FakeMetrics()
    answer = handle({"Records": [message(1), message(2)]}, lambda_context(), deps(events, metrics))
    assert answer == {"batchItemFailures": []}
    assert [d["jobId"] for d in events.details()] == ["job-1", "job-2"]
    assert metrics.values["StatusEventsRepublished"] == 2


def test_entries_that_still_fail_are_reported_for_exactly_their_messages() -> None:
    events = FakeEvents(lambda n, e: ["InvalidArgument" if '"job-2"' in x["Detail"] else None for x in e])
    answer = handle({"Records": [message(1), message(2), message(3)]}, lambda_context(), deps(events))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert sorted(d["jobId"] for d in events.details()) == ["job-1", "job-3"]


@pytest.mark.parametrize(
    "body",
    [
        "nope",
        json.dumps([1]),
        json.dumps({"Source": "x", "DetailType": "JobStatusChanged", "Detail": "{}", "EventBusName": "b"}),
        json.dumps({"Source": "jobs.submit", "DetailType": "JobStatusChanged", "EventBusName": "b"}),
        json.dumps({"Source": "jobs.submit", "DetailType": "JobStatusChanged", "Detail": "{}", "Extra": 1}),
    ],
)
def test_a_message_that_is_not_our_entry_is_a_failure(body: str) -> None:
    events = FakeEvents()
    answer = handle(
        {"Records": [{"messageId": "bad", "body": body}, message(1)]}, lambda_context(), deps(events)
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert len(events.delivered) == 1


@mock_aws
def test_republishes_to_a_real_bus_api() -> None:
    client = boto3.client("events", region_name="us-east-1")
    client.create_event_bus(Name="jobs-test")
    answer = handle({"Records": [message(1)]}, lambda_context(), deps(client))
    assert answer == {"batchItemFailures": []}
