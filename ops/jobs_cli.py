"""`jobstatus jobs get ID` and `jobstatus jobs list --user U`: what support reads about jobs.

Through the API (DESIGN §4) of the running local stack (`--local`: its URL from stack.json and an
admin token made with its signing key), a deployed stack (`--stack NAME`: its `JobsApiUrl`
output; `--token` or `$JOBSTATUS_TOKEN`, an admin's for another user's jobs) or `--api-url`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ops.smoke import add_target_arguments

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

SUPPORT_USER: Final = "support"  # the admin the token of `--local` names
STATUSES: Final = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
PROMPT_CHARS: Final = 48  # a table cell shows at most this much of the prompt
PIPE_WIDTH: Final = 200  # the table's width when the output is not a terminal (rich would take 80)
# The readable block of one job: its fields in this order, then the input as JSON.
BLOCK_FIELDS: Final = (
    "jobId",
    "status",
    "model",
    "prompt",
    "createdAt",
    "startedAt",
    "updatedAt",
    "completedAt",
    "progress",
    "attempt",
    "outputUrl",
    "error",
)


class JobsFailure(Exception):
    """The command cannot answer; the message is the line the operator sees."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jobs get` and `jobs list` to the `jobstatus` command line."""
    jobs = subparsers.add_parser("jobs", help="read jobs through the API: one job, or a user's jobs")
    commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    get = commands.add_parser("get", help="print one job")
    get.add_argument("job_id", metavar="ID")
    listing = commands.add_parser("list", help="print a table of one user's jobs, newest first")
    listing.add_argument("--user", required=True, help="the user (Cognito sub) whose jobs to list")
    listing.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    listing.add_argument("--limit", type=int, default=20, help="at most this many jobs (1-100, default 20)")
    listing.add_argument("--cursor", help="continue a listing from the cursor it printed")
    for parser in (get, listing):
        add_target_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    get.set_defaults(run=run_get)
    listing.set_defaults(run=run_list)


def target(args: argparse.Namespace) -> tuple[str, str]:
    """The `/v1/jobs` URL and the bearer token the arguments name."""
    from ops.smoke import SmokeFailure, jobs_url, stack_api_url

    token = args.token or os.environ.get("JOBSTATUS_TOKEN")
    if args.local is not None:
        from local.auth import SigningKey, issue_token
        from local.stackfile import NoLocalStack, read

        try:
            base = str(read(Path(args.local))["api"])
        except NoLocalStack as error:
            raise JobsFailure(str(error)) from None
        token = token or issue_token(SigningKey.load_or_create(Path(args.local)), SUPPORT_USER, admin=True)
    elif args.api_url:
        base = args.api_url
    else:
        try:
            base = stack_api_url(args.stack, args.region)
        except SmokeFailure as failure:
            raise JobsFailure(str(failure)) from None
    if not token:
        raise JobsFailure("no token: give --token or set JOBSTATUS_TOKEN")
    return jobs_url(base), token


def fetch(client: httpx.Client, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of a 200; `JobsFailure` naming the answer's status and error otherwise."""
    import httpx

    try:
        answer = client.get(url, params=dict(params or {}))
    except httpx.HTTPError as error:
        raise JobsFailure(f"GET {url}: {type(error).__name__}: {error}") from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != 200 or not isinstance(body, dict):
        problem = (body or {}).get("error") if isinstance(body, dict) else None
        if isinstance(problem, dict):
            said = f"{problem.get('code')}: {problem.get('message')}"
        else:
            said = answer.text[:300]
        raise JobsFailure(f"GET {answer.request.url} answered {answer.status_code} {said}")
    return body


def prompt_of(job: Mapping[str, Any]) -> str:
    """The job's prompt (`input.prompt`), or empty."""
    arguments = job.get("input")
    prompt = arguments.get("prompt") if isinstance(arguments, dict) else None
    return prompt if isinstance(prompt, str) else ""


def job_block(job: Mapping[str, Any]) -> str:
    """One job as aligned `name  value` lines; the input as JSON last."""
    values = {**job, "prompt": prompt_of(job) or None}
    lines = []
    for name in BLOCK_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        if name == "error" and isinstance(value, dict):
            value = f"{value.get('code')}: {value.get('message')} (retryable: {value.get('retryable')})"
        lines.append(f"{name:<12}{value}")
    if job.get("input") is not None:
        lines.append(f"{'input':<12}{json.dumps(job['input'], ensure_ascii=False, sort_keys=True)}")
    return "\n".join(lines)


def print_table(console: Console, user: str, jobs: list[dict[str, Any]], next_cursor: str | None) -> None:
    """A table of jobs (rich), and how to get the next page."""
    from rich.table import Table

    table = Table(title=f"jobs of {user}", title_justify="left")
    for column in ("jobId", "status", "model", "prompt", "createdAt", "updatedAt"):
        table.add_column(column, no_wrap=column != "prompt", overflow="fold")
    for job in jobs:
        prompt = prompt_of(job)
        if len(prompt) > PROMPT_CHARS:
            prompt = prompt[: PROMPT_CHARS - 1] + "…"
        table.add_row(
            str(job.get("jobId")),
            str(job.get("status")),
            str(job.get("model") or ""),
            prompt,
            str(job.get("createdAt") or ""),
            str(job.get("updatedAt") or ""),
        )
    console.print(table)
    count = f"{len(jobs)} job" + ("" if len(jobs) == 1 else "s")
    console.print(count + (f"; more with --cursor {next_cursor}" if next_cursor else ""), markup=False)


def _client(token: str, transport: httpx.BaseTransport | None) -> httpx.Client:
    import httpx

    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30.0, transport=transport)


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def run_get(
    args: argparse.Namespace, transport: httpx.BaseTransport | None = None, console: Console | None = None
) -> int:
    """`jobstatus jobs get ID`: 0 with the job printed, 1 (with one line saying why) otherwise."""
    out = console or _console()
    try:
        url, token = target(args)
        with _client(token, transport) as client:
            job = fetch(client, f"{url}/{args.job_id}")
    except JobsFailure as failure:
        print(f"jobs: {failure}", file=sys.stderr)
        return 1
    if args.json:
        out.print_json(json.dumps(job))
    else:
        out.print(job_block(job), markup=False, highlight=False)
    return 0


def run_list(
    args: argparse.Namespace, transport: httpx.BaseTransport | None = None, console: Console | None = None
) -> int:
    """`jobstatus jobs list --user U`: 0 with the table printed, 1 (with one line saying why) otherwise."""
    out = console or _console()
    if not 1 <= args.limit <= 100:
        print("jobs: --limit must be from 1 to 100", file=sys.stderr)
        return 1
    params: dict[str, Any] = {"userId": args.user, "limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.cursor:
        params["cursor"] = args.cursor
    try:
        url, token = target(args)
        with _client(token, transport) as client:
            page = fetch(client, url, params)
    except JobsFailure as failure:
        print(f"jobs: {failure}", file=sys.stderr)
        return 1
    if args.json:
        out.print_json(json.dumps(page))
    else:
        items = [item for item in page.get("items") or [] if isinstance(item, dict)]
        print_table(out, args.user, items, page.get("nextCursor"))
    return 0
