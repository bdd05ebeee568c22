"""Work a handler defers until after its response: a Lambda internal extension.

Lambda keeps the environment running after the runtime posts a response until every registered
extension asks for the next event. Ours is a thread of the function's own process (registered at
import by `start()`): on each INVOKE it waits for the handler wrapped by `wrap` to finish, runs
what it `defer`red, then asks for the next event. So FalInvokerFn's flush runs inside the
invocation's timeout but off the job's path. Outside Lambda, deferred work runs at once, unless
a caller `divert`s it to a sink of its own (the local stack's function runner runs it after
answering, as the extension would). `deferring()` tells a handler which case it is in.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, TypeVar

from aws_lambda_powertools import Logger

log = Logger(child=True)

Work = Callable[[], None]
F = TypeVar("F", bound=Callable[..., Any])

API_VERSION: Final = "2020-01-01"
EXTENSION_NAME: Final = "jobs-after-response"
# The deferred work must be done this long before Lambda's deadline for the invocation.
DEADLINE_MARGIN_SECONDS: Final = 0.05
RETRY_PAUSE_SECONDS: Final = 0.05


class ExtensionsApiError(RuntimeError):
    """The Extensions API answered something other than what its protocol says."""


class ExtensionsApi:
    """The Lambda Extensions API at `AWS_LAMBDA_RUNTIME_API` (HTTP on the sandbox's loopback)."""

    def __init__(self, address: str, *, connect_timeout: float = 2.0) -> None:
        self.address = address
        self._connect_timeout = connect_timeout

    def _call(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None, timeout: float | None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.address, timeout=self._connect_timeout)
        try:
            connection.connect()
            connection.sock.settimeout(timeout)  # `next` blocks until an event comes: no timeout
            connection.request(method, f"/{API_VERSION}/extension/{path}", body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def register(self, name: str) -> str:
        """Register for INVOKE events (internal extensions cannot take SHUTDOWN); the identifier."""
        status, headers, body = self._call(
            "POST",
            "register",
            {"Lambda-Extension-Name": name, "Content-Type": "application/json"},
            json.dumps({"events": ["INVOKE"]}).encode(),
            timeout=self._connect_timeout,
        )
        identifier = headers.get("lambda-extension-identifier")
        if status != 200 or not identifier:
            raise ExtensionsApiError(f"register answered {status}: {body[:200]!r}")
        return identifier

    def next_event(self, identifier: str) -> dict[str, Any]:
        """Block until the next event; asking is also how the extension says it is done."""
        status, _, body = self._call(
            "GET", "event/next", {"Lambda-Extension-Identifier": identifier}, None, timeout=None
        )
        if status != 200:
            raise ExtensionsApiError(f"event/next answered {status}: {body[:200]!r}")
        event: dict[str, Any] = json.loads(body)
        return event


class DeferredWorkSink(Protocol):
    """Takes what one invocation deferred, to run it after the response (`run_all`)."""

    def take(self, works: list[Work]) -> None:
        """Keep `works`, in order."""
        ...


def run_all(works: list[Work]) -> None:
    """Run deferred work in order; a failure is logged, never raised."""
    for work in works:
        try:
            work()
        except Exception:  # deferred work has no caller to raise into
            log.exception("work deferred until after the response failed")


class _Invocation:
    """The thread-local state of one wrapped handler call."""

    def __init__(self, request_id: str, sink: DeferredWorkSink | None) -> None:
        self.request_id = request_id
        self.sink = sink
        self.works: list[Work] = []


class AfterResponse:
    """Runs deferred work after the response (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._local = threading.local()
        self._finished: queue.Queue[tuple[str, list[Work]]] = queue.Queue()
        self._identifier: str | None = None
        self._thread: threading.Thread | None = None
        self.served = 0  # invocations whose deferred work the extension has run

    # -- set-up ----------------------------------------------------------------------------

    @property
    def extension_registered(self) -> bool:
        """Whether the Lambda extension is running (so deferred work runs after responses)."""
        return self._thread is not None

    def start(self, environ: Mapping[str, str] = os.environ, name: str = EXTENSION_NAME) -> bool:
        """Register the internal extension if this is a Lambda environment; whether it now runs.

        Call it at import time (Lambda's init phase). Outside Lambda (`AWS_LAMBDA_RUNTIME_API`
        unset) or when registration fails, deferred work simply runs at once.
        """
        if self._thread is not None:
            return True
        address = environ.get("AWS_LAMBDA_RUNTIME_API")
        if not address:
            return False
        api = ExtensionsApi(address)
        try:
            self._identifier = api.register(name)
        except (OSError, ExtensionsApiError) as error:
            log.warning(
                "Lambda extension not registered; deferred work runs before the response",
                extra={"error": str(error)},
            )
            return False
        self._thread = threading.Thread(target=self._loop, args=(api,), name=name, daemon=True)
        self._thread.start()
        return True

    # -- the handler's side ----------------------------------------------------------------

    def wrap(self, handler: F) -> F:
        """Mark `handler` as an invocation whose deferred work runs after it returns."""

        @functools.wraps(handler)
        def wrapped(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            request_id = str(getattr(context, "aws_request_id", "") or "")
            invocation = _Invocation(request_id, getattr(self._local, "sink", None))
            self._local.invocation = invocation
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                self._local.invocation = None
                self._finish(invocation)

        return wrapped  # type: ignore[return-value]

    def deferring(self) -> bool:
        """Whether work deferred now runs after the response (True) or at once (False)."""
        invocation: _Invocation | None = getattr(self._local, "invocation", None)
        return invocation is not None and (invocation.sink is not None or self.extension_registered)

    def defer(self, work: Work) -> None:
        """Run `work` after the response when `deferring()`, else at once. Never raises."""
        if self.deferring():
            self._local.invocation.works.append(work)
        else:
            run_all([work])

    def divert(self, sink: DeferredWorkSink | None) -> DeferredWorkSink | None:
        """Hand what handlers wrapped on this thread defer to `sink` (None: stop); the previous sink."""
        previous: DeferredWorkSink | None = getattr(self._local, "sink", None)
        self._local.sink = sink
        return previous

    def _finish(self, invocation: _Invocation) -> None:
        if invocation.sink is not None:
            invocation.sink.take(invocation.works)
        elif self.extension_registered:
            self._finished.put((invocation.request_id, invocation.works))

    # -- the extension's side --------------------------------------------------------------

    def _loop(self, api: ExtensionsApi) -> None:
        """Ask for events forever; after each INVOKE, run what its handler deferred.

        It must never stop asking: Lambda would keep every later invocation waiting on it.
        """
        assert self._identifier is not None
        while True:
            try:
                event = api.next_event(self._identifier)
            except Exception:  # the API hiccuped: ask again (Lambda waits for that call)
                log.exception("Lambda extension could not get its next event")
                time.sleep(RETRY_PAUSE_SECONDS)
                continue
            if event.get("eventType") == "SHUTDOWN":  # only external extensions get it; harmless
                return
            if event.get("eventType") == "INVOKE":
                self.serve(event)

    def serve(self, event: Mapping[str, Any]) -> None:
        """Wait for the handler of this INVOKE event to finish, then run what it deferred."""
        request_id = str(event.get("requestId", ""))
        deadline = float(event.get("deadlineMs", 0)) / 1000 - DEADLINE_MARGIN_SECONDS
        while True:
            remaining = deadline - self._clock()
            try:
                finished_id, works = self._finished.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                log.warning("the handler did not finish before its deadline", extra={"requestId": request_id})
                return
            if finished_id == request_id or not request_id:
                run_all(works)
                self.served += 1
                return
            log.warning(
                "deferred work of an earlier invocation came late; running it",
                extra={"requestId": request_id, "earlierRequestId": finished_id},
            )
            run_all(works)


after_response = AfterResponse()
