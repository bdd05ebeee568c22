"""`jobstatus rebuild --from-file` on DynamoDB Local: a wiped or damaged table comes back identical."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobstatus.events import JobStatusChanged
from projector.fold import coalesce, is_expired, project
from projector.store import JobStore
from tests.conftest import create_jobs_table

from .helpers import TTL_DAYS, envelope, history, run, scan_items

# local_aws: the command builds its own client, which finds DynamoDB Local through
# AWS_ENDPOINT_URL_DYNAMODB as it would find AWS.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_aws")]

NOW = datetime.now(UTC)


def project_into(ddb, table: str, events: list[JobStatusChanged], seed: int) -> None:
    """Apply `events` as the projector would: shuffled, duplicated, in batches of ten, expired skipped."""
    rng = random.Random(seed)
    live = [e for e in events if not is_expired(e, TTL_DAYS, time.time())]
    delivered = live + rng.sample(live, len(live) // 3)
    rng.shuffle(delivered)
    store = JobStore(ddb, table, TTL_DAYS)
    for start in range(0, len(delivered), 10):
        batch = [(str(n), e) for n, e in enumerate(delivered[start : start + 10])]
        for job in coalesce(batch):
            store.write(job)


def write_file(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def projected(ddb, jobs_table):
    """A table holding the projection of a history, checked against the pure fold."""
    events = history(25, seed=21, now=NOW)
    project_into(ddb, jobs_table, events, seed=1)
    expected = project(events, ttl_days=TTL_DAYS, now=time.time())
    assert scan_items(ddb, jobs_table) == expected
    assert "job-0025" not in expected  # the expired job was never written
    return events, expected


def test_a_wiped_table_is_rebuilt_identically_from_a_file(
    ddb, jobs_table, template, projected, tmp_path, capsys
):
    # Given the table deleted and made again from the template, and the history as a file of
    # envelopes and bare details mixed, in reverse order, with blank lines
    events, expected = projected
    ddb.delete_table(TableName=jobs_table)
    create_jobs_table(ddb, template, jobs_table)
    lines = [json.dumps(envelope(e) if n % 2 else e.to_detail()) for n, e in enumerate(reversed(events))]
    lines.insert(5, "")
    path = write_file(tmp_path / "events.jsonl", lines)

    # When the file is applied (the table from JOBS_TABLE_NAME, which the fixture set)
    code = run("--from-file", str(path))

    # Then the items are exactly those of the pure fold
    assert code == 0
    assert scan_items(ddb, jobs_table) == expected
    out = capsys.readouterr().out  # the summary goes to stdout (moved from stderr on purpose, issue 11)
    assert f"Rebuild of {jobs_table}" in out
    assert "events.jsonl" in out
    assert "Expired (skipped)" in out


def test_a_damaged_table_is_repaired_from_a_file(ddb, jobs_table, projected, tmp_path):
    # Given some items deleted, some stripped of fill-in fields, some rolled back to an older state
    events, expected = projected
    ids = sorted(expected)
    for job_id in ids[:5]:
        ddb.delete_item(TableName=jobs_table, Key={"jobId": {"S": job_id}})
    for job_id in ids[5:10]:
        ddb.update_item(
            TableName=jobs_table,
            Key={"jobId": {"S": job_id}},
            UpdateExpression="REMOVE #u, #t",
            ExpressionAttributeNames={"#u": "userId", "#t": "ttl"},
        )
    for job_id in ids[10:15]:
        ddb.update_item(
            TableName=jobs_table,
            Key={"jobId": {"S": job_id}},
            UpdateExpression="SET #s = :s, #v = :v REMOVE #o",
            ExpressionAttributeNames={"#s": "status", "#v": "version", "#o": "outputUrl"},
            ExpressionAttributeValues={
                ":s": {"S": "QUEUED"},
                ":v": {"S": "0001#1#2000-01-01T00:00:00.000Z#x"},
            },
        )
    assert scan_items(ddb, jobs_table) != expected
    path = write_file(tmp_path / "events.jsonl", [json.dumps(e.to_detail()) for e in events])

    # When the file is applied, in batches of 7
    code = run("--from-file", str(path), "--table", jobs_table, "--batch-size", "7")

    # Then every item is repaired
    assert code == 0
    assert scan_items(ddb, jobs_table) == expected


def test_bad_lines_are_reported_by_number_and_the_rest_applied(ddb, jobs_table, tmp_path, capsys):
    events = history(3, seed=22, now=NOW, expired_jobs=0)
    lines = [json.dumps(e.to_detail()) for e in events]
    lines.insert(2, '{"jobId": "job-0000", "status": "DONE"}')
    lines.insert(4, "not json at all")
    lines.insert(6, json.dumps({**events[0].to_detail(), "event_id": "x"}))  # snake_case is not the wire form
    path = write_file(tmp_path / "events.jsonl", lines)

    code = run("--from-file", str(path), "--table", jobs_table)

    assert code == 1
    assert scan_items(ddb, jobs_table) == project(events, ttl_days=TTL_DAYS, now=time.time())
    err = capsys.readouterr().out  # what went wrong is part of the summary, on stdout
    assert "Invalid line 3: not a valid JobStatusChanged" in err
    assert "Invalid line 5: not JSON" in err
    assert "Invalid line 7: not a valid JobStatusChanged" in err
    assert "event_id" in err


def test_many_bad_lines_are_summarised(ddb, jobs_table, tmp_path, capsys):
    path = write_file(tmp_path / "events.jsonl", ["nope"] * 25)
    assert run("--from-file", str(path), "--table", jobs_table) == 1
    err = capsys.readouterr().out
    assert err.count("Invalid line") == 20
    assert "... and 5 more invalid lines" in err


def test_a_missing_file_or_table_stops_with_a_reason(ddb, jobs_table, tmp_path, capsys):
    assert run("--from-file", str(tmp_path / "absent.jsonl"), "--table", jobs_table) == 2
    assert "absent.jsonl: no such file" in capsys.readouterr().err
    path = write_file(
        tmp_path / "events.jsonl", [json.dumps(history(1, seed=1, now=NOW, expired_jobs=0)[0].to_detail())]
    )
    assert run("--from-file", str(path), "--table", "Jobs-nowhere") == 2
    assert "the Jobs table does not exist" in capsys.readouterr().err


def test_the_table_defaults_to_the_stage_when_jobs_table_name_is_unset(ddb, template, tmp_path, monkeypatch):
    monkeypatch.delenv("JOBS_TABLE_NAME", raising=False)
    name = create_jobs_table(ddb, template, "Jobs-filestage")
    try:
        event = history(1, seed=2, now=NOW, expired_jobs=0)[0]
        path = write_file(tmp_path / "events.jsonl", [json.dumps(event.to_detail())])
        assert run("--from-file", str(path), "--stage", "filestage") == 0
        assert set(scan_items(ddb, name)) == {event.job_id}
    finally:
        ddb.delete_table(TableName=name)


def test_local_reads_the_running_stacks_endpoints_and_table(
    ddb, jobs_table, local_aws, tmp_path, monkeypatch
):
    # use_local_stack sets these in os.environ; monkeypatch puts them back after the test
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("JOBS_TABLE_NAME")
    assert run("--local", str(tmp_path), "--from-file", str(tmp_path / "x.jsonl")) == 2

    described = {
        "endpoints": {"AWS_ENDPOINT_URL_DYNAMODB": local_aws["AWS_ENDPOINT_URL_DYNAMODB"]},
        "region": "us-east-1",
        "account": "123456789012",
        "stage": "local",
        "jobsTable": jobs_table,
    }
    (tmp_path / "stack.json").write_text(json.dumps(described))
    event = history(1, seed=3, now=NOW, expired_jobs=0)[0]
    path = write_file(tmp_path / "events.jsonl", [json.dumps(event.to_detail())])
    assert run("--local", str(tmp_path), "--from-file", str(path)) == 0
    assert set(scan_items(ddb, jobs_table)) == {event.job_id}
