"""What functions run by the local stack print: each log line names its own function; no EMF when quiet."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from local.functions import FunctionSpec
from local.stack import FunctionRunner

pytestmark = pytest.mark.unit

SERVICE = "invocation-output-test"


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[types.ModuleType, io.StringIO]]:
    """Two handlers on one Powertools logger, as the template's functions share `jobstatus`."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Test")
    output = io.StringIO()
    logger = Logger(service=SERVICE, logger_handler=logging.StreamHandler(output))
    metrics = Metrics()
    first_injected, second_done = threading.Event(), threading.Event()
    module = types.ModuleType("output_handlers")

    @logger.inject_lambda_context
    def first(event: dict[str, Any], context: Any) -> None:
        first_injected.set()
        second_done.wait(5)  # the second function's context is injected meanwhile
        logger.warning("written by the first")

    @logger.inject_lambda_context
    def second(event: dict[str, Any], context: Any) -> None:
        first_injected.wait(5)
        logger.warning("written by the second")
        second_done.set()

    @metrics.log_metrics
    def counting(event: dict[str, Any], context: Any) -> None:
        metrics.add_metric("Seen", MetricUnit.Count, 1)

    module.first, module.second, module.counting = first, second, counting  # type: ignore[attr-defined]
    sys.modules["output_handlers"] = module
    try:
        yield module, output
    finally:
        del sys.modules["output_handlers"]
        logging.getLogger(SERVICE).handlers.clear()
        metrics.clear_metrics()


def spec(name: str) -> FunctionSpec:
    return FunctionSpec(
        logical_id=name,
        handler=f"output_handlers.{name}",
        name=f"jobs-dev-{name}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:jobs-dev-{name}",
    )


def test_each_log_line_names_the_function_that_wrote_it(handlers: Any) -> None:
    _, output = handlers
    runner = FunctionRunner({"first": spec("first"), "second": spec("second")})
    worker = threading.Thread(target=runner.invoke, args=("first", {}))
    worker.start()
    runner.invoke("second", {})
    worker.join(10)
    lines = {line["message"]: line for line in map(json.loads, output.getvalue().splitlines())}
    assert lines["written by the first"]["function_name"] == "jobs-dev-first"
    assert lines["written by the first"]["function_arn"].endswith(":function:jobs-dev-first")
    assert lines["written by the second"]["function_name"] == "jobs-dev-second"


def test_a_quiet_run_prints_no_emf_blob(
    handlers: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    runner = FunctionRunner({"counting": spec("counting")})
    for _ in range(150):  # Powertools prints a metric's values once it holds 100 of them
        runner.invoke("counting", {})
    runner.wait_idle()
    assert "_aws" not in capsys.readouterr().out


def test_a_verbose_run_prints_the_metrics(
    handlers: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    runner = FunctionRunner({"counting": spec("counting")})
    runner.invoke("counting", {})
    runner.wait_idle()
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob["Seen"] for blob in blobs] == [[1.0]]
