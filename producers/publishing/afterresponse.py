"""Work a handler defers until after its response: a Lambda internal extension.

Lambda hands a function's response to its caller (for FalInvokerFn, the SQS event source
mapping) as soon as the runtime posts it, but keeps the execution environment running, within
the invocation's timeout, until the runtime *and every registered extension* have asked for the
next event. An internal extension is a thread of the function's own process that registers with
the Extensions API during init. On each INVOKE event ours waits for the handler to finish, runs
the work the handler deferred, and only then asks for the next event. So FalInvokerFn's flush of
its status events (and the deletion of the record it finished) runs inside the invocation, with
its timeout as the bound, but after the response: it adds nothing to the job's own wall time.

`defer(work)` inside a handler wrapped with `wrap` runs `work`:

- in Lambda, with the extension registered (`start()` at import): after the response, on the
  extension's thread, before the environment may take the next invocation;
- inside `held()` (the local stack's function runner): when the runner calls `run()` on what was
  held, after it has handed the response back, as the extension would;
- anywhere else (tests, scripts, a Runtime API that refuses extensions), or outside a wrapped
  handler: at once, so nothing deferred is ever dropped.

`deferring()` tells a handler which it is, since what it may promise its caller depends on it.
The awslambdaric runtime releases the GIL while it waits for the next invocation, so the
extension thread runs then.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

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


@dataclass
class Held:
    """What one invocation deferred while held (the local stack's runner runs it after answering)."""

    works: list[Work] = field(default_factory=list)

    def run(self) -> None:
        """Run the deferred work, in order; a failure is logged, never raised."""
        works, self.works = self.works, []
        _run_all(works)


def _run_all(works: list[Work]) -> None:
    for work in works:
        try:
            work()
        except Exception:  # deferred work has no caller to raise into
            log.exception("work deferred until after the response failed")


class _Invocation:
    """The thread-local state of one wrapped handler call."""

    def __init__(self, request_id: str, held: Held | None) -> None:
        self.request_id = request_id
        self.held = held
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
            invocation = _Invocation(request_id, getattr(self._local, "held", None))
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
        return invocation is not None and (invocation.held is not None or self.extension_registered)

    def defer(self, work: Work) -> None:
        """Run `work` after the response when `deferring()`, else at once. Never raises."""
        if self.deferring():
            self._local.invocation.works.append(work)
        else:
            _run_all([work])

    @contextmanager
    def held(self) -> Iterator[Held]:
        """Hold what handlers wrapped on this thread defer, for the caller to `run()` later."""
        previous = getattr(self._local, "held", None)
        holder = self._local.held = Held()
        try:
            yield holder
        finally:
            self._local.held = previous

    def _finish(self, invocation: _Invocation) -> None:
        if invocation.held is not None:
            invocation.held.works.extend(invocation.works)
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
                _run_all(works)
                self.served += 1
                return
            log.warning(
                "deferred work of an earlier invocation came late; running it",
                extra={"requestId": request_id, "earlierRequestId": finished_id},
            )
            _run_all(works)


after_response = AfterResponse()
