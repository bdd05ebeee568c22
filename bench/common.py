"""What every benchmark needs: a DynamoDB engine with the template's tables, request counts, a table.

The engine is moto server in a process of its own (an in-process one would take the GIL from the
code being measured), or dynalite with `BENCH_DYNAMODB_ENGINE=dynalite`; every table says which.

A benchmark is a module run from the repository root (`.venv/bin/python -m bench.NAME`, as
`make bench` runs it), so it imports the project the same way the tests do.

Figures come from the run that prints them; nothing here is a constant someone measured once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from ops.template import Template

# DynamoDB operations that read; a projector that never reads before writing makes none of them.
READ_OPERATIONS: Final = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "ExecuteStatement"}
)


def fake_aws_environment() -> None:
    """Credentials and a region for local engines, and no endpoint left over from the shell.

    Real credentials are never needed: every client a benchmark builds is given a local endpoint.
    """
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "jobstatus",
            "POWERTOOLS_METRICS_NAMESPACE": "JobStatus",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # The handlers' logs and metrics would drown the table; they still run.
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
    )


ENGINES: Final = ("moto", "dynalite")


def dynamodb_engine_name() -> str:
    """The DynamoDB engine the benchmarks run on: `$BENCH_DYNAMODB_ENGINE`, moto by default."""
    name = os.environ.get("BENCH_DYNAMODB_ENGINE", "moto")
    if name not in ENGINES:
        raise SystemExit(f"BENCH_DYNAMODB_ENGINE={name!r}: choose moto or dynalite")
    return name


@contextlib.contextmanager
def dynamodb_engine(name: str | None = None) -> Iterator[str]:
    """A DynamoDB engine (`name`, else `dynamodb_engine_name()`) in its own process; its endpoint URL."""
    from local.engines import Dynalite, EngineError, free_port, not_started, wait_for_http

    if (name or dynamodb_engine_name()) == "dynalite":
        try:
            with Dynalite() as dynalite:
                yield dynalite.endpoint
        except EngineError as error:
            raise SystemExit(str(error)) from None
        return
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(f"{endpoint}/moto-api/")
        except TimeoutError as error:
            raise SystemExit(str(not_started("moto server", str(error)))) from None
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def dynamodb_client(endpoint: str) -> DynamoDBClient:
    """A DynamoDB client on `endpoint`, with botocore's standard retries."""
    import boto3
    from botocore.config import Config

    client: DynamoDBClient = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard"}, max_pool_connections=16),
    )
    return client


def create_jobs_table(client: DynamoDBClient, template: Template, prefix: str = "Jobs-bench") -> str:
    """A fresh Jobs table made from the template (keys, GSI); its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_table(**{**template.table_definition(), "TableName": name})
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


def scan_items(client: DynamoDBClient, table: str) -> dict[str, dict[str, Any]]:
    """Every item of a table as plain Python values, by jobId (its hash key)."""
    from jobstatus.codec import from_item

    items: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page["Items"]:
            item = from_item(raw)
            items[str(item["jobId"])] = item
    return items


@dataclass
class RequestCounter:
    """Counts what a botocore client sends: API calls by operation, and HTTP attempts.

    `before-call` fires once per API call; `before-send` once per HTTP attempt, so attempts
    beyond calls are botocore's retries (throttling, 5xx). Neither hook changes the request.
    """

    calls: Counter[str] = field(default_factory=Counter)
    attempts: int = 0

    def attach(self, client: Any, service: str = "dynamodb") -> RequestCounter:
        """Start counting `client`'s requests."""
        client.meta.events.register(f"before-call.{service}.*", self._count_call)
        client.meta.events.register(f"before-send.{service}.*", self._count_attempt)
        return self

    def _count_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _count_attempt(self, **_: Any) -> None:
        self.attempts += 1  # returns None: a value here would replace the HTTP response

    def reset(self) -> None:
        """Forget every count so far."""
        self.calls.clear()
        self.attempts = 0

    @property
    def total(self) -> int:
        """Every API call counted."""
        return sum(self.calls.values())

    @property
    def reads(self) -> int:
        """Calls that read the table."""
        return sum(n for op, n in self.calls.items() if op in READ_OPERATIONS)

    @property
    def retries(self) -> int:
        """HTTP attempts botocore made beyond one per call."""
        return max(0, self.attempts - self.total)


class Stopwatch:
    """Wall-clock seconds of a `with` block (`time.perf_counter`)."""

    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start


def verdict(met: bool) -> str:
    """How a target reads in the table."""
    return "met" if met else "NOT met"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a table with rich (first column left, the figures right-aligned)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for n, header in enumerate(headers):
        table.add_column(header, justify="left" if n == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console(width=max(120, Console().width)).print(table)


def _null_answer(target: str, request: dict[str, Any]) -> dict[str, Any]:
    """A success for any JSON-protocol request: one EventId per PutEvents entry, else empty."""
    service, _, operation = target.rpartition(".")
    if service == "AWSEvents" and operation == "PutEvents":
        return {
            "FailedEntryCount": 0,
            "Entries": [{"EventId": uuid.uuid4().hex} for _ in request.get("Entries", [])],
        }
    return {}


@contextlib.contextmanager
def null_aws() -> Iterator[str]:
    """A loopback endpoint answering every DynamoDB, EventBridge and SQS request at once; its URL.

    Nothing is stored: it stands in for AWS where what is timed is the client (a cold start's
    first request), not the service. It serves from a thread of this process, which only waits
    while the children it serves are timed.
    """
    from local.loopback_aws import aws_json_endpoint

    with aws_json_endpoint(_null_answer) as url:
        yield url
