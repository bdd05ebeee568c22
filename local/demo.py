"""`jobstatus demo`: submit jobs through the HTTP API and watch them converge, in a live table.

Each unfinished job is polled with `If-None-Match`, so an unchanged job costs a 304 and no body.
Exit code: 0 when every job COMPLETED, 1 when one FAILED, was refused or did not finish in time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from jobstatus.contract import TERMINAL_STATUSES as TERMINAL

DEMO_MODEL: Final = "fal-ai/kling-video/v2/master/text-to-video"
POLL_SECONDS: Final = 0.5


@dataclass
class TrackedJob:
    """One submitted job as the demo last saw it."""

    job_id: str
    status: str = "SUBMITTED"
    etag: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    polls: int = 0
    not_modified: int = 0

    @property
    def done(self) -> bool:
        """Whether the job reached COMPLETED or FAILED."""
        return self.status in TERMINAL


class DemoError(Exception):
    """The API refused a request the demo needs."""


def submit(client: httpx.Client, index: int) -> TrackedJob:
    """POST one job; its tracked state."""
    answer = client.post(
        "/v1/jobs",
        json={"model": DEMO_MODEL, "input": {"prompt": f"demo clip {index}: a lighthouse at dawn"}},
    )
    if answer.status_code != 202:
        raise DemoError(f"POST /v1/jobs answered {answer.status_code}: {answer.text[:300]}")
    body = answer.json()
    return TrackedJob(job_id=str(body["jobId"]), status=str(body.get("status", "QUEUED")))


def refresh(client: httpx.Client, job: TrackedJob) -> None:
    """GET the job once, sending its last ETag; a 304 leaves it as it was."""
    headers = {"If-None-Match": job.etag} if job.etag else {}
    answer = client.get(f"/v1/jobs/{job.job_id}", headers=headers)
    job.polls += 1
    if answer.status_code == 304:
        job.not_modified += 1
        return
    if answer.status_code == 404:
        return  # not projected yet: the projector has not applied the first event
    if answer.status_code != 200:
        raise DemoError(f"GET /v1/jobs/{job.job_id} answered {answer.status_code}: {answer.text[:300]}")
    job.body = answer.json()
    job.status = str(job.body.get("status", job.status))
    job.etag = answer.headers.get("ETag")


PROGRESS_WIDTH: Final = 8


def progress_bar(job: TrackedJob) -> Any:
    """The job's progress as a bar: the API's `progress`, else what its status says (full when done)."""
    from rich.progress_bar import ProgressBar

    progress = job.body.get("progress")
    if job.status == "COMPLETED":
        progress = 100
    elif progress is None and job.status == "PROCESSING":
        return ProgressBar(total=None, width=PROGRESS_WIDTH)  # running, no figure yet: a pulse
    completed = float(progress) if isinstance(progress, int | float) else 0.0
    style = "red" if job.status == "FAILED" else "green"
    return ProgressBar(total=100, completed=completed, width=PROGRESS_WIDTH, finished_style=style)


def table(jobs: list[TrackedJob], elapsed: float) -> Any:
    """The live table of jobs: ids whole, and outputs and errors folded onto more lines, never cut."""
    from rich import box
    from rich.table import Table

    colours = {"QUEUED": "yellow", "PROCESSING": "cyan", "COMPLETED": "green", "FAILED": "red"}
    view = Table(
        title=f"{sum(j.done for j in jobs)}/{len(jobs)} finished after {elapsed:.1f}s",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    view.add_column("job", no_wrap=True)  # whole: a UUID fits beside the rest at 80 columns
    view.add_column("status", no_wrap=True)
    view.add_column("progress", no_wrap=True, width=PROGRESS_WIDTH)
    view.add_column("output / error", overflow="fold")  # wraps onto more lines, never cut
    view.add_column("polls", no_wrap=True)  # GETs (of them 304 Not Modified)
    for job in jobs:
        colour = colours.get(job.status, "white")
        error = job.body.get("error") or {}
        detail = job.body.get("outputUrl") or (
            f"{error.get('code')}: {error.get('message')}" if error else ""
        )
        view.add_row(
            job.job_id,
            f"[{colour}]{job.status}[/]",
            progress_bar(job),
            str(detail),
            f"{job.polls} ({job.not_modified})",
        )
    return view


def summary(jobs: list[TrackedJob], elapsed: float) -> str:
    """One paragraph: how many finished how, and the polling cost."""
    counts = Counter(job.status for job in jobs)
    polls = sum(j.polls for j in jobs)
    not_modified = sum(j.not_modified for j in jobs)
    parts = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    return (
        f"{len(jobs)} jobs in {elapsed:.1f}s: {parts}. "
        f"{polls} GETs, {not_modified} of them answered 304 Not Modified."
    )


def run(
    url: str,
    token: str,
    *,
    jobs: int,
    timeout: float = 300.0,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Submit `jobs` jobs to `url` and show them until all finish; 0 when they all COMPLETED."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    started = time.monotonic()
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0, transport=transport
    ) as client:
        try:
            tracked = [submit(client, i) for i in range(jobs)]
        except httpx.TransportError as error:
            console.print(f"[bold red]demo:[/] nothing answers at {url} ({error}): is `make run` running?")
            return 1
        except (DemoError, httpx.HTTPError) as error:
            console.print(f"[bold red]demo:[/] {error}")
            return 1
        console.print(f"Submitted {len(tracked)} jobs to {url}")
        with Live(table(tracked, 0.0), console=console, refresh_per_second=4) as live:
            while True:
                elapsed = time.monotonic() - started
                try:
                    for job in tracked:
                        if not job.done:
                            refresh(client, job)
                except (DemoError, httpx.HTTPError) as error:
                    console.print(f"[bold red]demo:[/] {error}")
                    return 1
                live.update(table(tracked, elapsed))
                if all(job.done for job in tracked) or elapsed > timeout:
                    break
                sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    if not console.is_terminal:
        console.line()  # Live leaves its last frame without a newline when not on a terminal
    console.print(summary(tracked, elapsed))
    if not all(job.done for job in tracked):
        console.print(f"[bold red]demo:[/] gave up after {timeout:.0f}s with jobs unfinished")
        return 1
    failed = sum(job.status == "FAILED" for job in tracked)
    if failed:
        console.print(f"[bold red]demo:[/] {failed} of {len(tracked)} jobs FAILED")
        return 1
    return 0
