"""The producers' AWS clients fail fast in AWS, and give the local stack's engines more room."""

from __future__ import annotations

import pytest

from producers.aws import FAST_FAIL, fast_fail
from producers.settings import ProducerSettings

pytestmark = pytest.mark.unit


def test_the_defaults_are_aws_fast_fail() -> None:
    config = fast_fail(ProducerSettings())
    assert (config.connect_timeout, config.read_timeout) == (0.2, 0.5)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_the_timeouts_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_CONNECT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("PUBLISH_READ_TIMEOUT_SECONDS", "5")
    config = fast_fail(ProducerSettings())
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries == FAST_FAIL.retries == {"total_max_attempts": 1, "mode": "standard"}
