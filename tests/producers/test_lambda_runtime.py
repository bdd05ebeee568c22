"""FalInvokerFn under AWS's own Python runtime client (awslambdaric), against a fake Lambda API.

Lambda serves its Runtime API and Extensions API over HTTP on the sandbox's loopback. This test
serves both from one small server, starts `python -m awslambdaric
producers.invoker.handler.lambda_handler` as Lambda's Python runtime does, and checks the order the
design relies on: the function's internal extension registers at init; the function answers;
then, before the extension asks for the next event (the moment Lambda may freeze or reuse the
environment), the deferred flush has put the job's events on the bus and the function has
deleted its finished record from the queue itself. AWS, moto server and the handler are real;
only Lambda's control plane is played by the test. The job's input is invalid, so the job
fails without a call to Fal (its events are QUEUED and FAILED).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.producers.fakes import serve_http
from tests.producers.test_fal_invoker import record as request_record
from tests.producers.test_integration import create_idempotency_table, queue_with_rule

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HANDLER = "producers.invoker.handler.lambda_handler"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:jobs-test-fal-invoker"


@dataclass
class FakeLambda:
    """Lambda's side of the Runtime and Extensions APIs, with the moments each call came."""

    invocations: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    extension_events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    extensions: list[str] = field(default_factory=list)
    runtime_next: list[float] = field(default_factory=list)
    extension_next: list[float] = field(default_factory=list)
    responses: dict[str, tuple[float, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    # Called as each extension `next` comes in: what the world looked like at that moment.
    probe: Callable[[], Any] = lambda: None
    seen_at_extension_next: list[Any] = field(default_factory=list)

    def invoke(self, request_id: str, event: dict[str, Any], seconds: float = 60) -> None:
        deadline_ms = int((time.time() + seconds) * 1000)
        self.extension_events.put({"eventType": "INVOKE", "requestId": request_id, "deadlineMs": deadline_ms})
        self.invocations.put((request_id, json.dumps(event).encode()))

    def note(self, moments: list[float]) -> None:
        with self.changed:
            moments.append(time.monotonic())
            self.changed.notify_all()

    def wait(self, predicate: Any, seconds: float = 30) -> bool:
        with self.changed:
            return bool(self.changed.wait_for(predicate, seconds))


def serve(fake: FakeLambda) -> ThreadingHTTPServer:
    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/2020-01-01/extension/event/next":
                fake.seen_at_extension_next.append(fake.probe())
                fake.note(fake.extension_next)
                self._send(200, json.dumps(fake.extension_events.get()).encode())
            elif self.path == "/2018-06-01/runtime/invocation/next":
                fake.note(fake.runtime_next)
                request_id, body = fake.invocations.get()
                deadline = str(int((time.time() + 60) * 1000))
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": deadline,
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                }
                self._send(200, body, headers)
            else:
                self._send(404)

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/2020-01-01/extension/register":
                with fake.changed:
                    fake.extensions.append(self.headers["Lambda-Extension-Name"])
                    fake.changed.notify_all()
                self._send(200, b"{}", {"Lambda-Extension-Identifier": str(uuid.uuid4())})
            elif match := re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/response", self.path):
                with fake.changed:
                    fake.responses[match.group(1)] = (time.monotonic(), json.loads(body))
                    fake.changed.notify_all()
                self._send(202)
            else:  # init or invocation error
                with fake.changed:
                    fake.errors.append(f"{self.path}: {body.decode(errors='replace')}")
                    fake.changed.notify_all()
                self._send(202)

    return serve_http(Api)


@pytest.fixture
def fake_lambda() -> Iterator[tuple[FakeLambda, str]]:
    fake = FakeLambda()
    server = serve(fake)
    yield fake, f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_the_runtime_answers_then_the_extension_settles_before_asking_again(
    fake_lambda: tuple[FakeLambda, str], moto_server: str
) -> None:
    pytest.importorskip("awslambdaric")
    fake, api = fake_lambda
    # Given: a bus whose status events land in a queue, an outbox, the invoker queue holding one
    # request (received, so in flight), and an idempotency table, all on moto server
    suffix = uuid.uuid4().hex[:8]
    events = boto3.client("events", endpoint_url=moto_server, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")
    bus = f"jobs-rt-{suffix}"
    events.create_event_bus(Name=bus)
    delivered = queue_with_rule(
        events, sqs, bus, f"rt-delivered-{suffix}", {"detail-type": ["JobStatusChanged"]}
    )
    outbox = sqs.create_queue(QueueName=f"rt-outbox-{suffix}")["QueueUrl"]
    invoker = sqs.create_queue(QueueName=f"rt-invoker-{suffix}")["QueueUrl"]
    table = create_idempotency_table(ddb, f"rt-idempotency-{suffix}")
    job_id = f"rt-{suffix}"
    detail = {"jobId": job_id, "userId": "user-rt", "model": "fal-ai/x", "input": "not an object"}
    request = json.loads(request_record(detail, event_id=str(uuid.uuid4()))["Records"][0]["body"])
    sqs.send_message(QueueUrl=invoker, MessageBody=json.dumps(request))
    message = sqs.receive_message(QueueUrl=invoker, MaxNumberOfMessages=1)["Messages"][0]
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "eventSource": "aws:sqs",
    }

    fake.probe = lambda: {"record": depth(sqs, invoker), "events": depth(sqs, delivered)}

    # When: Lambda's Python runtime client starts the function and is handed the record
    environment = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "EVENT_BUS_NAME": bus,
        "OUTBOX_QUEUE_URL": outbox,
        "INVOKER_QUEUE_URL": invoker,
        "IDEMPOTENCY_TABLE_NAME": table,
        "POWERTOOLS_SERVICE_NAME": "jobstatus",
        "POWERTOOLS_METRICS_NAMESPACE": "JobStatus",
        "STATUS_FLUSH_AFTER_RESPONSE_SECONDS": "5",
    }
    for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_EVENTBRIDGE"):
        environment.pop(name, None)
    runtime = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", HANDLER],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Init: the extension registered and asked for its first event; the runtime did too.
        assert fake.wait(lambda: (fake.extension_next and fake.runtime_next) or fake.errors), "no init"
        assert fake.errors == [] and fake.extensions == ["jobs-after-response"]
        fake.invoke("req-1", {"Records": [record]})
        assert fake.wait(lambda: "req-1" in fake.responses or fake.errors), "no response"
        assert fake.wait(lambda: len(fake.extension_next) >= 2), "the extension never asked again"
    finally:
        runtime.terminate()
        output = runtime.communicate(timeout=10)[0].decode(errors="replace")
    assert fake.errors == [], output

    # Then: the function answered first, keeping its record for itself to delete ...
    answered, answer = fake.responses["req-1"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}, output
    assert answered < fake.extension_next[1]
    # ... and when the extension asked again, the events were on the bus and the record gone
    # (nobody else deletes it here: there is no event source mapping in this test).
    assert fake.seen_at_extension_next[0] == {"record": 1, "events": 0}  # at init
    assert fake.seen_at_extension_next[1] == {"record": 0, "events": 2}, output
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=delivered, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(b["detail"]["status"] for b in bodies if b["detail"]["jobId"] == job_id) == [
        "FAILED",
        "QUEUED",
    ]
    assert depth(sqs, outbox) == 0
