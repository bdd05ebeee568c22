"""`jobstatus rebuild`: rebuild the Jobs table from the archive (an EventBridge replay) or a file.

The work is `projector.rebuild`'s; this parses flags, builds the clients and shows progress (stderr)
and the summary (stdout). rich and boto3 are imported inside the commands.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from projector.rebuild import (
    FILE_WINDOW,
    MAX_JOB_IDS_KEPT,
    WRITERS,
    FileSummary,
    Problems,
    RebuildError,
    ReplayControl,
    Replays,
    ReplayStatus,
    ReplayTarget,
    apply_events,
    parse_moment,
    replay_name,
    replay_window,
    watch,
)

if TYPE_CHECKING:
    import boto3
    from rich.console import Console

    from ops.template import Template

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the replay failed or was cancelled; lines were invalid or not written
EXIT_USAGE: Final = 2  # the rebuild could not start
EXIT_INTERRUPTED: Final = 130  # Ctrl-C, the replay left running
MAX_PROBLEMS_SHOWN: Final = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rebuild` to the `jobstatus` command line."""
    parser = subparsers.add_parser(
        "rebuild",
        help="rebuild the Jobs table by replaying the archive, or from a file of events",
        description=(
            "Rebuild the Jobs table. With --since, start an EventBridge replay of the status archive\n"
            "to the bus, delivered only to the projector's rule, and follow it. With --from-file,\n"
            "apply a file of events (one JSON per line: EventBridge envelopes or bare details)\n"
            "through the projector's fold and writer. Both converge on the same items, and both\n"
            "are safe to run over a live table."
        ),
        epilog=(
            "examples:\n"
            "  jobstatus rebuild --since 7d --stage prod\n"
            "  jobstatus rebuild --since 2026-11-01 --until 2026-11-08T12:00Z\n"
            "  jobstatus rebuild --attach rebuild-prod-20261122T072031Z\n"
            "  jobstatus rebuild --from-file events.jsonl --table Jobs-dev"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--since", metavar="TIME", help="replay events from TIME (ISO 8601, or an age: 36h, 7d)"
    )
    source.add_argument("--attach", metavar="REPLAY", help="follow a replay already started")
    source.add_argument("--from-file", metavar="EVENTS.jsonl", type=Path, help="apply a file of events")

    replay = parser.add_argument_group("replay")
    replay.add_argument("--until", metavar="TIME", help="replay events up to TIME (default: now)")
    replay.add_argument("--name", help="the replay's name (default: rebuild-STAGE-<UTC time>)")
    replay.add_argument("--account", help="AWS account of the stack (default: from STS)")
    replay.add_argument("--archive-arn", help="archive to replay (default: the template's, for STAGE)")
    replay.add_argument("--bus-arn", help="bus to replay to (default: the template's, for STAGE)")
    replay.add_argument("--rule-arn", help="the only rule to deliver to (default: the projector's)")
    replay.add_argument(
        "--poll", type=float, default=5.0, metavar="SECONDS", help="DescribeReplay interval (default: 5)"
    )

    from_file = parser.add_argument_group("from a file")
    from_file.add_argument("--table", help="Jobs table (default: $JOBS_TABLE_NAME, else Jobs-STAGE)")
    from_file.add_argument(
        "--batch-size",
        type=int,
        help=f"events coalesced together, one write per job each (default: {FILE_WINDOW:,})",
    )
    from_file.add_argument("--ttl-days", type=int, help="job TTL in days (default: $JOB_TTL_DAYS or 30)")

    parser.add_argument("--stage", help="deployment stage (default: $STAGE, else dev)")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument(
        "--local",
        nargs="?",
        const=".local",
        type=Path,
        metavar="DIR",
        help="rebuild the table of the running `jobstatus local` (its DIR/stack.json; default .local)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run `jobstatus rebuild`; the exit code says whether the rebuild completed."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    try:
        if args.local is not None:
            from local.stackfile import NoLocalStack, use_local_stack

            try:
                use_local_stack(args, args.local)
            except NoLocalStack as error:
                raise RebuildError(str(error)) from error
        if args.from_file is not None:
            return rebuild_from_file(args, console)
        return rebuild_by_replay(args, console)
    except RebuildError as error:
        console.print(f"[bold red]rebuild:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return EXIT_USAGE


# --- by replay -----------------------------------------------------------------------------


def rebuild_by_replay(args: argparse.Namespace, console: Console) -> int:
    """Start (or attach to) a replay and follow it to its end."""
    import boto3

    from jobstatus.settings import Settings

    stage = args.stage or Settings.from_env().stage
    session = boto3.session.Session(region_name=args.region)
    replays = Replays(session.client("events"))
    if args.attach:
        name = args.attach
        target = None
    else:
        now = datetime.now(UTC)
        until = parse_moment(args.until, now) if args.until else None
        since, until = replay_window(parse_moment(args.since, now), until, now)
        target = replay_target(args, session, stage)
        name = args.name or replay_name(stage, now)
        replays.start(name, target, since, until)
        # soft_wrap: an ARN split across lines cannot be copied back into a command
        console.print(f"Started replay [bold]{name}[/] of {target.archive_arn}", soft_wrap=True)
        console.print(f"  to {target.bus_arn}, rule {target.rule_arn} only", soft_wrap=True)
    final = follow(console, replays, name, poll_seconds=args.poll, confirm=_confirm_cancel(console))
    if final is None:
        console.print(
            f"Replay [bold]{name}[/] continues; follow it with: jobstatus rebuild --attach {name}",
            soft_wrap=True,
        )
        return EXIT_INTERRUPTED
    _stdout().print(replay_summary(final, target))
    return EXIT_OK if final.succeeded else EXIT_FAILED


def _stdout() -> Console:
    """Where the summary goes (progress and errors go to stderr): `jobstatus rebuild ... > summary.txt`."""
    from rich.console import Console

    return Console()


def replay_target(args: argparse.Namespace, session: boto3.session.Session, stage: str) -> ReplayTarget:
    """The ARNs from the flags; any not given come from the template for the stage and account."""
    if args.archive_arn and args.bus_arn and args.rule_arn:
        return ReplayTarget(args.archive_arn, args.bus_arn, args.rule_arn)
    region = session.region_name
    if not region:
        raise RebuildError("no AWS region configured: pass --region or set AWS_REGION")
    account = args.account or _caller_account(session)
    template = _template(stage)
    template.region, template.account = region, account
    defaults = ReplayTarget.from_template(template)
    return ReplayTarget(
        args.archive_arn or defaults.archive_arn,
        args.bus_arn or defaults.bus_arn,
        args.rule_arn or defaults.rule_arn,
    )


def _caller_account(session: boto3.session.Session) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(session.client("sts").get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as error:
        raise RebuildError(
            f"cannot tell the AWS account from STS ({error}); pass --account, or all three ARNs"
        ) from error


def _template(stage: str) -> Template:
    from ops.template import TEMPLATE_PATH, Template

    try:
        return Template.read(Stage=stage)
    except FileNotFoundError:
        # An installed package has no template.yaml beside it: the names must come from flags.
        raise RebuildError(
            f"{TEMPLATE_PATH} not found: pass --archive-arn, --bus-arn and --rule-arn (replay) "
            "or --table and --batch-size (from a file)"
        ) from None


def _confirm_cancel(console: Console) -> Callable[[str], bool]:
    def confirm(name: str) -> bool:
        if not sys.stdin.isatty():
            return True  # nobody to ask: an interrupted unattended rebuild stops its replay
        from rich.prompt import Confirm

        try:
            return Confirm.ask(f"Cancel replay {name}? (no leaves it running)", default=True, console=console)
        except (KeyboardInterrupt, EOFError):
            return False

    return confirm


def follow(
    console: Console,
    replays: ReplayControl,
    name: str,
    *,
    poll_seconds: float,
    confirm: Callable[[str], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayStatus | None:
    """Follow a replay with a progress bar until it ends; its last status.

    On Ctrl-C, `confirm(name)` decides: cancel the replay (and follow it to CANCELLED), or leave it
    running and return None. A second Ctrl-C while cancelling also leaves.
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task(f"replay {name}", total=1.0)

    def show(status: ReplayStatus) -> None:
        progress.update(task, completed=status.fraction, description=_describe_progress(status))

    try:
        with progress:
            return watch(replays, name, poll_seconds=poll_seconds, sleep=sleep, on_status=show)
    except KeyboardInterrupt:
        pass
    if not confirm(name):
        return None
    replays.cancel(name)
    console.print(f"Cancelling replay [bold]{name}[/] ...")
    try:
        with progress:  # the interrupt stopped the bar; show it again while EventBridge cancels
            return watch(replays, name, poll_seconds=poll_seconds, sleep=sleep, on_status=show)
    except KeyboardInterrupt:
        return None


def _describe_progress(status: ReplayStatus) -> str:
    text = f"replay {status.name} [bold]{status.state}[/]"
    if status.last_replayed:  # EventBridge says how far it got only once it has replayed something
        text += f", replayed up to {status.last_replayed.strftime('%Y-%m-%d %H:%M:%SZ')}"
    return text


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def replay_summary(status: ReplayStatus, target: ReplayTarget | None) -> object:
    """A table saying how the replay ended."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Replay {status.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # ARNs wrap whole, never cut with an ellipsis
    colour = "green" if status.succeeded else "red"
    state = f"[{colour}]{status.state}[/]" + (f" ({escape(status.reason)})" if status.reason else "")
    table.add_row("State", state)
    table.add_row("Events window", f"{_moment(status.event_start)} → {_moment(status.event_end)}")
    if status.last_replayed is not None:  # EventBridge leaves it out until it has replayed one
        table.add_row("Last event replayed", _moment(status.last_replayed))
    duration = status.duration
    table.add_row("Duration", f"{duration.total_seconds():.1f} s" if duration is not None else "-")
    if target is not None:
        table.add_row("Archive", target.archive_arn)
        table.add_row("Delivered to", target.rule_arn)
    if status.succeeded:
        table.add_row(
            "Next",
            "The events are in the projector's queue: the table is rebuilt once ProjectorFn has "
            "drained it (watch the queue's age and the DLQ alarms).",
        )
    return table


# --- from a file ---------------------------------------------------------------------------


def rebuild_from_file(args: argparse.Namespace, console: Console) -> int:
    """Apply a file of events to the Jobs table, batched like ProjectorFn, with a progress bar."""
    import boto3
    from botocore.config import Config
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobstatus.settings import Settings
    from projector.store import JobStore

    path: Path = args.from_file
    if not path.is_file():
        raise RebuildError(f"{path}: no such file")
    settings = Settings.from_env()
    table = args.table
    if table is None and "jobs_table_name" in settings.model_fields_set:
        table = settings.jobs_table_name
    batch_size = args.batch_size or FILE_WINDOW
    if table is None:
        table = _template(args.stage or settings.stage).physical_name("JobsTable")
    ttl_days = args.ttl_days or settings.job_ttl_days
    total_lines = _count_lines(path)
    # As ProjectorFn's client: a connection per write in flight; no second validation of requests
    # built from validated events.
    config = Config(parameter_validation=False, max_pool_connections=WRITERS)
    store = JobStore(boto3.client("dynamodb", region_name=args.region, config=config), table, ttl_days)

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"{path.name} → {table}", total=total_lines)
        with path.open(encoding="utf-8", errors="replace") as lines:
            summary = apply_events(
                lines,
                store,
                batch_size=batch_size,
                ttl_days=ttl_days,
                now=time.time(),
                on_progress=lambda line: progress.update(task, completed=line),
            )
        progress.update(task, completed=total_lines)
    out = _stdout()
    out.print(file_summary(summary, path, table, batch_size))
    _print_problems(out, "Invalid", summary.invalid)
    _print_problems(out, "Not written", summary.failed)
    _print_problems(out, "Conflicting (another owner's job)", summary.conflicting)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _count_lines(path: Path) -> int:
    with path.open("rb") as raw:
        return sum(1 for _ in raw)


def file_summary(summary: FileSummary, path: Path, table_name: str, batch_size: int) -> object:
    """A table of what applying the file did."""
    from rich.table import Table

    table = Table(title=f"Rebuild of {table_name}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right", overflow="fold")
    table.add_row("File", str(path))
    table.add_row("Events read", str(summary.events))
    table.add_row("Applied", str(summary.applied))
    table.add_row("Stale or duplicate", str(summary.stale))
    table.add_row("Expired (skipped)", str(summary.expired))
    table.add_row("Invalid", f"[red]{summary.invalid.total}[/]" if summary.invalid.total else "0")
    table.add_row("Not written (errors)", f"[red]{summary.failed.total}[/]" if summary.failed.total else "0")
    table.add_row("Conflicting", f"[red]{summary.conflicting.total}[/]" if summary.conflicting.total else "0")
    jobs = len(summary.jobs)
    table.add_row("Jobs", str(jobs) if jobs < MAX_JOB_IDS_KEPT else f"{MAX_JOB_IDS_KEPT} or more")
    table.add_row("Batches", f"{summary.batches} of up to {batch_size}")
    table.add_row("DynamoDB requests", str(summary.requests))
    return table


def _print_problems(console: Console, title: str, problems: Problems) -> None:
    from rich.markup import escape

    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        text = f"[red]{title}[/] line {problem.line}: {escape(problem.reason)}"
        console.print(text, highlight=False, soft_wrap=True)
    if problems.total > MAX_PROBLEMS_SHOWN:
        console.print(f"... and {problems.total - MAX_PROBLEMS_SHOWN} more {title.lower()} lines")
