"""`jobstatus rebuild` by replay, on moto in-process: flags, defaults from the template, Ctrl-C, errors."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from rich.console import Console

from ops import rebuild_cli
from ops.template import Template
from projector.rebuild import RebuildError, Replays, ReplayState, ReplayStatus

from .helpers import ScriptedReplays, create_bus, drain, history, parse, publish, run

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")


def test_rebuild_is_a_jobstatus_subcommand():
    args = parse("--since", "7d")
    assert args.run is rebuild_cli.run
    with pytest.raises(SystemExit):
        parse("--since", "7d", "--from-file", "x.jsonl")  # one source at a time
    with pytest.raises(SystemExit):
        parse()


def test_replay_sends_the_archive_to_the_projector_queue(aws, capsys):
    # Given the template's bus, archive, rule and queue, and a history published live
    events, sqs = aws
    bus = create_bus(events, sqs, Template.read(Stage="unit"))
    published = history(4, seed=11, now=NOW)
    publish(events, bus.name, published)
    live = drain(sqs, bus.queue_url)
    assert len(live) == len(published)

    # When the replay runs with every ARN defaulted from the template (account from STS)
    code = run("--since", "2d", "--stage", "unit", "--poll", "0", "--name", "rebuild-unit-test")

    # Then it completes and the queue holds every archived event again, marked as replayed
    assert code == rebuild_cli.EXIT_OK
    replayed = [json.loads(r["body"]) for r in drain(sqs, bus.queue_url)]
    assert sorted(e["detail"]["eventId"] for e in replayed) == sorted(p.event_id for p in published)
    assert {e["replay-name"] for e in replayed} == {"rebuild-unit-test"}
    assert not {e["id"] for e in replayed} & {json.loads(r["body"])["id"] for r in live}
    # (progress on stderr, the summary on stdout: moved there on purpose, issue 11)
    printed = capsys.readouterr()
    assert "Started replay rebuild-unit-test of " + bus.archive_arn in printed.err
    assert bus.rule_arn + " only" in printed.err
    assert "COMPLETED" in printed.out
    assert "projector's queue" in printed.out
    assert " at -" not in printed.err + printed.out and "Last event replayed -" not in printed.out


def test_explicit_arns_need_no_sts_or_template(aws, monkeypatch):
    events, sqs = aws
    bus = create_bus(events, sqs, Template.read(Stage="arns"))
    monkeypatch.setattr(rebuild_cli, "_caller_account", pytest.fail)
    monkeypatch.setattr(rebuild_cli, "_template", pytest.fail)
    code = run(
        "--since",
        "1h",
        "--archive-arn",
        bus.archive_arn,
        "--bus-arn",
        bus.bus_arn,
        "--rule-arn",
        bus.rule_arn,
        "--poll",
        "0",
    )
    assert code == rebuild_cli.EXIT_OK


def test_a_missing_archive_is_a_clear_error(aws, capsys):
    events, _ = aws
    events.create_event_bus(Name="jobs-noarchive")
    code = run("--since", "1d", "--stage", "noarchive", "--account", "123456789012", "--poll", "0")
    assert code == rebuild_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "EventBridge refused replay rebuild-noarchive-" in err
    assert "Archive jobs-noarchive-status does not exist" in err


def test_bad_times_are_refused_before_anything_starts(aws, capsys):
    assert run("--since", "last tuesday", "--account", "123456789012") == rebuild_cli.EXIT_USAGE
    assert "neither an ISO 8601 time" in capsys.readouterr().err
    assert run("--since", "1d", "--until", "2d", "--account", "123456789012") == rebuild_cli.EXIT_USAGE
    assert "is not before" in capsys.readouterr().err


def test_a_failed_replay_exits_non_zero_with_its_reason(aws, monkeypatch, capsys):
    events, sqs = aws
    create_bus(events, sqs, Template.read(Stage="fails"))
    failed = ReplayStatus.from_response(
        {"ReplayName": "r", "State": "FAILED", "StateReason": "Destination rule was deleted"}
    )
    monkeypatch.setattr(Replays, "describe", lambda self, name: failed)
    assert run("--since", "1d", "--stage", "fails", "--poll", "0") == rebuild_cli.EXIT_FAILED
    assert "FAILED (Destination rule was deleted)" in capsys.readouterr().out  # the summary: stdout


def test_attach_follows_a_replay_by_name(aws, capsys):
    events, sqs = aws
    bus = create_bus(events, sqs, Template.read(Stage="attach"))
    events.start_replay(
        ReplayName="earlier",
        EventSourceArn=bus.archive_arn,
        EventStartTime=NOW - timedelta(days=1),
        EventEndTime=NOW,
        Destination={"Arn": bus.bus_arn, "FilterArns": [bus.rule_arn]},
    )
    assert run("--attach", "earlier", "--poll", "0") == rebuild_cli.EXIT_OK
    assert "Replay earlier" in capsys.readouterr().out  # the summary: stdout
    assert run("--attach", "never-started", "--poll", "0") == rebuild_cli.EXIT_USAGE


def test_no_region_and_no_account_are_explained(monkeypatch):
    class NoRegion:
        region_name = None

    args = parse("--since", "1d")
    session: Any = NoRegion()
    with pytest.raises(RebuildError, match="no AWS region"):
        rebuild_cli.replay_target(args, session, "dev")

    class Session:
        region_name = "us-east-1"

        def client(self, name):
            return boto3.client(name, region_name="us-east-1", endpoint_url="http://127.0.0.1:9")

    unreachable: Any = Session()
    with pytest.raises(RebuildError, match="cannot tell the AWS account from STS"):
        rebuild_cli.replay_target(args, unreachable, "dev")


def test_some_arns_given_others_from_the_template():
    class Session:
        region_name = "eu-west-1"

    args = parse("--since", "1d", "--account", "111122223333", "--rule-arn", "arn:aws:events:x:1:rule/b/mine")
    session: Any = Session()
    target = rebuild_cli.replay_target(args, session, "prod")
    assert target.rule_arn == "arn:aws:events:x:1:rule/b/mine"
    assert target.archive_arn == "arn:aws:events:eu-west-1:111122223333:archive/jobs-prod-status"


# --- Ctrl-C --------------------------------------------------------------------------------


def status(state: str) -> ReplayStatus:
    return ReplayStatus.from_response({"ReplayName": "r", "State": state})


def quiet() -> Console:
    return Console(file=io.StringIO())


def test_ctrl_c_cancels_the_replay_when_confirmed():
    replays = ScriptedReplays(
        status("RUNNING"), KeyboardInterrupt(), status("CANCELLING"), status("CANCELLED")
    )
    asked: list[str] = []

    def confirm(name: str) -> bool:
        asked.append(name)
        return True

    final = rebuild_cli.follow(quiet(), replays, "r", poll_seconds=0, confirm=confirm, sleep=lambda _: None)
    assert asked == ["r"]
    assert replays.cancelled == ["r"]
    assert final is not None
    assert final.state is ReplayState.CANCELLED


def test_ctrl_c_leaves_the_replay_running_when_declined():
    replays = ScriptedReplays(KeyboardInterrupt())
    final = rebuild_cli.follow(
        quiet(), replays, "r", poll_seconds=0, confirm=lambda n: False, sleep=lambda _: None
    )
    assert final is None
    assert replays.cancelled == []


def test_a_second_ctrl_c_while_cancelling_leaves():
    replays = ScriptedReplays(KeyboardInterrupt(), KeyboardInterrupt())
    final = rebuild_cli.follow(
        quiet(), replays, "r", poll_seconds=0, confirm=lambda n: True, sleep=lambda _: None
    )
    assert final is None
    assert replays.cancelled == ["r"]


def test_unattended_runs_cancel_without_asking(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert rebuild_cli._confirm_cancel(quiet())("r") is True


def test_interactive_runs_ask(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    assert rebuild_cli._confirm_cancel(quiet())("r") is False
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    assert rebuild_cli._confirm_cancel(quiet())("r") is True
    monkeypatch.setattr("sys.stdin", Tty(""))  # EOF at the prompt: leave the replay alone
    assert rebuild_cli._confirm_cancel(quiet())("r") is False


def test_interrupted_cli_run_says_how_to_follow_again(aws, monkeypatch, capsys):
    events, sqs = aws
    create_bus(events, sqs, Template.read(Stage="detach"))

    def interrupted(self, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(Replays, "describe", interrupted)
    monkeypatch.setattr(rebuild_cli, "_confirm_cancel", lambda console: lambda name: False)
    code = run("--since", "1d", "--stage", "detach", "--name", "r1", "--poll", "0")
    assert code == rebuild_cli.EXIT_INTERRUPTED
    assert "jobstatus rebuild --attach r1" in capsys.readouterr().err


def test_without_template_yaml_the_names_must_be_flags(monkeypatch, tmp_path):
    import ops.template

    def missing(**_):
        raise FileNotFoundError("template.yaml")

    monkeypatch.setattr(ops.template.Template, "read", missing)
    with pytest.raises(RebuildError, match="pass --archive-arn, --bus-arn and --rule-arn"):
        rebuild_cli._template("prod")
