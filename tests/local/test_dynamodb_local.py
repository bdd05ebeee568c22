"""`local.dynamodb_local`: the cached jar and its command line (persistence: tests/e2e restart test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import dynamodb_local
from local.dynamodb_local import cache_dir, find_jar_dir, wait_for_http

pytestmark = pytest.mark.unit


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOBSTATUS_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("JOBSTATUS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "jobstatus"
    assert find_jar_dir(tmp_path) is None


def test_the_command_line_fetches_or_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert dynamodb_local.main(["nope"]) == 2
    assert "usage" in capsys.readouterr().err
    if find_jar_dir() is None:
        pytest.skip("DynamoDB Local is not fetched here (make dynamodb-local)")
    assert dynamodb_local.main(["fetch"]) == 0
    assert Path(capsys.readouterr().out.strip()) == find_jar_dir()


def test_nothing_answering_is_a_timeout() -> None:
    with pytest.raises(TimeoutError):
        wait_for_http(f"http://127.0.0.1:{dynamodb_local.free_port()}", timeout=0.3)
