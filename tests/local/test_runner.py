"""Functions invoked in-process as Lambda invokes them: results, errors, timeouts, cold starts."""

from __future__ import annotations

import functools
import socket
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from local.functions import FunctionSpec, FunctionTimeout
from local.stack import FunctionRunner, LocalStack, StackConfig

pytestmark = pytest.mark.unit


@pytest.fixture
def module() -> Any:
    released = threading.Event()
    fake = types.ModuleType("fake_handlers")
    calls: list[str] = []

    @functools.cache
    def dependencies() -> list[str]:
        return calls

    def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
        dependencies().append("ok")
        return {"remaining": context.get_remaining_time_in_millis(), "event": event}

    def boom(event: dict[str, Any], context: Any) -> None:
        raise ValueError("bad input")

    def slow(event: dict[str, Any], context: Any) -> None:
        released.wait(5)

    fake.dependencies = dependencies  # type: ignore[attr-defined]
    fake.ok, fake.boom, fake.slow = ok, boom, slow  # type: ignore[attr-defined]
    sys.modules["fake_handlers"] = fake
    try:
        yield fake, released
    finally:
        released.set()
        del sys.modules["fake_handlers"]


def spec(name: str, timeout: int = 3) -> FunctionSpec:
    return FunctionSpec(
        logical_id=name, handler=f"fake_handlers.{name}", name=name, arn="arn", timeout=timeout
    )


def test_results_errors_and_timeouts(module: Any) -> None:
    fake, released = module
    runner = FunctionRunner({"ok": spec("ok"), "boom": spec("boom"), "slow": spec("slow", timeout=0)})
    answer = runner.invoke("ok", {"a": 1})
    assert answer["event"] == {"a": 1} and 0 < answer["remaining"] <= 3000
    with pytest.raises(ValueError, match="bad input"):
        runner.invoke("boom", {})
    with pytest.raises(FunctionTimeout, match="slow timed out"):
        runner.invoke("slow", {})
    released.set()
    # Forgetting clears each handler module's cold-start cache, so a next start builds anew.
    assert fake.dependencies.cache_info().currsize == 1
    runner.forget()
    assert fake.dependencies.cache_info().currsize == 0


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(StackConfig(port=port, data_dir=tmp_path / "data"))
        with pytest.raises(OSError, match=f"port {port} .* in use"):
            stack.start()
    assert not (tmp_path / "data").exists()


def test_work_deferred_by_a_handler_runs_after_the_answer_as_a_lambda_extension_runs_it(module: Any) -> None:
    from producers.publishing.afterresponse import after_response

    fake, released = module
    ran: list[str] = []

    def flush() -> None:
        released.wait(5)
        ran.append("flushed")

    @after_response.wrap
    def deferring(event: dict[str, Any], context: Any) -> str:
        assert after_response.deferring()
        after_response.defer(flush)
        return "answer"

    fake.deferring = deferring
    runner = FunctionRunner({"deferring": spec("deferring")})
    assert runner.invoke("deferring", {}) == "answer"
    assert ran == []  # answered before the deferred work ran
    released.set()
    runner.wait_idle()
    assert ran == ["flushed"]
