"""The post-response phase: the internal extension against a fake Lambda Extensions API over HTTP."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.functions import held_after_response
from producers.publishing.afterresponse import AfterResponse, ExtensionsApi, ExtensionsApiError
from tests.producers.fakes import lambda_context, serve_http

pytestmark = pytest.mark.unit


@dataclass
class FakeRuntime:
    """The Extensions API as Lambda serves it: `register`, then `event/next` blocking until an event.

    `next_calls` records when each `event/next` arrived: Lambda freezes the environment (and
    may start the next invocation) only once the extension has asked again.
    """

    refuse_registration: bool = False
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    next_calls: list[float] = field(default_factory=list)
    registered: list[dict[str, Any]] = field(default_factory=list)
    asked: threading.Condition = field(default_factory=threading.Condition)

    def invoke(self, request_id: str, seconds: float = 5.0) -> None:
        deadline_ms = int((time.time() + seconds) * 1000)
        self.events.put({"eventType": "INVOKE", "requestId": request_id, "deadlineMs": deadline_ms})

    def wait_for_next_calls(self, count: int, timeout: float = 5.0) -> bool:
        with self.asked:
            return self.asked.wait_for(lambda: len(self.next_calls) >= count, timeout)


def serve(runtime: FakeRuntime) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            assert self.path == "/2020-01-01/extension/register"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            runtime.registered.append({"name": self.headers["Lambda-Extension-Name"], **body})
            if runtime.refuse_registration:
                self._answer(403, {"errorType": "Extension.Forbidden"})
            else:
                self._answer(200, {}, {"Lambda-Extension-Identifier": "ext-1"})

        def do_GET(self) -> None:
            assert self.path == "/2020-01-01/extension/event/next"
            assert self.headers["Lambda-Extension-Identifier"] == "ext-1"
            with runtime.asked:
                runtime.next_calls.append(time.monotonic())
                runtime.asked.notify_all()
            self._answer(200, runtime.events.get())

    return serve_http(Handler)


@pytest.fixture
def runtime() -> Iterator[tuple[FakeRuntime, str]]:
    fake = FakeRuntime()
    server = serve(fake)
    yield fake, f"127.0.0.1:{server.server_address[1]}"
    fake.events.put({"eventType": "SHUTDOWN"})  # let a still-waiting extension thread go
    server.shutdown()


def test_deferred_work_runs_after_the_response_and_before_the_extension_asks_again(
    runtime: tuple[FakeRuntime, str],
) -> None:
    fake, address = runtime
    after = AfterResponse()
    assert after.start({"AWS_LAMBDA_RUNTIME_API": address})
    assert fake.registered == [{"name": "jobs-after-response", "events": ["INVOKE"]}]
    assert fake.wait_for_next_calls(1)  # init done: the extension waits for the first event
    timeline: dict[str, float] = {}

    def work() -> None:
        time.sleep(0.2)
        timeline["work done"] = time.monotonic()

    @after.wrap
    def handler(event: Any, context: Any) -> str:
        assert after.deferring()
        after.defer(work)
        return "answer"

    fake.invoke("req-1")
    assert handler({}, lambda_context()) == "answer"
    timeline["answered"] = time.monotonic()
    assert "work done" not in timeline  # the response did not wait for the work
    assert fake.wait_for_next_calls(2)
    assert timeline["answered"] < timeline["work done"] <= fake.next_calls[1]
    assert after.served == 1
    assert not after.deferring()  # outside an invocation


def test_every_invocation_is_served_in_turn(runtime: tuple[FakeRuntime, str]) -> None:
    fake, address = runtime
    after = AfterResponse()
    assert after.start({"AWS_LAMBDA_RUNTIME_API": address})
    ran: list[str] = []

    @after.wrap
    def handler(event: str, context: Any) -> None:
        after.defer(lambda: ran.append(event))

    for n in range(3):
        fake.invoke("req-1")  # fakes.lambda_context's request id
        handler(f"event-{n}", lambda_context())
        assert fake.wait_for_next_calls(n + 2)
    assert ran == ["event-0", "event-1", "event-2"] and after.served == 3


def test_a_handler_that_raises_still_has_its_work_run(runtime: tuple[FakeRuntime, str]) -> None:
    fake, address = runtime
    after = AfterResponse()
    assert after.start({"AWS_LAMBDA_RUNTIME_API": address})
    ran: list[str] = []

    @after.wrap
    def handler(event: Any, context: Any) -> None:
        after.defer(lambda: ran.append("flushed"))
        raise RuntimeError("the job broke")

    fake.invoke("req-1")
    with pytest.raises(RuntimeError):
        handler({}, lambda_context())
    assert fake.wait_for_next_calls(2) and ran == ["flushed"]


def test_a_handler_still_running_at_the_deadline_does_not_hold_the_extension() -> None:
    after = AfterResponse()
    started = time.monotonic()
    after.serve({"eventType": "INVOKE", "requestId": "r", "deadlineMs": int((time.time() + 0.2) * 1000)})
    assert time.monotonic() - started < 2.0 and after.served == 0


def test_late_work_of_an_earlier_invocation_is_run_not_dropped() -> None:
    after = AfterResponse()
    ran: list[str] = []
    after._finished.put(("earlier", [lambda: ran.append("earlier")]))
    after._finished.put(("now", [lambda: ran.append("now")]))
    after.serve({"eventType": "INVOKE", "requestId": "now", "deadlineMs": int((time.time() + 5) * 1000)})
    assert ran == ["earlier", "now"] and after.served == 1


def test_a_refused_registration_means_the_work_runs_before_the_response(
    runtime: tuple[FakeRuntime, str],
) -> None:
    fake, address = runtime
    fake.refuse_registration = True
    after = AfterResponse()
    assert not after.start({"AWS_LAMBDA_RUNTIME_API": address})
    ran: list[str] = []

    @after.wrap
    def handler(event: Any, context: Any) -> str:
        assert not after.deferring()
        after.defer(lambda: ran.append("flushed"))
        assert ran == ["flushed"]  # at once, inside the handler
        return "answer"

    assert handler({}, lambda_context()) == "answer"


def test_no_runtime_api_no_extension_and_work_runs_at_once() -> None:
    after = AfterResponse()
    assert not after.start({})
    ran: list[int] = []
    after.defer(lambda: ran.append(1))
    assert ran == [1]


def test_an_unreachable_runtime_api_is_a_refused_registration() -> None:
    from local.engines import free_port

    assert not AfterResponse().start({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{free_port()}"})


def test_the_api_client_reports_a_wrong_answer(runtime: tuple[FakeRuntime, str]) -> None:
    fake, address = runtime
    fake.refuse_registration = True
    with pytest.raises(ExtensionsApiError, match="403"):
        ExtensionsApi(address).register("x")


def test_held_work_waits_for_run_and_a_failing_work_does_not_stop_the_rest() -> None:
    after = AfterResponse()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    @after.wrap
    def handler(event: Any, context: Any) -> None:
        assert after.deferring()
        after.defer(broken)
        after.defer(lambda: ran.append("second"))

    with held_after_response(after) as held:
        handler({}, lambda_context())
    assert ran == [] and len(held.works) == 2
    held.run()
    assert ran == ["second"] and held.works == []
