"""FalInvokerFn end to end in-process: Fal mocked at the HTTP layer (respx), idempotency on moto."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import boto3
import fal_client.client
import httpx
import pytest
import respx
from moto import mock_aws

from jobstatus.events import JobStatusChanged
from jobstatus.storable import unstorable_reason
from local.functions import held_after_response
from producers.invoker.fal import FalClientGateway
from producers.invoker.falresult import trim_result
from producers.invoker.handler import fal_key, handle, make_runner
from producers.invoker.records import FinishedRecord, FinishedRecords
from producers.invoker.request import job_id_for
from producers.invoker.runner import JobRunner
from producers.publishing.afterresponse import AfterResponse
from producers.settings import ProducerSettings
from tests.producers.fakes import FakeEvents, FakeMetrics, lambda_context, throttled
from tests.producers.test_integration import create_idempotency_table

pytestmark = pytest.mark.unit

MODEL = "fal-ai/kling-video/v2/master/text-to-video"
QUEUE = "https://queue.fal.run"
REQUESTS = f"{QUEUE}/fal-ai/kling-video/requests"
VIDEO = "https://v3.fal.media/files/rabbit/out.mp4"


@pytest.fixture(autouse=True)
def quick_fal_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """fal-client's own backoff (0.1 s doubling, 10 attempts) shrunk: the same retries, fast."""
    monkeypatch.setattr(fal_client.client, "BASE_DELAY", 0.0001)
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 3)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_idempotency_table(ddb, "idempotency")
        sqs = boto3.client("sqs", region_name="us-east-1")
        outbox = sqs.create_queue(QueueName="outbox")["QueueUrl"]
        yield {"dynamodb": ddb, "sqs": sqs, "outbox": outbox}


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


def build_runner(
    aws: dict[str, Any], events: FakeEvents, metrics: FakeMetrics, outbox: str, **more: Any
) -> JobRunner:
    settings = ProducerSettings(
        event_bus_name="jobs-test",
        outbox_queue_url=outbox,
        idempotency_table_name="idempotency",
        fal_poll_seconds=0.001,
        fal_retry_base_seconds=0.001,
        deadline_margin_seconds=1.0,
        **more,
    )
    return make_runner(
        FalClientGateway(lambda: "test-key"),
        settings,
        events=cast(Any, events),
        sqs=aws["sqs"],
        dynamodb=aws["dynamodb"],
        metrics_sink=metrics,
    )


@pytest.fixture
def runner(aws: dict[str, Any], events: FakeEvents, metrics: FakeMetrics) -> Iterator[JobRunner]:
    built = build_runner(aws, events, metrics, aws["outbox"])
    yield built
    built.publisher.close()


def record(detail: dict[str, Any], event_id: str = "evt-1") -> dict[str, Any]:
    body = {
        "version": "0",
        "id": event_id,
        "detail-type": "VideoGenerationRequested",
        "source": "jobs.submit",
        "account": "123456789012",
        "time": "2026-11-22T07:20:31Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }
    return {"Records": [{"messageId": f"m-{event_id}", "body": json.dumps(body)}]}


def request(job_id: str = "job-1", **overrides: Any) -> dict[str, Any]:
    detail = {
        "jobId": job_id,
        "userId": "user-1",
        "createdAt": "2026-11-22T07:20:31.123Z",
        "model": MODEL,
        "input": {"prompt": "a rabbit"},
    }
    detail.update(overrides)
    return {k: v for k, v in detail.items() if v is not None}


def fal_routes(mock: respx.MockRouter, request_id: str = "req-1") -> dict[str, respx.Route]:
    base = f"{REQUESTS}/{request_id}"
    return {
        "submit": mock.post(f"{QUEUE}/{MODEL}").respond(
            200,
            json={
                "request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            },
        ),
        "status": mock.get(f"{base}/status", params={"logs": "true"}).mock(
            side_effect=[
                httpx.Response(200, json={"status": "IN_QUEUE", "queue_position": 0}),
                httpx.Response(200, json={"status": "IN_PROGRESS", "logs": []}),
                httpx.Response(
                    200, json={"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 3.1}}
                ),
            ]
        ),
        # SyncClient.result() polls once more (without logs) before it fetches the response.
        "final_status": mock.get(f"{base}/status", params={"logs": "false"}).respond(
            200, json={"status": "COMPLETED", "logs": None}
        ),
        "result": mock.get(base).respond(
            200,
            json={
                "video": {"url": VIDEO, "content_type": "video/mp4", "file_size": 123},
                "seed": 7,
                "big": "x" * 20_000,
            },
        ),
    }


def statuses(events: FakeEvents) -> list[JobStatusChanged]:
    return [JobStatusChanged.from_detail(d) for d in events.details()]


def test_success_publishes_queued_processing_completed(
    runner: JobRunner, events: FakeEvents, metrics: FakeMetrics
) -> None:
    with respx.mock(assert_all_called=True) as mock:
        routes = fal_routes(mock)
        answer = handle(record(request()), lambda_context(), runner)
    assert answer == {"batchItemFailures": []}
    queued, processing, completed = statuses(events)
    assert [e.status for e in (queued, processing, completed)] == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert processing.result == {"falRequestId": "req-1"} and processing.started_at
    assert completed.output_url == VIDEO and completed.started_at == processing.started_at
    assert completed.result is not None and completed.result["falRequestId"] == "req-1"
    assert (
        completed.result["seed"] == 7
        and "big" not in completed.result
        and completed.result["droppedKeys"] == ["big"]
    )
    assert completed.metrics is not None and set(completed.metrics) == {"falLatencyMs", "queueWaitMs"}
    assert {e.job_id for e in (queued, processing, completed)} == {"job-1"}
    assert json.loads(routes["submit"].calls.last.request.content) == {"prompt": "a rabbit"}
    assert routes["submit"].calls.last.request.headers["Authorization"] == "Key test-key"
    assert "FalLatency" in metrics.values and metrics.values["StatusEventsPublished"] == 3
    assert metrics.values["JobsHandled"] == 1


def test_a_redelivered_request_is_not_submitted_twice(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        handle(record(request()), lambda_context(), runner)
        again = handle(record(request()), lambda_context(), runner)
    assert again == {"batchItemFailures": []}
    assert routes["submit"].call_count == 1
    # The redelivery runs nothing again; it re-publishes the first run's events, byte for byte
    # (same eventIds: the projection absorbs them), so a lost flush is made good.
    first, second = events.delivered[:3], events.delivered[3:]
    assert sorted(second, key=json.dumps) == sorted(first, key=json.dumps)
    assert sorted(json.loads(e["Detail"])["status"] for e in second) == ["COMPLETED", "PROCESSING", "QUEUED"]


def test_a_run_that_died_after_submitting_resumes_the_same_fal_request(
    runner: JobRunner, events: FakeEvents
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        routes["status"].side_effect = RuntimeError("the process died here")
        first = handle(record(request()), lambda_context(), runner)
        assert first == {"batchItemFailures": [{"itemIdentifier": "m-evt-1"}]}
        routes["status"].side_effect = [httpx.Response(200, json={"status": "COMPLETED", "logs": []})]
        second = handle(record(request()), lambda_context(), runner)
    assert second == {"batchItemFailures": []}
    assert routes["submit"].call_count == 1
    assert statuses(events)[-1].status == "COMPLETED"


def test_fal_4xx_is_a_failed_job_not_retryable(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        submit = mock.post(f"{QUEUE}/{MODEL}").respond(
            422, json={"detail": [{"loc": ["body", "prompt"], "msg": "too long"}]}
        )
        handle(record(request()), lambda_context(), runner)
    failed = statuses(events)[-1]
    assert failed.status == "FAILED" and failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("FAL_REJECTED", False)
    assert "422" in failed.error.message and "too long" in failed.error.message
    assert submit.call_count == 1


def test_fal_5xx_then_success_completes(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        ok = routes["submit"].return_value
        assert ok is not None
        routes["submit"].side_effect = [httpx.Response(500, json={"detail": "boom"}), ok]
        handle(record(request()), lambda_context(), runner)
    assert routes["submit"].call_count == 2
    assert [e.status for e in statuses(events)] == ["QUEUED", "PROCESSING", "COMPLETED"]


def test_fal_5xx_every_time_fails_retryable(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        submit = mock.post(f"{QUEUE}/{MODEL}").respond(
            503, json={"detail": "down"}, headers={"x-fal-request-id": "r"}
        )
        handle(record(request()), lambda_context(), runner)
    failed = statuses(events)[-1]
    assert failed.error is not None and (failed.error.code, failed.error.retryable) == (
        "FAL_UNAVAILABLE",
        True,
    )
    assert submit.call_count == 3  # fal_max_attempts


def test_fal_429_after_retries_fails_retryable(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        submit = mock.post(f"{QUEUE}/{MODEL}").respond(429, json={"detail": "rate limited"})
        handle(record(request()), lambda_context(), runner)
    failed = statuses(events)[-1]
    assert failed.error is not None and (failed.error.code, failed.error.retryable) == (
        "FAL_RATE_LIMITED",
        True,
    )
    assert submit.call_count > 1  # retried (by fal-client, then by us) before failing


def test_an_error_inside_a_completed_result_fails_the_job(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        routes["status"].side_effect = [
            httpx.Response(
                200,
                json={
                    "status": "COMPLETED",
                    "logs": [],
                    "error": "CUDA out of memory",
                    "error_type": "runner_error",
                },
            )
        ]
        handle(record(request()), lambda_context(), runner)
    failed = statuses(events)[-1]
    assert failed.status == "FAILED" and failed.error is not None
    assert failed.error.code == "FAL_RESULT_ERROR" and "CUDA out of memory" in failed.error.message
    assert failed.result == {"falRequestId": "req-1"} and routes["result"].call_count == 0


def test_a_result_without_a_video_url_fails_the_job(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        routes["result"].return_value = httpx.Response(200, json={"images": []})
        handle(record(request()), lambda_context(), runner)
    assert statuses(events)[-1].error.code == "FAL_RESULT_INVALID"  # type: ignore[union-attr]


def test_the_deadline_fails_the_job_before_lambda_would_kill_it(
    runner: JobRunner, events: FakeEvents
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        routes["status"].side_effect = None
        routes["status"].return_value = httpx.Response(200, json={"status": "IN_QUEUE", "queue_position": 3})
        # Margin 1 s: 1.5 s to wait, so the deadline falls in the polling even on a cold, busy run.
        handle(record(request()), lambda_context(2_500), runner)
    failed = statuses(events)[-1]
    assert failed.status == "FAILED" and failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("DEADLINE_EXCEEDED", True)
    assert routes["status"].call_count >= 1


def test_invalid_input_is_a_failed_job(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        submit = mock.post(f"{QUEUE}/{MODEL}")
        handle(record(request(input="not an object")), lambda_context(), runner)
    assert [e.status for e in statuses(events)] == ["QUEUED", "FAILED"]
    assert statuses(events)[-1].error.code == "INVALID_INPUT"  # type: ignore[union-attr]
    assert submit.call_count == 0


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"detail-type": "Something", "detail": {}}),
        json.dumps({"detail-type": "VideoGenerationRequested", "detail": {"model": MODEL, "input": {}}}),
        json.dumps(
            {"detail-type": "VideoGenerationRequested", "detail": {"jobId": "bad id!", "userId": "u"}}
        ),
        json.dumps({"detail-type": "VideoGenerationRequested", "detail": {"userId": "u"}}),
    ],
)
def test_a_record_that_names_no_job_is_a_batch_item_failure(
    runner: JobRunner, events: FakeEvents, metrics: FakeMetrics, body: str
) -> None:
    answer = handle({"Records": [{"messageId": "m1", "body": body}]}, lambda_context(), runner)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert events.delivered == []
    assert metrics.values["JobsHandled"] == 0


def test_without_job_id_or_created_at_the_invoker_makes_them(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        fal_routes(mock)
        handle(record(request(jobId=None, createdAt=None), event_id="evt-9"), lambda_context(), runner)
    job_id = statuses(events)[0].job_id
    assert job_id == job_id_for("evt-9") and uuid.UUID(job_id).version == 4


def test_trim_result_keeps_small_fields_and_names_the_dropped_ones() -> None:
    trimmed = trim_result({"a": 1, "huge": "x" * 40_000, "video": {"url": VIDEO}}, "r")
    assert trimmed == {"falRequestId": "r", "a": 1, "video": {"url": VIDEO}, "droppedKeys": ["huge"]}


def test_fal_key_comes_from_the_environment_or_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fal_key(ProducerSettings(fal_key="k1")) == "k1"
    assert fal_key(ProducerSettings.from_env()) is None
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="fal", SecretString=json.dumps({"FAL_KEY": "k2"}))["ARN"]
        assert fal_key(ProducerSettings(fal_key_secret_arn=arn)) == "k2"


# -- the post-response phase: flush, then delete the finished record ---------------------------


def received(aws: dict[str, Any], queue: str, detail: dict[str, Any]) -> dict[str, Any]:
    """One InvokerQueue record as the event source mapping hands it over (the message in flight)."""
    body = json.loads(record(detail)["Records"][0]["body"])
    aws["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    return receive(aws, queue)


def receive(aws: dict[str, Any], queue: str) -> dict[str, Any]:
    message = aws["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"][0]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
    }


def messages_in(aws: dict[str, Any], queue: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def recorded_event_ids(aws: dict[str, Any]) -> set[str]:
    """The eventIds of the events the job's idempotency record holds."""
    items = aws["dynamodb"].scan(TableName="idempotency")["Items"]
    (job,) = [i for i in items if i["id"]["S"].startswith("fal-invoker.job")]
    return {json.loads(e["Detail"])["eventId"] for e in json.loads(job["data"]["S"])["events"]}


def invoke_deferred(
    runner: JobRunner, record_: dict[str, Any], records: FinishedRecords
) -> tuple[dict[str, Any], Any]:
    """The Lambda entry's shape: a wrapped handler, its post-response work held until `run()`."""
    after = AfterResponse()
    handler = after.wrap(lambda event, context: handle(event, context, runner, records, after))
    with held_after_response(after) as held:
        answer = handler({"Records": [record_]}, lambda_context())
    return answer, held


def test_the_flush_runs_after_the_response_and_then_the_finished_record_is_deleted(
    aws: dict[str, Any], runner: JobRunner, events: FakeEvents, metrics: FakeMetrics
) -> None:
    queue = aws["sqs"].create_queue(QueueName="invoker")["QueueUrl"]
    message = received(aws, queue, request())
    with respx.mock(assert_all_called=False) as mock:
        fal_routes(mock)
        answer, held = invoke_deferred(runner, message, FinishedRecords(aws["sqs"], queue))
    # The response keeps the record (the mapping must not delete it before the events are settled).
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["messageId"]}]}
    assert messages_in(aws, queue) == (0, 1) and len(held.works) == 2  # settle, then the metrics
    assert metrics.values["JobsHandled"] == 1  # listed for the mapping, but handled
    held.run()
    assert sorted(e.status for e in statuses(events)) == ["COMPLETED", "PROCESSING", "QUEUED"]
    assert messages_in(aws, queue) == (0, 0)


def test_a_record_whose_events_are_nowhere_is_kept_and_its_redelivery_publishes_them(
    aws: dict[str, Any], metrics: FakeMetrics
) -> None:
    queue = aws["sqs"].create_queue(QueueName="invoker")["QueueUrl"]
    records = FinishedRecords(aws["sqs"], queue)
    message = received(aws, queue, request())
    # First run: the bus throttles every call and there is no outbox, so every event is lost
    # for this invocation (its ERROR lines are the only record).
    down = FakeEvents(script=lambda n, entries: throttled())
    first = build_runner(aws, down, metrics, outbox="")
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        _, held = invoke_deferred(first, message, records)
        held.run()
    first.publisher.close()
    assert down.delivered == [] and len(down.calls) >= 1
    recorded = recorded_event_ids(aws)
    assert len(recorded) == 3
    assert messages_in(aws, queue) == (0, 1)  # kept: not deleted
    # Its visibility timeout ends; the redelivery finds the job done and publishes its events.
    aws["sqs"].change_message_visibility(
        QueueUrl=queue, ReceiptHandle=message["receiptHandle"], VisibilityTimeout=0
    )
    again = receive(aws, queue)
    up = FakeEvents()
    second = build_runner(aws, up, metrics, aws["outbox"])
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        _, held = invoke_deferred(second, again, records)
        held.run()
    second.publisher.close()
    assert routes["submit"].call_count == 0  # the job is not run again
    assert {d["eventId"] for d in up.details()} == recorded
    assert sorted(d["status"] for d in up.details()) == ["COMPLETED", "PROCESSING", "QUEUED"]
    assert messages_in(aws, queue) == (0, 0)


def test_finished_records_that_cannot_be_deleted_are_named(aws: dict[str, Any]) -> None:
    queue = aws["sqs"].create_queue(QueueName="invoker")["QueueUrl"]
    good = received(aws, queue, request())

    class Broken:
        def delete_message_batch(self, **_: Any) -> Any:
            raise throttled("DeleteMessageBatch")

    finished = FinishedRecord(good["messageId"], good["receiptHandle"], "job-1")
    assert FinishedRecords(cast(Any, Broken()), queue).delete([finished]) == [good["messageId"]]
    assert FinishedRecords(aws["sqs"], queue).delete([finished]) == []
    assert messages_in(aws, queue) == (0, 0)


def test_after_the_response_the_flush_can_wait_for_a_slow_bus(
    aws: dict[str, Any], metrics: FakeMetrics
) -> None:
    def slow(call: int, entries: list[dict[str, Any]]) -> list[str | None]:
        time.sleep(0.15)
        return [None] * len(entries)

    bus = FakeEvents(script=slow)
    runner = build_runner(
        aws, bus, metrics, aws["outbox"], status_flush_seconds=0.02, status_flush_after_response_seconds=2.0
    )
    queue = aws["sqs"].create_queue(QueueName="invoker")["QueueUrl"]
    # Before the response, the job cannot wait 150 ms: its events go to the outbox.
    with respx.mock(assert_all_called=False) as mock:
        fal_routes(mock)
        handle(record(request()), lambda_context(), runner)
    assert messages_in(aws, aws["outbox"])[0] >= 1
    aws["sqs"].purge_queue(QueueUrl=aws["outbox"])
    # After it, the flush waits for the bus: nothing goes to the outbox.
    message = received(aws, queue, request("job-2"))
    with respx.mock(assert_all_called=False) as mock:
        fal_routes(mock)
        _, held = invoke_deferred(runner, message, FinishedRecords(aws["sqs"], queue))
    held.run()
    runner.publisher.close()
    assert messages_in(aws, aws["outbox"]) == (0, 0)
    assert sorted(d["status"] for d in bus.details() if d["jobId"] == "job-2") == [
        "COMPLETED",
        "PROCESSING",
        "QUEUED",
    ]
    assert messages_in(aws, queue) == (0, 0)


# -- `request` on every event, and Fal's result made storable (DESIGN §2) ----------------------

REQUEST = {"model": MODEL, "input": {"prompt": "a rabbit"}}
CUT = "[cut: nested deeper than 32 levels]"


def nested(count: int, leaf: Any) -> Any:
    """`count` objects nested under key "n", the innermost holding `leaf`."""
    value = leaf
    for _ in range(count):
        value = {"n": value}
    return value


def test_every_event_of_a_completed_job_carries_the_request(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        fal_routes(mock)
        handle(record(request()), lambda_context(), runner)
    assert [(d["status"], d["request"]) for d in events.details()] == [
        ("QUEUED", REQUEST),
        ("PROCESSING", REQUEST),
        ("COMPLETED", REQUEST),
    ]


def test_every_event_of_a_failed_job_carries_the_request(runner: JobRunner, events: FakeEvents) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(f"{QUEUE}/{MODEL}").respond(422, json={"detail": "no"})
        handle(record(request()), lambda_context(), runner)
    assert [(d["status"], d["request"]) for d in events.details()] == [
        ("QUEUED", REQUEST),
        ("FAILED", REQUEST),
    ]


def test_a_job_whose_input_is_not_an_object_has_no_request_field(
    runner: JobRunner, events: FakeEvents, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), respx.mock(assert_all_called=False):
        handle(record(request(input="not an object")), lambda_context(), runner)
    assert [d["status"] for d in events.details()] == ["QUEUED", "FAILED"]
    assert [d.get("request") for d in events.details()] == [None, None]
    line = next(r for r in caplog.records if r.getMessage() == "the job's events carry no request field")
    assert (vars(line)["jobId"], vars(line)["reason"]) == ("job-1", "input is not a JSON object")


def test_the_request_input_is_made_storable_while_fal_gets_it_as_sent(
    runner: JobRunner, events: FakeEvents, caplog: pytest.LogCaptureFixture
) -> None:
    arguments = {"prompt": "a rabbit", "guidance": 1e200, "": "dropped", "deep": nested(31, 0)}
    with caplog.at_level(logging.WARNING), respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        handle(record(request(input=arguments)), lambda_context(), runner)
    # input is level 3: its "deep" object level 4, so 29 objects fit and the 30th is cut
    stored = {"prompt": "a rabbit", "guidance": "1e+200", "deep": nested(28, {"n": CUT})}
    assert [d["request"] for d in events.details()] == [{"model": MODEL, "input": stored}] * 3
    assert json.loads(routes["submit"].calls.last.request.content) == arguments
    line = next(r for r in caplog.records if "input made storable" in r.getMessage())
    assert vars(line)["jobId"] == "job-1" and vars(line)["changeCount"] == 3
    assert vars(line)["changes"] == [
        "deep" + ".n" * 29 + ": nested deeper than 32 levels, cut",
        "guidance: number 1e+200 kept as a string",
        "value: an empty map key dropped",
    ]


@pytest.mark.parametrize(
    ("fal_fields", "stored", "change"),
    [
        ({"score": 1e200}, {"score": "1e+200"}, "score: number 1e+200 kept as a string"),
        (
            {"seed": 12345678901234567890123456789012345678901},
            {"seed": "12345678901234567890123456789012345678901"},
            "seed: number 12345678901234567890123456789012345678901 kept as a string",
        ),
        ({"tags": {"": 1, "a": 2}}, {"tags": {"a": 2}}, "tags: an empty map key dropped"),
        (
            # result is level 2, "deep" level 3: 30 objects fit, the 31st is cut
            {"deep": nested(40, 0)},
            {"deep": nested(29, {"n": CUT})},
            "deep" + ".n" * 30 + ": nested deeper than 32 levels, cut",
        ),
        ({"caption": "a\ud800b"}, {"caption": "a\ufffdb"}, "caption: a lone surrogate replaced by U+FFFD"),
    ],
    ids=["1e200", "41-digit-integer", "empty-key", "deeper-than-32", "lone-surrogate"],
)
def test_a_fal_result_dynamodb_cannot_store_is_made_storable_and_the_job_completes(
    runner: JobRunner,
    events: FakeEvents,
    caplog: pytest.LogCaptureFixture,
    fal_fields: dict[str, Any],
    stored: dict[str, Any],
    change: str,
) -> None:
    video = {"url": VIDEO}
    with caplog.at_level(logging.WARNING), respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        # As Fal would send it: JSON text with escapes (a lone surrogate as "\\ud800").
        body = json.dumps({"video": video, **fal_fields}).encode()
        routes["result"].return_value = httpx.Response(
            200, content=body, headers={"Content-Type": "application/json"}
        )
        answer = handle(record(request()), lambda_context(), runner)
    assert answer == {"batchItemFailures": []}
    completed = events.details()[-1]
    assert completed["status"] == "COMPLETED" and completed["outputUrl"] == VIDEO
    assert completed["result"] == {"falRequestId": "req-1", "video": video, **stored}
    assert [unstorable_reason(d, level=1) for d in events.details()] == [None, None, None]
    line = next(r for r in caplog.records if r.getMessage() == "Fal result made storable")
    assert vars(line)["jobId"] == "job-1" and vars(line)["falRequestId"] == "req-1"
    assert vars(line)["changes"] == [change]


def test_a_fal_error_text_with_a_lone_surrogate_still_ends_failed(
    runner: JobRunner, events: FakeEvents
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        routes = fal_routes(mock)
        body = json.dumps({"status": "COMPLETED", "logs": [], "error": "bad \ud800 frame"}).encode()
        routes["status"].side_effect = [
            httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
        ]
        answer = handle(record(request()), lambda_context(), runner)
    assert answer == {"batchItemFailures": []}
    failed = events.details()[-1]
    assert failed["status"] == "FAILED" and failed["request"] == REQUEST
    assert failed["error"] == {
        "code": "FAL_RESULT_ERROR",
        "message": "Fal finished with an error: bad \ufffd frame",
        "retryable": False,
    }


def test_a_request_naming_a_model_of_more_than_256_characters_has_no_request_field(
    runner: JobRunner, events: FakeEvents
) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(url__startswith=QUEUE).respond(422, json={"detail": "unknown app"})
        handle(record(request(model="m" * 257)), lambda_context(), runner)
    assert [(d["status"], d.get("request")) for d in events.details()] == [("QUEUED", None), ("FAILED", None)]
