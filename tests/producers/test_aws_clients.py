"""The producers' AWS clients fail fast in AWS, and give the local stack's engines more room."""

from __future__ import annotations

import pytest
from botocore.config import Config

from producers.aws import FAST_FAIL, fast_fail
from producers.settings import ProducerSettings

pytestmark = pytest.mark.unit


def options(config: Config) -> tuple[object, object, object]:
    """The options botocore's Config holds (its stubs do not declare them)."""
    return tuple(vars(config)[name] for name in ("connect_timeout", "read_timeout", "retries"))


def test_the_defaults_are_aws_fast_fail() -> None:
    assert options(fast_fail(ProducerSettings.from_env())) == (
        0.2,
        0.5,
        {"total_max_attempts": 1, "mode": "standard"},
    )


def test_the_timeouts_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_CONNECT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("PUBLISH_READ_TIMEOUT_SECONDS", "5")
    assert options(fast_fail(ProducerSettings.from_env())) == (
        2,
        5,
        {"total_max_attempts": 1, "mode": "standard"},
    )
    assert options(FAST_FAIL) == (0.2, 0.5, {"total_max_attempts": 1, "mode": "standard"})
