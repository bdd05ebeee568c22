"""The template's functions, run in this process as Lambda runs them.

`FunctionSpec` is what the template says about a function (dotted handler, timeout, memory,
environment = Globals + its own, resolved; SQS event sources with batch size and window).
`LambdaContext` is the context object handlers get, with a real remaining-time clock.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ops.template import Template

if TYPE_CHECKING:
    from producers.publishing.afterresponse import AfterResponse, Work

Handler = Callable[[dict[str, Any], Any], Any]

DEFAULT_TIMEOUT: Final = 3  # seconds, Lambda's default when neither the function nor Globals say
DEFAULT_MEMORY: Final = 128
DEFAULT_SQS_BATCH_SIZE: Final = 10


class FunctionTimeout(Exception):
    """The function ran longer than its timeout; Lambda would have stopped it."""


@dataclass(frozen=True)
class SqsSource:
    """An SQS event source mapping: which queue feeds a function, and how."""

    queue: str  # logical id of the queue
    batch_size: int = DEFAULT_SQS_BATCH_SIZE
    batching_window: float = 0.0
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency


@dataclass(frozen=True)
class FunctionSpec:
    """One `AWS::Serverless::Function`, as the local stack runs it."""

    logical_id: str
    handler: str
    name: str
    arn: str
    timeout: int = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
    environment: dict[str, str] = field(default_factory=dict)
    sqs_sources: tuple[SqsSource, ...] = ()

    def load(self) -> Handler:
        """Import the dotted handler (`projector.handler.lambda_handler`)."""
        module_name, _, attribute = self.handler.rpartition(".")
        handler: Handler = getattr(importlib.import_module(module_name), attribute)
        return handler

    def context(self, now: Callable[[], float] = time.monotonic) -> LambdaContext:
        """A fresh context for one invocation, its deadline `timeout` seconds from now."""
        return LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.memory,
            invoked_function_arn=self.arn,
            deadline=now() + self.timeout,
            clock=now,
        )


@dataclass
class LambdaContext:
    """The attributes and method of Lambda's Python context object that handlers use."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    deadline: float
    clock: Callable[[], float] = time.monotonic
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def log_group_name(self) -> str:
        """Where Lambda would send this function's logs."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A log stream name in Lambda's shape."""
        return f"{time.strftime('%Y/%m/%d')}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (never negative)."""
        return max(0, int((self.deadline - self.clock()) * 1000))


def _globals(template: Template) -> dict[str, Any]:
    function_globals: dict[str, Any] = template.data.get("Globals", {}).get("Function", {})
    return function_globals


def _environment(template: Template, props: Mapping[str, Any]) -> dict[str, str]:
    variables: dict[str, Any] = {}
    variables.update(_globals(template).get("Environment", {}).get("Variables", {}))
    variables.update(props.get("Environment", {}).get("Variables", {}))
    resolved: dict[str, Any] = template.resolve(variables)
    return {name: str(value) for name, value in resolved.items() if value is not None}


def _queue_logical_id(queue_arn: Any, template: Template) -> str | None:
    # `Queue: !GetAtt ProjectorQueue.Arn` arrives as {"Fn::GetAtt": [...]} or "ProjectorQueue.Arn".
    if isinstance(queue_arn, dict) and "Fn::GetAtt" in queue_arn:
        target = queue_arn["Fn::GetAtt"]
        return str(target.split(".", 1)[0] if isinstance(target, str) else target[0])
    resolved = str(template.resolve(queue_arn))
    for logical_id in template.of_type("AWS::SQS::Queue"):
        if template.arn(logical_id) == resolved:
            return logical_id
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _sqs_sources(template: Template, props: Mapping[str, Any]) -> tuple[SqsSource, ...]:
    sources = []
    for event in props.get("Events", {}).values():
        if event.get("Type") != "SQS":
            continue
        spec = event.get("Properties", {})
        queue = _queue_logical_id(spec.get("Queue"), template)
        if queue is None:
            continue
        resolved = template.resolve({k: v for k, v in spec.items() if k != "Queue"})
        sources.append(
            SqsSource(
                queue=queue,
                batch_size=int(resolved.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
                batching_window=float(resolved.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in resolved.get("FunctionResponseTypes", []),
                enabled=bool(resolved.get("Enabled", True)),
                maximum_concurrency=_int_or_none(resolved.get("ScalingConfig", {}).get("MaximumConcurrency")),
            )
        )
    return tuple(sources)


def functions_from_template(template: Template) -> dict[str, FunctionSpec]:
    """Every serverless function of the template, by logical id."""
    defaults = _globals(template)
    specs = {}
    for logical_id, resource in template.of_type("AWS::Serverless::Function").items():
        props = resource.get("Properties", {})
        handler = props.get("Handler", defaults.get("Handler"))
        if not handler:
            continue
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=str(template.resolve(handler)),
            name=template.physical_name(logical_id),
            arn=template.arn(logical_id),
            timeout=int(template.resolve(props.get("Timeout", defaults.get("Timeout", DEFAULT_TIMEOUT)))),
            memory=int(template.resolve(props.get("MemorySize", defaults.get("MemorySize", DEFAULT_MEMORY)))),
            environment=_environment(template, props),
            sqs_sources=_sqs_sources(template, props),
        )
    return specs


# Every function runs in this one process and shares Powertools' logger (one service name), whose
# `function_name` and friends are process-wide: each invocation's thread names its own function.
_invocation = threading.local()
CONTEXT_FIELDS: Final = ("function_name", "function_memory_size", "function_arn", "function_request_id")


class _InvocationFields(logging.Filter):
    """Puts the function this thread runs on each of its log records (record fields win in Powertools)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in getattr(_invocation, "fields", {}).items():
            setattr(record, name, value)
        return True


_INVOCATION_FIELDS: Final = _InvocationFields()


def log_as(context: LambdaContext) -> None:
    """From now on, this thread's log lines name `context`'s function (one thread per invocation)."""
    values = (
        context.function_name,
        context.memory_limit_in_mb,
        context.invoked_function_arn,
        context.aws_request_id,
    )
    _invocation.fields = dict(zip(CONTEXT_FIELDS, values, strict=True))
    service = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
    for handler in service.handlers:
        if _INVOCATION_FIELDS not in handler.filters:
            handler.addFilter(_INVOCATION_FIELDS)


def drop_unpublished_metrics() -> None:
    """With metrics off, forget the data points an invocation added.

    Powertools keeps them when `POWERTOOLS_METRICS_DISABLED` skips the flush, and prints the set
    anyway once one metric holds 100 values: a quiet `jobstatus local` would print EMF blobs.
    """
    from aws_lambda_powertools.metrics import Metrics
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        Metrics().clear_metrics()


@dataclass
class HeldWork:
    """What one invocation deferred until after its response, held for the runner to `run()`."""

    works: list[Work] = field(default_factory=list)

    def take(self, works: list[Work]) -> None:
        """Hold `works` (the after-response seam hands them over when the handler returns)."""
        self.works.extend(works)

    def run(self) -> None:
        """Run the held work, in order; a failure is logged, never raised."""
        from producers.publishing.afterresponse import run_all

        works, self.works = self.works, []
        run_all(works)


@contextmanager
def held_after_response(after: AfterResponse | None = None) -> Iterator[HeldWork]:
    """Hold what handlers run on this thread defer (to `after`, the process's by default), for the
    caller to run once it has answered."""
    from producers.publishing.afterresponse import after_response

    after = after or after_response
    held = HeldWork()
    previous = after.divert(held)
    try:
        yield held
    finally:
        after.divert(previous)
