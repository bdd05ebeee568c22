"""`jobstatus local`, `jobstatus token` and `jobstatus demo`: the local stack's command line.

`local` runs the whole system in the foreground until Ctrl-C or SIGTERM; `token` prints a bearer
token the local API accepts; `demo` submits jobs through the API and shows them converge.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

from local.auth import SigningKey, issue_token

if TYPE_CHECKING:
    from local.stack import LocalStack, StackConfig

DEFAULT_DATA_DIR: Final = Path(".local")
DEFAULT_PORT: Final = 3000


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("JOBSTATUS_LOCAL_DIR") or DEFAULT_DATA_DIR)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `local`, `token` and `demo` to the `jobstatus` command line."""
    local = subparsers.add_parser(
        "local",
        help="run the whole system locally (moto server, the functions, the HTTP API)",
        description="Run the whole system on this machine until Ctrl-C. Resources come from template.yaml.",
    )
    local.add_argument(
        "--template",
        type=Path,
        default=None,
        help="the SAM template to run: resources, pollers, environment (default: the repo's template.yaml)",
    )
    local.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", DEFAULT_PORT)),
        help="HTTP API port on 127.0.0.1 (default: $PORT, else 3000)",
    )
    local.add_argument(
        "--data-dir", help="where the archive, queued messages and keys are kept (default: .local)"
    )
    local.add_argument("--stage", default="dev", help="the template's Stage parameter (default: dev)")
    local.add_argument(
        "--fal-latency",
        type=float,
        default=float(os.environ.get("LOCAL_FAL_LATENCY", "2.0")),
        help="seconds a simulated Fal job takes (default: $LOCAL_FAL_LATENCY, else 2)",
    )
    local.add_argument(
        "--fal-failure-rate",
        type=float,
        default=float(os.environ.get("LOCAL_FAL_FAILURE_RATE", "0.1")),
        help="share of simulated Fal jobs that fail, 0..1 (default: $LOCAL_FAL_FAILURE_RATE, else 0.1)",
    )
    local.add_argument(
        "--dynamodb-engine",
        choices=("moto", "dynalite"),
        default="moto",
        help="the DynamoDB engine to start (default moto; dynalite needs node). "
        "AWS_ENDPOINT_URL_DYNAMODB set: your own engine is used instead",
    )
    local.add_argument(
        "--allow-local-webhooks",
        action="store_true",
        help="let webhooks call plain http and loopback URLs (e.g. a receiver on 127.0.0.1); "
        "local stages only (default: off)",
    )
    local.add_argument(
        "--verbose",
        action="store_true",
        help="show the functions' logs and metrics (default: off, warnings only)",
    )
    local.set_defaults(run=run_local)

    token = subparsers.add_parser(
        "token",
        help="print a bearer token the local API accepts",
        description="Print a bearer token signed with the local stack's key (kept in --data-dir).",
    )
    token.add_argument("--user", default="dev", help="the user (the token's sub), default dev")
    token.add_argument("--admin", action="store_true", help="put the user in the admin group (default: not)")
    token.add_argument("--hours", type=float, default=12.0, help="how long the token is valid (default 12)")
    token.add_argument("--data-dir", help="where the local signing key is kept (default: .local)")
    token.set_defaults(run=run_token)

    demo = subparsers.add_parser(
        "demo",
        help="submit jobs to the local API and watch them finish",
        description="Submit --jobs jobs to the running local stack (`make run`) and show them in a live "
        "table until each is COMPLETED or FAILED. Exit code 0 when all completed, 1 otherwise.",
    )
    demo.add_argument("--jobs", type=int, default=10, help="how many jobs to submit (default 10)")
    demo.add_argument("--url", default=None, help="API base URL (default: http://127.0.0.1:$PORT)")
    demo.add_argument(
        "--token", default=None, help="bearer token (default: one for user dev, the status page's)"
    )
    demo.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)"
    )
    demo.add_argument("--data-dir", help="where the local signing key is kept (default: .local)")
    demo.set_defaults(run=run_demo)


def run_token(args: argparse.Namespace) -> int:
    """Print a token for `--user`."""
    key = SigningKey.load_or_create(_data_dir(args.data_dir))
    print(issue_token(key, args.user, admin=args.admin, seconds=int(args.hours * 3600)))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Submit `--jobs` jobs and follow them to the end."""
    from local.demo import run

    url = args.url or f"http://127.0.0.1:{os.environ.get('PORT', DEFAULT_PORT)}"
    # The status page shows the dev user's jobs: the demo's jobs appear there too.
    token = args.token or issue_token(SigningKey.load_or_create(_data_dir(args.data_dir)), "dev")
    return run(url, token, jobs=args.jobs, timeout=args.timeout)


class _Stopped(Exception):
    """SIGTERM (or SIGHUP, the terminal closing) arrived."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def banner(stack: LocalStack) -> str:
    """What `jobstatus local` prints once everything runs: URLs, a token, curl commands."""
    describe = stack.describe()
    token = stack.token("alice")
    url = stack.url
    lines = [
        "",
        "jobstatus local is running. Ctrl-C stops it.",
        "",
        f"  API          {url}/v1/jobs",
        f"  Status page  {url}/",
        f"  DynamoDB     {describe['dynamodb']} at {describe['endpoints']['AWS_ENDPOINT_URL_DYNAMODB']}",
        f"  EventBridge  moto at {describe['endpoints']['AWS_ENDPOINT_URL_EVENTBRIDGE']} (SQS too)",
        f"  Fal          {describe['fal']}",
        f"  Data         {stack.data_dir} (archive.jsonl, queued messages, signing key, stack.json)",
        "",
        "  Routes:",
        *[f"    {route}" for route in describe["routes"]],
        "  Pollers:",
        *[
            f"    {name} <- {spec.sqs_sources[0].queue} (batch {spec.sqs_sources[0].batch_size}, "
            f"window {spec.sqs_sources[0].batching_window:g}s)"
            for name, spec in stack.functions.items()
            if spec.sqs_sources
        ],
        *[f"  Note: {note}" for note in stack.notes],
        "",
        "Try it (a token for user alice; `jobstatus token --user NAME [--admin]` prints others):",
        "",
        f"  export TOKEN={token}",
        f'  curl -s -X POST {url}/v1/jobs -H "Authorization: Bearer $TOKEN" \\',
        "       -H 'Content-Type: application/json' \\",
        '       -d \'{"model": "fal-ai/kling-video/v2/master/text-to-video", "input": {"prompt": "a cat"}}\'',
        f'  curl -s {url}/v1/jobs -H "Authorization: Bearer $TOKEN"',
        f'  curl -si {url}/v1/jobs/JOB_ID -H "Authorization: Bearer $TOKEN"',
        "  .venv/bin/jobstatus demo --jobs 5",
        "",
    ]
    return "\n".join(lines)


def _engines_line(config: StackConfig) -> str:
    """Which engines a start brings up, said before it starts (the user's own DynamoDB included)."""
    from local.engines import BYO_VARIABLE, external_endpoint

    if own := external_endpoint():
        return f"moto server, DynamoDB at {own} (your own engine: {BYO_VARIABLE} is set)"
    if config.dynamodb_engine == "dynalite":
        return "moto server, dynalite for DynamoDB"
    return "moto server (DynamoDB in memory, EventBridge, SQS)"


def run_local(args: argparse.Namespace) -> int:
    """Run the local stack in the foreground; Ctrl-C or SIGTERM stops everything it started."""
    import logging

    from local.engines import EngineError
    from local.stack import LocalStack, StackConfig

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = StackConfig(
        port=args.port,
        data_dir=_data_dir(args.data_dir),
        stage=args.stage,
        fal_latency=args.fal_latency,
        fal_failure_rate=args.fal_failure_rate,
        dynamodb_engine=args.dynamodb_engine,
        verbose=args.verbose,
        template_path=args.template,
        allow_local_webhooks=args.allow_local_webhooks,
    )
    if args.allow_local_webhooks:
        from webhooks.settings import LOCAL_STAGES

        if args.stage not in LOCAL_STAGES:
            print(
                f"local: --allow-local-webhooks needs a local stage ({', '.join(sorted(LOCAL_STAGES))}), "
                f"not {args.stage!r}",
                file=sys.stderr,
            )
            return 2
        print("local: webhooks may call plain http and loopback URLs (--allow-local-webhooks)", flush=True)
    # SIGHUP too: closing the terminal must also save the archive and stop the engines.
    previous = {number: signal.signal(number, _raise_stopped) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        stack = LocalStack(config)
    except OSError as error:
        print(f"local: cannot read the template: {error}", file=sys.stderr)
        return 2
    template = args.template or "template.yaml"
    try:
        print(f"local: starting {_engines_line(config)}, resources from {template} ...", flush=True)
        stack.start()
        print(banner(stack), flush=True)
        # Until Ctrl-C (KeyboardInterrupt) or SIGTERM (_Stopped). A signal may land on any of the
        # stack's threads, and Python runs its handler only when the main thread next runs: so
        # the main thread wakes twice a second instead of blocking for good.
        while True:
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stopped):
        print("\nlocal: stopping ...", flush=True)
    except EngineError as error:
        print(f"local: cannot start: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"local: cannot start: {error}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and leave dynalite behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            for number, handler in previous.items():
                signal.signal(number, handler)
    print("local: stopped.", flush=True)
    return 0
