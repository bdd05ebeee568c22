"""Unit tests of `projector.rebuild`: times, names, replay status, parsing lines, batching, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from jobstatus.codec import from_item
from jobstatus.events import JobStatusChanged
from ops.template import Template
from projector.fold import JobBatch
from projector.rebuild import (
    DEFAULT_BATCH_SIZE,
    LineProblem,
    RebuildError,
    Replays,
    ReplayState,
    ReplayStatus,
    ReplayTarget,
    apply_events,
    batch_size_of,
    parse_line,
    parse_moment,
    read_events,
    replay_name,
    replay_window,
    watch,
)
from projector.store import InvalidForStore, JobStore, Outcome, WriteResult
from tests.conftest import create_jobs_table

from .helpers import ScriptedReplays, envelope, history

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 7, 20, 31, 123000, tzinfo=UTC)


# --- times and names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T07:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("2026-11-01T07:00:00Z", datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("2026-11-01T09:00:00+02:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("36h", NOW - timedelta(hours=36)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 90m ", NOW - timedelta(minutes=90)),
        ("30s", NOW - timedelta(seconds=30)),
    ],
)
def test_parse_moment_reads_iso_times_and_ages(text, expected):
    assert parse_moment(text, NOW) == expected
    assert parse_moment(text, NOW).tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "7 days", "", "2026-13-01", "-3d"])
def test_parse_moment_refuses_anything_else(text):
    with pytest.raises(RebuildError, match="neither an ISO 8601 time"):
        parse_moment(text, NOW)


def test_replay_window_defaults_to_now_and_refuses_bad_windows():
    since = NOW - timedelta(days=1)
    assert replay_window(since, None, NOW) == (since, NOW)
    assert replay_window(since, NOW - timedelta(hours=1), NOW) == (since, NOW - timedelta(hours=1))
    with pytest.raises(RebuildError, match="in the future"):
        replay_window(since, NOW + timedelta(seconds=1), NOW)
    with pytest.raises(RebuildError, match="is not before"):
        replay_window(NOW, None, NOW)


def test_replay_name_is_unique_to_the_second_and_valid_for_eventbridge():
    assert replay_name("prod", NOW) == "rebuild-prod-20261122T072031Z"
    long = replay_name("a" * 80 + "/x y", NOW)
    assert len(long) == 64
    assert set(long) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def test_replay_target_from_template_uses_stage_region_and_account():
    template = Template.read(Stage="prod")
    template.region, template.account = "eu-west-1", "111122223333"
    target = ReplayTarget.from_template(template)
    assert target == ReplayTarget(
        "arn:aws:events:eu-west-1:111122223333:archive/jobs-prod-status",
        "arn:aws:events:eu-west-1:111122223333:event-bus/jobs-prod",
        "arn:aws:events:eu-west-1:111122223333:rule/jobs-prod/jobs-prod-status-to-projector",
    )


def test_batch_size_comes_from_the_projector_event_source(template):
    assert batch_size_of(template) == 10
    bare = Template({"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {}}}})
    assert batch_size_of(bare, "Fn") == DEFAULT_BATCH_SIZE
    sized = Template(
        {
            "Resources": {
                "Fn": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "Events": {
                            "Api": {"Type": "Api", "Properties": {}},
                            "Q": {"Type": "SQS", "Properties": {"BatchSize": 7}},
                        }
                    },
                }
            }
        }
    )
    assert batch_size_of(sized, "Fn") == 7


# --- replay status -------------------------------------------------------------------------


def status(state="RUNNING", last=None, **extra):
    response = {
        "ReplayName": "r",
        "State": state,
        "EventStartTime": NOW - timedelta(hours=10),
        "EventEndTime": NOW,
        "ReplayStartTime": NOW,
        **extra,
    }
    if last is not None:
        response["EventLastReplayedTime"] = last
    return ReplayStatus.from_response(response)


def test_fraction_follows_the_last_replayed_event_through_the_window():
    assert status(last=None).fraction == 0.0
    assert status(last=NOW - timedelta(hours=5)).fraction == pytest.approx(0.5)
    assert status(last=NOW - timedelta(hours=20)).fraction == 0.0
    assert status(last=NOW + timedelta(hours=1)).fraction == 1.0
    assert status("COMPLETED").fraction == 1.0
    assert status(last=NOW, EventStartTime=NOW).fraction == 0.0  # an empty window


def test_status_reads_epoch_numbers_and_naive_times_as_utc():
    parsed = status(
        last=(NOW - timedelta(hours=1)).timestamp(),
        EventStartTime=(NOW - timedelta(hours=2)).replace(tzinfo=None),
        ReplayEndTime=NOW + timedelta(seconds=42),
    )
    assert parsed.last_replayed == NOW - timedelta(hours=1)
    assert parsed.event_start == NOW - timedelta(hours=2)
    assert parsed.duration == timedelta(seconds=42)
    assert status(ReplayStartTime=None).duration is None


def test_terminal_states():
    assert {s for s in ReplayState if status(s.value).is_terminal} == {"COMPLETED", "CANCELLED", "FAILED"}
    assert status("COMPLETED").succeeded
    assert not status("FAILED", StateReason="boom").succeeded
    assert status("FAILED", StateReason="boom").reason == "boom"


def test_watch_polls_until_the_replay_ends():
    replays = ScriptedReplays(status("STARTING"), status("RUNNING"), status("COMPLETED"))
    slept: list[float] = []
    seen: list[str] = []
    final = watch(replays, "r", poll_seconds=3, sleep=slept.append, on_status=lambda s: seen.append(s.state))
    assert final.state is ReplayState.COMPLETED
    assert seen == ["STARTING", "RUNNING", "COMPLETED"]
    assert slept == [3, 3]


# --- the EventBridge adapter ---------------------------------------------------------------


@pytest.fixture
def stubbed():
    import boto3

    client = boto3.client("events", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


TARGET = ReplayTarget(
    "arn:aws:events:us-east-1:123456789012:archive/a",
    "arn:aws:events:us-east-1:123456789012:event-bus/b",
    "arn:aws:events:us-east-1:123456789012:rule/b/r",
)


def test_start_restricts_the_replay_to_the_projector_rule(stubbed):
    client, stubber = stubbed
    since, until = NOW - timedelta(days=1), NOW
    stubber.add_response(
        "start_replay",
        {"State": "STARTING", "ReplayArn": "arn:aws:events:us-east-1:123456789012:replay/r"},
        {
            "ReplayName": "r",
            "Description": f"Rebuild the Jobs table from {TARGET.archive_arn}",
            "EventSourceArn": TARGET.archive_arn,
            "EventStartTime": since,
            "EventEndTime": until,
            "Destination": {"Arn": TARGET.bus_arn, "FilterArns": [TARGET.rule_arn]},
        },
    )
    arn = Replays(client).start("r", TARGET, since, until)
    assert arn == "arn:aws:events:us-east-1:123456789012:replay/r"


def test_start_explains_a_missing_archive(stubbed):
    client, stubber = stubbed
    reason = "Parameter EventSourceArn is not valid. Reason: Archive a does not exist."
    stubber.add_client_error("start_replay", "ValidationException", reason)
    with pytest.raises(RebuildError, match=r"refused replay r: ValidationException: .*Archive a does not"):
        Replays(client).start("r", TARGET, NOW - timedelta(days=1), NOW)


def test_describe_and_cancel_errors_are_rebuild_errors(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_replay", "ResourceNotFoundException", "Replay r does not exist.")
    stubber.add_client_error("cancel_replay", "IllegalStatusException", "Replay r is not in a valid state")
    replays = Replays(client)
    with pytest.raises(RebuildError, match="cannot describe replay r: Replay r does not exist"):
        replays.describe("r")
    with pytest.raises(RebuildError, match="cannot cancel replay r: Replay r is not in a valid state"):
        replays.cancel("r")


def test_a_failed_replay_reports_its_reason(stubbed):
    client, stubber = stubbed
    stubber.add_response(
        "describe_replay",
        {"ReplayName": "r", "State": "FAILED", "StateReason": "Archive was deleted"},
        {"ReplayName": "r"},
    )
    final = watch(Replays(client), "r", sleep=lambda _: None)
    assert (final.state, final.reason, final.succeeded) == (ReplayState.FAILED, "Archive was deleted", False)


# --- lines of a file -----------------------------------------------------------------------


def one_event(**overrides) -> JobStatusChanged:
    return history(1, seed=7, now=NOW, expired_jobs=0)[0].model_copy(update=overrides)


def test_parse_line_takes_envelopes_and_bare_details():
    event = one_event()
    assert parse_line(json.dumps(envelope(event))) == event
    assert parse_line(json.dumps(event.to_detail())) == event
    replayed = {**envelope(event), "replay-name": "rebuild-x"}
    del replayed["account"]  # moto leaves it out
    assert parse_line(json.dumps(replayed)) == event


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON: .* at column 2"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"detail-type": "VideoGenerationRequested", "detail": {}}', "detail-type 'VideoGeneration"),
        ('{"detail-type": "JobStatusChanged", "detail": "x"}', "detail is not an object"),
        ('{"jobId": "j"}', "not a valid JobStatusChanged: eventId: Field required"),
    ],
)
def test_parse_line_says_what_is_wrong(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_line(line)


def test_an_extra_key_is_refused_by_name():
    detail = {**one_event().to_detail(), "colour": "red"}
    with pytest.raises(ValueError, match="colour: Extra inputs are not permitted"):
        parse_line(json.dumps(detail))


def test_read_events_numbers_lines_and_skips_blank_ones():
    event = one_event()
    lines = ["\n", json.dumps(event.to_detail()) + "\n", "   \n", "oops\n", json.dumps(envelope(event))]
    assert list(read_events(lines)) == [
        (2, event),
        LineProblem(4, "not JSON: Expecting value at column 1"),
        (5, event),
    ]


# --- applying a file (in-memory store) -----------------------------------------------------


class FakeStore:
    """JobStore's interface in memory: the outcome of each job, or an error to raise."""

    def __init__(self, errors=None, outcome=Outcome.APPLIED, requests=1):
        self.errors = errors or {}
        self.outcome = outcome
        self.requests = requests
        self.batches: list[JobBatch] = []

    def write(self, batch: JobBatch) -> WriteResult:
        if error := self.errors.get(batch.job_id):
            raise error
        self.batches.append(batch)
        return WriteResult(self.outcome, self.requests)


def lines_of(events):
    return [json.dumps(e.to_detail()) for e in events]


def test_apply_events_coalesces_each_batch_per_job():
    events = history(10, seed=3, now=NOW, expired_jobs=0)
    store = FakeStore()
    progress: list[int] = []
    summary = apply_events(
        lines_of(events), store, batch_size=7, ttl_days=30, now=NOW.timestamp(), on_progress=progress.append
    )
    assert summary.ok
    assert summary.events == len(events) == summary.applied + summary.stale
    assert summary.applied == len(store.batches)  # one winner per job write, the rest superseded
    assert summary.batches == -(-len(events) // 7)
    assert progress[-1] == len(events)
    assert progress == sorted(progress)
    batches = [events[i : i + 7] for i in range(0, len(events), 7)]
    assert summary.writes == sum(len({e.job_id for e in b}) for b in batches) == len(store.batches)
    assert summary.requests == summary.writes
    assert len(summary.jobs) == 10


def test_apply_events_counts_stale_and_skips_expired_jobs():
    events = history(2, seed=4, now=NOW, expired_jobs=1)
    expired = [e for e in events if e.job_id == "job-0002"]
    store = FakeStore(outcome=Outcome.FILLED, requests=2)
    summary = apply_events(lines_of(events), store, batch_size=100, ttl_days=30, now=NOW.timestamp())
    assert summary.expired == len(expired) > 0
    assert summary.stale == len(events) - len(expired)
    assert summary.applied == 0
    assert summary.requests == 2 * 2
    assert "job-0002" not in {b.job_id for b in store.batches}


def test_bad_lines_and_refused_jobs_are_reported_by_line_and_the_rest_applied():
    events = history(3, seed=5, now=NOW, expired_jobs=0)
    lines = lines_of(events)
    lines.insert(1, "garbage")
    refused = events[0].job_id
    store = FakeStore(errors={refused: InvalidForStore("item too large")})
    summary = apply_events(lines, store, batch_size=100, ttl_days=30, now=NOW.timestamp())
    assert not summary.ok
    refused_lines = [n for n, line in enumerate(lines, 1) if refused in line]
    assert [p.line for p in summary.invalid] == [2, *refused_lines]
    assert "DynamoDB refused job" in summary.invalid[-1].reason
    assert summary.jobs == {e.job_id for e in events} - {refused}


def test_a_throttled_job_fails_only_its_lines():
    events = history(2, seed=6, now=NOW, expired_jobs=0)
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "UpdateItem"
    )
    store = FakeStore(
        errors={"job-0000": throttled, "job-0001": EndpointConnectionError(endpoint_url="http://x")}
    )
    summary = apply_events(lines_of(events), store, batch_size=100, ttl_days=30, now=NOW.timestamp())
    assert len(summary.failed) == len(events)
    assert {p.reason.split(":")[0] for p in summary.failed} == {
        "writing job job-0000 failed",
        "writing job job-0001 failed",
    }
    assert any("ProvisionedThroughputExceededException: slow down" in p.reason for p in summary.failed)


def test_a_missing_table_stops_the_rebuild():
    missing = ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "UpdateItem"
    )
    events = history(1, seed=8, now=NOW, expired_jobs=0)
    with pytest.raises(RebuildError, match="the Jobs table does not exist: no table"):
        apply_events(
            lines_of(events),
            FakeStore(errors={"job-0000": missing}),
            batch_size=10,
            ttl_days=30,
            now=NOW.timestamp(),
        )


def test_batch_size_must_be_positive():
    with pytest.raises(RebuildError, match="at least 1"):
        apply_events([], FakeStore(), batch_size=0, ttl_days=30, now=0)


def test_a_file_of_only_bad_lines():
    summary = apply_events(["x", "", "[]"], FakeStore(), batch_size=10, ttl_days=30, now=0)
    assert [p.line for p in summary.invalid] == [1, 3]
    assert summary.batches == 0
    assert summary.events == 0


def test_a_file_that_ends_on_a_batch_boundary_or_is_empty():
    events = history(2, seed=9, now=NOW, expired_jobs=0)[:4]
    progress: list[int] = []
    summary = apply_events(
        lines_of(events),
        FakeStore(),
        batch_size=2,
        ttl_days=30,
        now=NOW.timestamp(),
        on_progress=progress.append,
    )
    assert (summary.batches, progress) == (2, [2, 4])
    empty = apply_events([], FakeStore(), batch_size=2, ttl_days=30, now=0, on_progress=progress.append)
    assert (empty.batches, empty.events, empty.ok) == (0, 0, True)
    assert progress == [2, 4]


def test_a_file_holding_another_owners_events_reports_them_and_applies_the_rest(template):
    # Given a file where mallory's events claim alice's job, before and after alice's own
    created = "2026-11-22T07:00:00.000Z"

    def of(user, status, second, **fields):
        return JobStatusChanged(
            event_id=f"00000000-0000-4000-8000-00000000000{second}",
            job_id="job-1",
            user_id=user,
            status=status,
            occurred_at=f"2026-11-22T07:00:0{second}.000Z",
            created_at=created,
            **fields,
        )

    events = [
        of("alice", "QUEUED", 1),
        of("mallory", "PROCESSING", 2, progress=50),
        of("alice", "PROCESSING", 3),
        of("mallory", "COMPLETED", 4, output_url="https://evil.example.com/v.mp4"),
    ]
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(ddb, template, "Jobs-rebuild")
        store = JobStore(ddb, "Jobs-rebuild", 30)
        # When the file is applied in batches of 2 and then of 4 (a second run changes nothing)
        summary = apply_events(lines_of(events), store, batch_size=2, ttl_days=30, now=NOW.timestamp())
        again = apply_events(lines_of(events), store, batch_size=4, ttl_days=30, now=NOW.timestamp())
        item = from_item(ddb.get_item(TableName="Jobs-rebuild", Key={"jobId": {"S": "job-1"}})["Item"])
    # Then mallory's lines are reported as conflicts and the item is alice's alone
    assert [p.line for p in summary.conflicting] == [2, 4]
    assert [p.line for p in again.conflicting] == [2, 4]
    assert "belongs to userId 'alice'" in summary.conflicting[0].reason
    assert "the event says userId 'mallory'" in summary.conflicting[0].reason
    assert not summary.ok
    assert item == {
        "jobId": "job-1",
        "userId": "alice",
        "createdAt": created,
        "ttl": 1795330800 + 30 * 86_400,
        "status": "PROCESSING",
        "updatedAt": "2026-11-22T07:00:03.000Z",
        "version": "0001#2#2026-11-22T07:00:03.000Z#00000000-0000-4000-8000-000000000003",
        "lastEventId": "00000000-0000-4000-8000-000000000003",
        "attempt": 1,
    }
