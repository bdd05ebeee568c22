"""Rebuild from a file: the same concurrent writer as ProjectorFn, and a summary of bounded size."""

from __future__ import annotations

import json

import pytest

from jobstatus.events import Status
from projector.fold import JobBatch
from projector.rebuild import MAX_JOB_IDS_KEPT, MAX_PROBLEMS_KEPT, apply_events
from projector.store import Outcome, WriteResult
from tests.core.factories import NOW, at, event
from tests.core.test_concurrent_writes import Rendezvous

pytestmark = pytest.mark.unit


def test_a_windows_writes_are_in_flight_together() -> None:
    # Given a window of 8 jobs, and a writer that answers only when all 8 writes are waiting
    lines = [json.dumps(event(Status.QUEUED, at(1), job_id=f"job-{n}").to_detail()) for n in range(8)]
    # When the file is applied with the default pool
    summary = apply_events(lines, Rendezvous(8), batch_size=1000, ttl_days=30, now=NOW)
    # Then every write met the others
    assert (summary.ok, summary.applied, summary.writes) == (True, 8, 8)


class Applies:
    def write(self, job: JobBatch) -> WriteResult:
        return WriteResult(Outcome.APPLIED, 1)


def test_the_summary_counts_every_problem_and_keeps_only_the_first() -> None:
    # Given a file of 2,500 bad lines
    summary = apply_events(["not json"] * 2_500, Applies(), batch_size=1000, ttl_days=30, now=NOW)
    # Then all are counted, the first 1,000 kept with their line numbers
    assert summary.invalid.total == 2_500
    assert MAX_PROBLEMS_KEPT == 1_000
    assert [p.line for p in summary.invalid] == list(range(1, 1_001))
    assert not summary.ok


def test_the_summary_keeps_a_sample_of_job_ids_not_all() -> None:
    detail = event(Status.QUEUED, at(1)).to_detail()
    lines = (json.dumps({**detail, "jobId": f"job-{n:05d}"}) for n in range(10_050))
    summary = apply_events(lines, Applies(), batch_size=1000, ttl_days=30, now=NOW)
    assert (summary.applied, summary.writes) == (10_050, 10_050)
    assert MAX_JOB_IDS_KEPT == 10_000
    assert len(summary.jobs) == 10_000
