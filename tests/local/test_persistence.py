"""The archive and queued messages carried across a restart of the local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.persistence import ArchiveKeeper, restore_jobs, restore_queues, save_queues
from local.resources import QueueInfo
from ops.template import TEMPLATE_PATH, Template
from projector.fold import project
from tests.rebuild.helpers import envelope, history

pytestmark = pytest.mark.unit
PATTERN = json.dumps({"detail-type": ["JobStatusChanged"]})


@pytest.fixture
def events() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("events", region_name="us-east-1")
        bus = client.create_event_bus(Name="bus")["EventBusArn"]
        client.create_archive(ArchiveName="arch", EventSourceArn=bus, EventPattern=PATTERN)
        yield client


def put(client: Any, n: int) -> None:
    client.put_events(
        Entries=[
            {
                "EventBusName": "bus",
                "Source": "jobs.submit",
                "DetailType": "JobStatusChanged",
                "Detail": json.dumps({"n": i}),
            }
            for i in range(n)
        ]
    )


def test_archived_events_are_copied_to_the_file_and_restored_after_a_restart(
    events: Any, tmp_path: Path
) -> None:
    path = tmp_path / "archive.jsonl"
    keeper = ArchiveKeeper(path, "arch")
    assert keeper.restore() == 0  # no file yet
    put(events, 3)
    assert keeper.sync() == 3
    assert keeper.sync() == 0  # nothing new
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["detail"]["n"] for e in lines] == [0, 1, 2]

    # A restart: a fresh archive, filled again from the file.
    events.delete_archive(ArchiveName="arch")
    bus = events.describe_event_bus(Name="bus")["Arn"]
    events.create_archive(ArchiveName="arch", EventSourceArn=bus, EventPattern=PATTERN)
    fresh = ArchiveKeeper(path, "arch")
    assert fresh.restore() == 3
    assert events.describe_archive(ArchiveName="arch")["EventCount"] == 3
    put(events, 1)
    assert fresh.sync() == 1  # only the new one is appended
    assert len(path.read_text().splitlines()) == 4


def test_replayed_copies_are_not_written_again(events: Any, tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    keeper = ArchiveKeeper(path, "arch")
    put(events, 2)
    keeper.sync()
    from moto.events.models import events_backends

    archive = events_backends["123456789012"]["us-east-1"].archives["arch"]
    archive.events.append({**archive.events[0], "replay-name": "r1"})
    assert keeper.sync() == 0
    assert len(path.read_text().splitlines()) == 2


def test_unreadable_lines_are_skipped_and_iso_times_read(events: Any, tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    good = {"id": "1", "time": "2026-11-22T07:00:00Z", "detail-type": "JobStatusChanged", "detail": {}}
    path.write_text("not json\n\n" + json.dumps(good) + "\n")
    assert ArchiveKeeper(path, "arch").restore() == 1


def test_the_keeper_syncs_in_the_background_and_once_more_on_stop(events: Any, tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    keeper = ArchiveKeeper(path, "arch")
    keeper.start(interval=60)
    put(events, 2)
    keeper.stop()
    assert len(path.read_text().splitlines()) == 2


def test_queued_and_in_flight_messages_survive_a_restart(tmp_path: Path) -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        queue = QueueInfo("Q", "q", url, "arn:aws:sqs:us-east-1:123456789012:q", 30)
        for body in ("a", "b"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)  # one of them in flight
        path = tmp_path / "queues.jsonl"
        assert save_queues([], path) == 0 and not path.exists()  # nothing to keep: no file
        assert save_queues([queue], path) == 2
    with mock_aws():  # moto starts empty, as after a restart
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        path.write_text(path.read_text() + json.dumps({"queue": "Gone", "body": "x"}) + "\n\n")
        assert restore_queues(sqs, {"Q": QueueInfo("Q", "q", url, "arn", 30)}, path) == 2
        bodies = sorted(
            m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        )
        assert bodies == ["a", "b"]
        assert not path.exists()
        assert restore_queues(sqs, {}, path) == 0


def test_the_restore_counts_every_job_also_past_the_rebuilds_sample_of_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: an archive copy of 7 jobs, and a rebuild that keeps a sample of only 3 job ids
    monkeypatch.setattr("projector.rebuild.MAX_JOB_IDS_KEPT", 3)
    now = datetime.now(UTC)
    events = [event for event in history(8, seed=3, now=now)]
    path = tmp_path / "archive.jsonl"
    path.write_text("".join(json.dumps(envelope(event)) + "\n" for event in events))
    template = Template.read(TEMPLATE_PATH)
    expected = project(events, ttl_days=int(template.parameters["JobTtlDays"]), now=now.timestamp())
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**{**template.table_definition(), "TableName": "Jobs-restore"})
        # When
        restored = restore_jobs(path, client, "Jobs-restore", template)
    # Then: every job the fold makes is counted, not the sample's 3
    assert restored.jobs == len(expected) > 3
    assert restored.events == len(events)
