"""`local.engines`: the cache, dynalite's fetch and start-up failures, and that no code runs a jar."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from local import engines
from local.engines import (
    DYNALITE_VERSION,
    Dynalite,
    EngineError,
    MotoProcess,
    MotoServer,
    cache_dir,
    dynalite_script,
    free_port,
    wait_for_http,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not found on PATH")


def test_the_cache_is_jobstatus_cache_else_xdg_else_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOBSTATUS_CACHE", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("JOBSTATUS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "jobstatus"


def fake_package(root: Path, version: str) -> Path:
    package = root / "node_modules" / "dynalite"
    package.mkdir(parents=True)
    (package / "package.json").write_text(f'{{\n  "name": "dynalite",\n  "version": "{version}"\n}}\n')
    (package / "cli.js").write_text("")
    return package / "cli.js"


def test_only_the_pinned_dynalite_counts_as_fetched(tmp_path: Path) -> None:
    assert dynalite_script(tmp_path / "nothing") is None
    assert dynalite_script(tmp_path) is None
    assert DYNALITE_VERSION == "4.0.0"
    assert dynalite_script(fake_package(tmp_path / "pinned", "4.0.0")) is None  # not the root
    assert dynalite_script(tmp_path / "pinned") == tmp_path / "pinned/node_modules/dynalite/cli.js"
    fake_package(tmp_path / "other", "3.2.2")
    assert dynalite_script(tmp_path / "other") is None


def test_dynalite_listens_on_loopback_only(tmp_path: Path) -> None:
    command = Dynalite(port=4567).command(tmp_path / "cli.js")
    assert command[:2] == ["node", str(tmp_path / "cli.js")]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "4567"


@needs_node
def test_a_dynalite_that_never_answers_is_one_line_naming_it_and_the_way_out(tmp_path: Path) -> None:
    silent = tmp_path / "silent.js"
    silent.write_text("setTimeout(() => {}, 60000)\n")  # runs, never listens
    engine = Dynalite(script=silent)
    with pytest.raises(EngineError) as raised:
        engine.start(timeout=0.5)
    message = str(raised.value)
    assert message == (
        f"dynalite did not start: nothing answered at {engine.endpoint} within 0s. Bring another "
        "DynamoDB engine with AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT (DynamoDB Local, "
        "ScyllaDB Alternator, ...)"
    )
    assert "\n" not in message


@needs_node
def test_a_dynalite_that_exits_says_what_node_said(tmp_path: Path) -> None:
    broken = tmp_path / "broken.js"
    broken.write_text("console.error('Error: listen EADDRINUSE'); process.exit(3)\n")
    with pytest.raises(
        EngineError, match=r"^dynalite did not start: node exited: Error: listen EADDRINUSE\. "
    ):
        Dynalite(script=broken).start(timeout=5)


def test_without_node_dynalite_does_not_start_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match=r"^dynalite did not start: node not found on PATH: "):
        Dynalite().start()


def test_fetching_without_npm_says_so_and_does_not_fail_make(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("JOBSTATUS_CACHE", str(tmp_path / "cache"))
    assert engines.main(["fetch-dynalite", "--quiet"]) == 0
    assert capsys.readouterr().err == (
        "dynalite not fetched: node not found on PATH: install Node.js (with npm) to run dynalite; "
        "its tests will be skipped\n"
    )
    assert engines.main(["fetch"]) == 2


def test_wait_for_http_gives_up_on_a_closed_port() -> None:
    with pytest.raises(TimeoutError, match="nothing answered"):
        wait_for_http(f"http://127.0.0.1:{free_port()}", timeout=0.3)


def test_moto_server_answers_on_loopback_and_reset_empties_it() -> None:
    import boto3

    with MotoServer() as moto:
        assert moto.endpoint.startswith("http://127.0.0.1:")
        sqs = boto3.client("sqs", endpoint_url=moto.endpoint, region_name="us-east-1")
        sqs.create_queue(QueueName="left-over")
        moto.reset()
        assert sqs.list_queues().get("QueueUrls", []) == []


def test_no_tracked_code_fetches_or_runs_a_jar() -> None:
    # Built from pieces so that this file does not match itself.
    forbidden = re.compile(
        "|".join(["dynamo-db-" + "local", r"DynamoDBLocal\." + "jar", r"\bja" + r"va\b"]), re.I
    )
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    code = [p for p in tracked if not p.endswith(".md") and (ROOT / p).is_file()]
    hits = [
        f"{path}:{number}: {line.strip()}"
        for path in code
        for number, line in enumerate((ROOT / path).read_text(errors="replace").splitlines(), 1)
        if forbidden.search(line)
    ]
    assert hits == []


def test_without_node_the_dynalite_test_runs_are_skipped_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.conftest import _DynaliteOnce

    monkeypatch.setenv("PATH", str(tmp_path))
    once = _DynaliteOnce()
    expected = r"^dynalite runs skipped: node not found on PATH: install Node\.js \(with npm\) to run"
    with pytest.raises(pytest.skip.Exception, match=expected):
        once.endpoint()
    assert once.engine is None


def test_a_moto_process_answers_and_ends_when_its_stdin_closes() -> None:
    # Given a moto server process (the local stack's DynamoDB)
    engine = MotoProcess().start()
    process = engine._process
    assert process is not None and process.stdin is not None
    wait_for_http(f"{engine.endpoint}/moto-api/", timeout=5)
    # When its parent goes away (its end of the pipe closes, as after a kill -9)
    process.stdin.close()
    # Then it ends by itself
    assert process.wait(timeout=20) == 0
    engine.stop()
