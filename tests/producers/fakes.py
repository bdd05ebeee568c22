"""In-memory fakes of the producers' ports (EventBridge, the outbox, metrics, Lambda context)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

# What a scripted PutEvents call does: return per-entry error codes (None = delivered) or raise.
Script = Callable[[int, list[dict[str, Any]]], list[str | None] | Exception]


def throttled(operation: str = "PutEvents") -> ClientError:
    """The ClientError botocore raises for a throttled call."""
    response: Any = {
        "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, operation)


@dataclass
class FakeEvents:
    """An EventBridge client that records entries and fails as `script` says."""

    script: Script | None = None
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put_events(self, *, Entries: Sequence[Any]) -> Any:
        entries = [dict(e) for e in Entries]
        with self.lock:
            self.calls.append(entries)
            call_no = len(self.calls)
        outcome = self.script(call_no, entries) if self.script else [None] * len(entries)
        if isinstance(outcome, Exception):
            raise outcome
        results: list[dict[str, Any]] = []
        for entry, code in zip(entries, outcome, strict=True):
            if code is None:
                with self.lock:
                    self.delivered.append(entry)
                results.append({"EventId": f"id-{len(self.delivered)}"})
            else:
                results.append({"ErrorCode": code, "ErrorMessage": f"{code} for this entry"})
        return {"FailedEntryCount": sum(1 for c in outcome if c), "Entries": results}

    def details(self, detail_type: str = "JobStatusChanged") -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.delivered if e["DetailType"] == detail_type]


@dataclass
class FakeOutbox:
    """An outbox that stores entries, or refuses them all when `refuse` is set."""

    refuse: str | None = None
    stored: list[dict[str, Any]] = field(default_factory=list)

    def send(self, entries: Sequence[Any]) -> list[tuple[Any, str]]:
        if self.refuse:
            return [(e, self.refuse) for e in entries]
        self.stored.extend(dict(e) for e in entries)
        return []


@dataclass
class FakeMetrics:
    """Collects metrics by name (sums)."""

    values: dict[str, float] = field(default_factory=dict)

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.values[name] = self.values.get(name, 0) + value


@dataclass
class _Context:
    """A LambdaContext with a fixed remaining time."""

    remaining_ms: int = 900_000
    function_name: str = "FalInvokerFn"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:FalInvokerFn"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def lambda_context(remaining_ms: int = 900_000) -> LambdaContext:
    """A LambdaContext with `remaining_ms` left."""
    return cast(LambdaContext, _Context(remaining_ms))


def serve_http(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """`handler` served on a free 127.0.0.1 port from a daemon thread (call `shutdown()` after)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
