"""Fetching dynalite says so: a first `make setup` or dynalite run is never a silent wait on npm."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from local.engines import DYNALITE_PACKAGE, fetch_dynalite

pytestmark = pytest.mark.unit

FAKE_NPM = """#!/bin/sh
# npm install --prefix ROOT PACKAGE ...: writes the pinned package as npm would.
root="$3"
mkdir -p "$root/node_modules/dynalite"
printf '{\\n  "name": "dynalite",\\n  "version": "4.0.0"\\n}\\n' > "$root/node_modules/dynalite/package.json"
: > "$root/node_modules/dynalite/cli.js"
echo "npm args: $*" >&2
"""


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return npm


@pytest.mark.parametrize("quiet", [True, False])
def test_a_fetch_off_a_terminal_says_what_it_does_and_how_long_it_took(
    fake_npm: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], quiet: bool
) -> None:
    script = fetch_dynalite(tmp_path / "cache", quiet=quiet)
    assert script == tmp_path / "cache" / "node_modules" / "dynalite" / "cli.js"
    err = capfd.readouterr().err
    assert f"fetching {DYNALITE_PACKAGE} with npm into {tmp_path / 'cache'} (once) ..." in err
    assert f"{DYNALITE_PACKAGE}: npm install took " in err
    assert "--silent" in err  # npm's own output stays quiet off a terminal


def test_a_fetched_dynalite_is_not_fetched_again(
    fake_npm: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fetch_dynalite(tmp_path / "cache", quiet=True)
    capfd.readouterr()
    fetch_dynalite(tmp_path / "cache", quiet=True)
    assert capfd.readouterr().err == ""
