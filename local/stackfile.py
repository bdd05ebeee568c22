"""`.local/stack.json`: what a running `jobstatus local` tells other commands about itself.

`jobstatus rebuild --local` reads it to aim botocore at the local engines (the standard
`AWS_ENDPOINT_URL_*` settings), with the local stack's region, account, stage and table.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Final

STACK_FILE: Final = "stack.json"


class NoLocalStack(Exception):
    """No running local stack described in the folder."""


def read(data_dir: Path) -> dict[str, Any]:
    """The description the running local stack wrote, or `NoLocalStack`."""
    path = data_dir / STACK_FILE
    try:
        described: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise NoLocalStack(f"{path} not found: is `jobstatus local` (make run) running?") from None
    except ValueError as error:
        raise NoLocalStack(f"{path} is not readable JSON: {error}") from None
    return described


def use_local_stack(args: argparse.Namespace, data_dir: Path | str) -> dict[str, Any]:
    """Point this process's AWS clients at the local stack in `data_dir`; fill in unset flags."""
    described = read(Path(data_dir))
    for name, value in described["endpoints"].items():
        if value:
            os.environ[name] = value
    # The local engines take any credentials; fixed ones keep a real profile from being used.
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}
    )
    os.environ.pop("AWS_PROFILE", None)
    defaults = {
        "region": described["region"],
        "account": described["account"],
        "stage": described["stage"],
        "table": described.get("jobsTable"),
    }
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return described
