"""The local stream event source on moto: order, batches, filter, partial failures, bisection, give-up."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from local.streams import StreamPoller, StreamSource, filters_of, matches
from notifier.handler import handle
from ops.template import Template
from tests.live.support import ALICE, job_event

pytestmark = pytest.mark.unit


def _times(n: int) -> list[str]:
    return [f"2026-11-22T07:00:{second:02d}.000Z" for second in range(1, n + 1)]


class Recorder:
    """A function that records its batches and answers as told."""

    def __init__(self, answers: list[Any] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.answers = list(answers or [])

    def __call__(self, event: dict[str, Any]) -> Any:
        self.batches.append([r["dynamodb"]["NewImage"]["status"]["S"] for r in event["Records"]])
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        if isinstance(answer, Exception):
            raise answer
        return answer(event) if callable(answer) else answer


def _source(template: Template, arn: str, invoke: Any, **overrides: Any) -> StreamSource:
    # The template's own mapping settings and filter.
    spec = template.resolve(
        template.resources["NotifierFn"]["Properties"]["Events"]["JobsStreamEvent"]["Properties"]
    )
    settings: dict[str, Any] = {
        "batch_size": spec["BatchSize"],
        "max_retries": spec["MaximumRetryAttempts"],
        "bisect_on_error": spec["BisectBatchOnFunctionError"],
        "patterns": filters_of(spec["FilterCriteria"]),
    }
    return StreamSource(stream_arn=arn, invoke=invoke, **(settings | overrides))


def _write_history(live, job_id: str, statuses: list[str]) -> None:
    for status, at in zip(statuses, _times(len(statuses)), strict=True):
        extra = {"output_url": "https://cdn.example.com/x.mp4"} if status == "COMPLETED" else {}
        live.project(job_event(job_id, status, at, **extra))


def test_records_arrive_in_order_in_batches_and_only_those_the_filter_keeps(live, template):
    recorder = Recorder()
    poller = StreamPoller(live.streams, _source(template, live.stream_arn, recorder, batch_size=2))
    poller.start()
    _write_history(live, "job-1", ["QUEUED", "PROCESSING", "PROCESSING", "COMPLETED"])
    poller.poll_once()
    assert recorder.batches == [["QUEUED", "PROCESSING"], ["PROCESSING", "COMPLETED"]]
    # moto's key-only INSERT before each new item carries no version: the template's filter drops it.
    assert poller.stats.filtered == 1
    assert poller.poll_once() == 0 and len(recorder.batches) == 2


def test_a_partial_failure_is_retried_from_the_first_failed_record(live, template):
    def fail_second(event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]}

    recorder = Recorder([fail_second])
    poller = StreamPoller(live.streams, _source(template, live.stream_arn, recorder))
    poller.start()
    _write_history(live, "job-1", ["QUEUED", "PROCESSING", "COMPLETED"])
    poller.poll_once()
    assert recorder.batches == [["QUEUED", "PROCESSING", "COMPLETED"], ["PROCESSING", "COMPLETED"]]
    assert poller.stats.delivered == 3


def test_a_function_error_bisects_the_batch(live, template):
    recorder = Recorder([RuntimeError("boom")])
    poller = StreamPoller(live.streams, _source(template, live.stream_arn, recorder))
    poller.start()
    _write_history(live, "job-1", ["QUEUED", "PROCESSING", "PROCESSING", "COMPLETED"])
    poller.poll_once()
    assert recorder.batches == [
        ["QUEUED", "PROCESSING", "PROCESSING", "COMPLETED"],
        ["QUEUED", "PROCESSING"],
        ["PROCESSING", "COMPLETED"],
    ]


def test_records_still_failing_after_the_retries_go_to_the_failure_destination(live, template):
    failing = {"batchItemFailures": [{"itemIdentifier": "not-a-record"}]}
    recorder = Recorder([failing] * 10)
    given_up: list[list[dict[str, Any]]] = []
    poller = StreamPoller(
        live.streams, _source(template, live.stream_arn, recorder, max_retries=2, on_failure=given_up.append)
    )
    poller.start()
    _write_history(live, "job-1", ["QUEUED"])
    poller.poll_once()
    assert len(recorder.batches) == 3  # the first try and 2 retries
    assert [[r["dynamodb"]["NewImage"]["status"]["S"] for r in batch] for batch in given_up] == [["QUEUED"]]
    # The shard moves on: later records are handed over.
    _write_history(live, "job-2", ["QUEUED"])
    recorder.answers.clear()
    poller.poll_once()
    assert recorder.batches[-1] == ["QUEUED"]


def test_the_poller_drives_the_notifier_unchanged_to_a_subscriber(live, template):
    live.connect("c-alice", ALICE)
    live.send("c-alice", {"action": "subscribe", "jobIds": ["job-1"]})
    poller = StreamPoller(
        live.streams, _source(template, live.stream_arn, lambda event: handle(event, live.notifier_deps))
    )
    poller.start()
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop, 0.01), daemon=True)
    thread.start()
    try:
        _write_history(live, "job-1", ["QUEUED", "PROCESSING", "COMPLETED"])
        for _ in range(200):
            if len(live.api.frames["c-alice"]) == 3:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert [m["job"]["status"] for m in live.api.take("c-alice")] == ["QUEUED", "PROCESSING", "COMPLETED"]


def test_filter_patterns():
    pattern = {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"version": {"S": [{"exists": True}]}}},
    }
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"version": {"S": "0001#1#x#y"}}}}
    assert matches(pattern, record)
    assert not matches(pattern, {**record, "eventName": "REMOVE"})
    assert not matches(pattern, {"eventName": "INSERT", "dynamodb": {"NewImage": {"jobId": {"S": "j"}}}})
    assert not matches(pattern, {"eventName": "INSERT"})
    assert matches({"a": [{"prefix": "jo"}], "b": [{"exists": False}]}, {"a": "job"})
    with pytest.raises(ValueError, match="not supported"):
        matches({"a": [{"numeric": [">", 1]}]}, {"a": 2})
