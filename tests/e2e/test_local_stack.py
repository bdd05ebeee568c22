"""The whole system, as `make run` runs it, driven over HTTP like a client would."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobstatus.codec import from_item
from jobstatus.events import JobStatusChanged
from local.engines import free_port
from ops.template import TEMPLATE_PATH, Template
from projector.fold import project
from tests.e2e.conftest import JOBSTATUS, ROOT, RunningStack, submit, wait_until_finished

pytestmark = [pytest.mark.e2e]
PROJECTOR_VISIBILITY = 3  # seconds; template.yaml says 180, too slow to wait for in a test
JOB_TTL_DAYS = int(Template.read(TEMPLATE_PATH).parameters["JobTtlDays"])


def jobs_table_items(stack: RunningStack) -> dict[str, dict[str, Any]]:
    described = stack.described
    client = stack.aws("dynamodb")
    items: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=described["tables"]["JobsTable"]):
        for item in page["Items"]:
            items[item["jobId"]["S"]] = item
    return items


def wipe(stack: RunningStack) -> None:
    described = stack.described
    client = stack.aws("dynamodb")
    for job_id in jobs_table_items(stack):
        client.delete_item(TableName=described["tables"]["JobsTable"], Key={"jobId": {"S": job_id}})


def test_twenty_jobs_with_simulated_fal_failures_all_finish(stack: RunningStack) -> None:
    # Given 20 jobs submitted through the API, with 20 % of Fal requests failing
    with stack.client("alice") as alice:
        ids = submit(alice, 20)
        # When the system has run them
        bodies = wait_until_finished(alice, ids)
    # Then every one is COMPLETED with a video or FAILED with a reason, as GET shows it
    counts = Counter(body["status"] for body in bodies.values())
    assert set(counts) <= {"COMPLETED", "FAILED"} and sum(counts.values()) == 20
    for body in bodies.values():
        if body["status"] == "COMPLETED":
            assert body["outputUrl"].startswith("https://")
        else:
            assert body["error"]["code"]
        assert body["completedAt"] == body["updatedAt"]


def test_another_users_token_gets_404_and_an_admin_sees_it(stack: RunningStack) -> None:
    with stack.client("alice") as alice:
        (job_id,) = submit(alice, 1)
        wait_until_finished(alice, [job_id])
    with stack.client("mallory") as mallory:
        answer = mallory.get(f"/v1/jobs/{job_id}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "NOT_FOUND"
        assert job_id not in [item["jobId"] for item in mallory.get("/v1/jobs").json()["items"]]
    with stack.client("root", admin=True) as admin:
        assert admin.get(f"/v1/jobs/{job_id}").status_code == 200
    assert httpx.get(f"{stack.url}/v1/jobs/{job_id}").status_code == 401
    bad = httpx.get(f"{stack.url}/v1/jobs/{job_id}", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401


def test_the_projector_stopped_mid_run_and_restarted_loses_nothing(stack: RunningStack) -> None:
    with stack.client("root", admin=True) as admin, stack.client("carol") as carol:
        # The projector's event source is switched off (batches in hand finish first), then jobs
        # are submitted: every one of their events has to wait in the queue.
        assert admin.post("/local/functions/ProjectorFn/disable").status_code == 200
        try:
            ids = submit(carol, 8)
            time.sleep(2.0)  # the invoker goes on publishing; the events wait in the queue
            stuck = [carol.get(f"/v1/jobs/{j}") for j in ids]
            assert all(answer.status_code == 404 for answer in stuck), "a job was projected while stopped"
        finally:
            assert admin.post("/local/functions/ProjectorFn/enable").status_code == 200
        bodies = wait_until_finished(carol, ids)
    assert len(bodies) == 8


def short_visibility_template(folder: Path, seconds: int) -> Path:
    """A copy of template.yaml whose ProjectorQueue gives abandoned messages back after `seconds`.

    Its ProjectorFn has a 2 s batching window, so a kill is likely to catch a batch in hand.
    """
    text = TEMPLATE_PATH.read_text()
    start = text.index("\n  ProjectorQueue:\n")
    line_start = text.index("      VisibilityTimeout: ", start)
    line_end = text.index("\n", line_start)
    text = f"{text[:line_start]}      VisibilityTimeout: {seconds}{text[line_end:]}"
    window = text.index("MaximumBatchingWindowInSeconds: ", text.index("\n  ProjectorFn:\n"))
    text = f"{text[:window]}MaximumBatchingWindowInSeconds: 2{text[text.index(chr(10), window) :]}"
    copy = folder / "template.yaml"
    copy.write_text(text)
    changed = Template.read(copy).resources["ProjectorQueue"]["Properties"]["VisibilityTimeout"]
    original = Template.read(TEMPLATE_PATH).resources["ProjectorQueue"]["Properties"]["VisibilityTimeout"]
    assert original != seconds and changed == seconds, "the replace missed the ProjectorQueue line"
    events = Template.read(copy).resources["ProjectorFn"]["Properties"]["Events"]
    assert events["ProjectorQueueEvent"]["Properties"]["MaximumBatchingWindowInSeconds"] == 2
    return copy


@pytest.fixture(scope="module")
def quick_redelivery_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A second stack, run with `--template` from a copy whose ProjectorQueue VisibilityTimeout is 3 s."""
    folder = tmp_path_factory.mktemp("e2e-kill")
    template = short_visibility_template(folder, PROJECTOR_VISIBILITY)
    running = RunningStack(folder / "data", free_port(), fal_failure_rate=0.2, template=template)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def archived_projection(stack: RunningStack, ids: set[str]) -> dict[str, dict[str, Any]]:
    """`projector.fold.project` of the jobs' events in the stack's archive copy (archive.jsonl)."""
    lines = (stack.data_dir / "archive.jsonl").read_text().splitlines()
    details = [json.loads(line)["detail"] for line in lines if line.strip()]
    events = [JobStatusChanged.from_detail(d) for d in details if d.get("jobId") in ids]
    return project(events, ttl_days=JOB_TTL_DAYS, now=time.time())


def queue_depth(stack: RunningStack, queue: str) -> int:
    """Messages in one of the stack's queues, visible or in flight."""
    described = stack.described
    sqs = stack.aws("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=described["queues"][queue]["url"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def projector_queue_depth(stack: RunningStack) -> int:
    """Messages in the ProjectorQueue, visible or in flight."""
    return queue_depth(stack, "ProjectorQueue")


def wait_until_quiet(stack: RunningStack, seconds: float = 90) -> None:
    """Until no message waits anywhere: every job's record, outbox entry and event is handled."""
    queues = ("InvokerQueue", "StatusOutboxQueue", "ProjectorQueue")
    deadline = time.monotonic() + seconds
    while any(queue_depth(stack, q) for q in queues) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert {q: queue_depth(stack, q) for q in queues} == dict.fromkeys(queues, 0)


def test_the_projector_killed_mid_run_and_restarted_loses_nothing(
    quick_redelivery_stack: RunningStack,
) -> None:
    stack = quick_redelivery_stack
    ids: list[str] = []
    with stack.client("root", admin=True) as admin, stack.client("frank") as frank:
        # Kill ProjectorFn while status events flow; the copy's 2 s batching window makes a batch in hand
        # likely, but try again (with a few more jobs) until a kill really abandoned one.
        for attempt in range(5):
            ids += submit(frank, 8 if attempt == 0 else 2)
            time.sleep(0.7)
            killed = admin.post("/local/functions/ProjectorFn/kill")
            assert killed.status_code == 200, killed.text
            assert admin.get("/local/stack").json()["functions"]["ProjectorFn"]["enabled"] is False
            if killed.json()["abandonedMessages"] > 0:
                break
            assert admin.post("/local/functions/ProjectorFn/enable").status_code == 200
        abandoned = killed.json()["abandonedMessages"]
        assert abandoned > 0, "no kill caught a batch in hand"
        assert projector_queue_depth(stack) >= abandoned  # not deleted: in flight until 3 s pass
        assert admin.post("/local/functions/ProjectorFn/enable").status_code == 200
        bodies = wait_until_finished(frank, ids)
        assert {body["status"] for body in bodies.values()} <= {"COMPLETED", "FAILED"}
        poller = admin.get("/local/stack").json()["functions"]["ProjectorFn"]["poller"]
        assert poller["abandonedMessages"] >= abandoned and poller["kills"] >= 1
    # The abandoned messages came back and were deleted after a delivery: the queue drains.
    deadline = time.monotonic() + 30
    while projector_queue_depth(stack) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert projector_queue_depth(stack) == 0
    # And the table holds exactly what the archived events fold to: nothing lost.
    wanted = set(ids)
    table = {j: from_item(item) for j, item in jobs_table_items(stack).items() if j in wanted}
    expected = archived_projection(stack, wanted)
    while table != expected and time.monotonic() < deadline:  # the archive copy lags by 0.5 s
        time.sleep(0.5)
        table = {j: from_item(item) for j, item in jobs_table_items(stack).items() if j in wanted}
        expected = archived_projection(stack, wanted)
    assert set(expected) == wanted
    assert table == expected


def test_wiping_the_table_and_replaying_the_archive_gives_identical_items(stack: RunningStack) -> None:
    with stack.client("dave") as dave:
        wait_until_finished(dave, submit(dave, 3))
    # Late events (a retried send, an outbox entry put back) must land before the snapshot.
    wait_until_quiet(stack)
    before = jobs_table_items(stack)
    assert len(before) >= 3
    wipe(stack)
    assert jobs_table_items(stack) == {}
    rebuild = subprocess.run(
        [str(JOBSTATUS), "rebuild", "--local", str(stack.data_dir), "--since", "1h", "--poll", "0.2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rebuild.returncode == 0, rebuild.stdout + rebuild.stderr
    deadline = time.monotonic() + 30
    after = jobs_table_items(stack)
    while after != before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = jobs_table_items(stack)
    assert after == before


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def archived_job_ids(stack: RunningStack) -> set[str]:
    """The jobs with at least one event in the stack's archive copy."""
    lines = (stack.data_dir / "archive.jsonl").read_text().splitlines()
    return {json.loads(line)["detail"]["jobId"] for line in lines if line.strip()}


def settled_snapshot(stack: RunningStack, ids: list[str]) -> dict[str, Any]:
    """After every job's events are handled and copied to archive.jsonl: items, bodies, ETags."""
    wait_until_quiet(stack)
    deadline = time.monotonic() + 10
    while not set(ids) <= archived_job_ids(stack) and time.monotonic() < deadline:
        time.sleep(0.2)  # the archive copy lags by 0.5 s
    table = jobs_table_items(stack)
    with stack.client("erin", admin=True) as reader:
        answers = {job_id: reader.get(f"/v1/jobs/{job_id}") for job_id in ids}
    return {
        job_id: {"item": table[job_id], "body": answer.json(), "etag": answer.headers["ETag"]}
        for job_id, answer in answers.items()
    }


def test_a_restart_keeps_jobs_and_stops_every_process(stack: RunningStack) -> None:
    with stack.client("erin") as erin:
        ids = submit(erin, 2)
        wait_until_finished(erin, ids)
    before = settled_snapshot(stack, ids)
    dynamodb_port = int(stack.described["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"].rsplit(":", 1)[1])
    # SIGTERM stops everything it started: moto server's port (DynamoDB's too) is closed.
    assert stack.stop() == 0, stack.output()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", dynamodb_port)) != 0
    stack.start()
    # The Jobs table (moto, in memory) came back from archive.jsonl: same items, versions, ETags.
    assert "local: Jobs table restored from archive.jsonl: " in stack.output()
    assert settled_snapshot(stack, ids) == before
    with stack.client("erin") as erin:
        # And the restarted stack runs new jobs.
        wait_until_finished(erin, submit(erin, 1))


def test_after_kill_9_a_start_shows_every_archived_job_identical(stack: RunningStack) -> None:
    with stack.client("erin") as erin:
        ids = submit(erin, 3)
        wait_until_finished(erin, ids)
    before = settled_snapshot(stack, ids)
    everything = jobs_table_items(stack)
    archived = archived_job_ids(stack)
    assert set(ids) <= archived
    dynamodb_port = int(stack.described["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"].rsplit(":", 1)[1])
    stack.kill()
    # The DynamoDB engine's own process ends too: it sees its parent's pipe close.
    deadline = time.monotonic() + 20
    while port_open(dynamodb_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(dynamodb_port)
    stack.start()
    assert settled_snapshot(stack, ids) == before
    # Every job that reached the archive is back as it was, not just this test's.
    after = jobs_table_items(stack)
    assert {j: after.get(j) for j in archived} == {j: everything.get(j) for j in archived}


def test_jobstatus_smoke_passes_against_the_local_stack(stack: RunningStack) -> None:
    smoke = subprocess.run(
        [str(JOBSTATUS), "smoke", "--local", str(stack.data_dir), "--poll", "0.3", "--timeout", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    steps = [line.split()[1] for line in smoke.stdout.splitlines()]
    assert steps == ["API", "submitted", "projected", "finished", "listed", "passed"]
    assert f"smoke: API {stack.url}/v1/jobs" in smoke.stdout
