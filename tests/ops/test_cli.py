"""The `jobstatus` command line: `--version`, and every subcommand and flag explained with its default."""

from __future__ import annotations

import argparse

import pytest

from ops.cli import build_parser, main

pytestmark = pytest.mark.unit

SUBCOMMANDS = {"rebuild", "local", "token", "demo", "smoke"}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("jobstatus ") and out != "jobstatus"


def test_every_subcommand_has_a_description() -> None:
    parsers = subparsers()
    assert set(parsers) >= SUBCOMMANDS
    for name in SUBCOMMANDS:
        assert parsers[name].description, name


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_flag_says_its_default(command: str) -> None:
    parser = subparsers()[command]
    silent = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and action.required is False
        and "default" not in (action.help or "")
        and action.dest not in {"since", "attach", "from_file", "stack", "api_url"}  # one of them is required
    ]
    assert silent == []
