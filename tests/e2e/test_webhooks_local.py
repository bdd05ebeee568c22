"""Webhooks through `jobstatus local --allow-local-webhooks`, to a real receiver on 127.0.0.1 that
verifies every delivery with `standardwebhooks`' own `Webhook.verify`; and `jobstatus jobs` on it.

Needs the local stack's stream poller feeding WebhookDispatcherFn (the template's stream mapping).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.engines import free_port
from tests.e2e.conftest import JOBSTATUS, MODEL, ROOT, RunningStack, wait_until_finished
from tests.webhooks.receiver import Arrival, Receiver, payload_version

pytestmark = [pytest.mark.e2e]

USER = "hook-user"
ALL_EVENTS = ["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A local stack that lets webhooks call http://127.0.0.1 (30 % of simulated Fal jobs fail)."""
    running = RunningStack(
        tmp_path_factory.mktemp("e2e-webhooks") / "data",
        free_port(),
        fal_failure_rate=0.3,
        extra_args=("--allow-local-webhooks",),
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def post_job(client: httpx.Client, body: dict[str, Any], tries: int = 6) -> str:
    """POST a job with an Idempotency-Key, retried on 503 as the answer asks (a busy machine's
    moto can be slower than SubmitJobFn's publish deadline); its jobId."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    for _ in range(tries):
        answer = client.post("/v1/jobs", json=body, headers=key)
        if answer.status_code != 503:
            break
        time.sleep(float(answer.headers.get("Retry-After", "2")))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["jobId"])


def item_version(stack: RunningStack, job_id: str) -> str:
    table = stack.described["jobsTable"]
    item = stack.aws("dynamodb").get_item(TableName=table, Key={"jobId": {"S": job_id}})["Item"]
    return str(item["version"]["S"])


def wait_for(receiver: Receiver, wanted: dict[str, str], timeout: float = 120.0) -> list[Arrival]:
    """Deliveries until each job of `wanted` ({jobId: version}) has that version delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivered = receiver.delivered()
        have = {a.webhook_id for a in delivered}
        if all(f"{job}.{version}" in have for job, version in wanted.items()):
            return delivered
        time.sleep(0.2)
    arrived = [(a.webhook_id, a.action, a.verified or a.payload) for a in receiver.arrivals]
    wanted_ids = sorted(f"{job}.{version}" for job, version in wanted.items())
    raise AssertionError(
        f"not delivered within {timeout}s: {wanted_ids}; arrivals (id, answer, why): {arrived}"
    )


def test_the_start_says_local_webhooks_are_allowed(hooked: RunningStack) -> None:
    assert "webhooks may call plain http and loopback URLs (--allow-local-webhooks)" in hooked.output()


def test_terminal_changes_are_delivered_signed_with_the_callers_secret(hooked: RunningStack) -> None:
    if "/v1/stream" not in hooked.output():  # the stack says `live updates: ws://.../v1/stream` when it does
        pytest.skip("this local stack polls no DynamoDB stream, so WebhookDispatcherFn is never fed")
    # Given: the caller's secret from the API, and a receiver that verifies with it
    with hooked.client(USER) as client:
        answer = client.get("/v1/webhooks/secret")
        assert answer.status_code == 200, answer.text
        secret = answer.json()["secret"]
        assert secret.startswith("whsec_")
        receiver = Receiver(secret).start()
        try:
            # When: jobs are submitted with a webhook (default events), one with every status
            ids = [
                post_job(
                    client, {"model": MODEL, "input": {"prompt": f"hook {index}"}, "webhook": receiver.url}
                )
                for index in range(4)
            ]
            every = {
                "model": MODEL,
                "input": {"prompt": "every"},
                "webhook": receiver.url,
                "webhookEvents": ALL_EVENTS,
            }
            all_id = post_job(client, every)
            bodies = wait_until_finished(client, [*ids, all_id], timeout=120)
            final = {job: item_version(hooked, job) for job in [*ids, all_id]}
            delivered = wait_for(receiver, final)
        finally:
            receiver.stop()
    # Then: every request the receiver got verified with the library
    assert all(arrival.verified for arrival in receiver.arrivals)
    for job in ids:
        mine = [a for a in delivered if a.webhook_id.startswith(f"{job}.")]
        # only the terminal change (default events), once, as `{jobId}.{version}` of the item
        assert [a.webhook_id for a in mine] == [f"{job}.{final[job]}"]
        payload: dict[str, Any] = mine[0].payload
        status = bodies[job]["status"]
        assert payload["type"] == {"COMPLETED": "job.completed", "FAILED": "job.failed"}[status]
        assert payload["data"] == bodies[job]
        assert payload["data"]["model"] == MODEL
    # And: the job subscribed to every status got QUEUED first, its last is the final one, and
    # versions only grow (never an older one after a newer one)
    mine = [a for a in delivered if a.webhook_id.startswith(f"{all_id}.")]
    versions = [payload_version(a) for a in mine]
    assert versions == sorted(set(versions))
    assert mine[0].payload["type"] == "job.queued"
    assert versions[-1] == final[all_id]


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        ("http://10.0.0.1/hook", "webhook host '10.0.0.1' resolves to 10.0.0.1, which is private"),
        (
            "http://169.254.169.254/",
            "webhook host '169.254.169.254' resolves to 169.254.169.254, which is a cloud metadata address",
        ),
        ("ftp://127.0.0.1/hook", "webhook URL must use https"),
    ],
)
def test_even_local_mode_refuses_other_addresses(hooked: RunningStack, webhook: str, message: str) -> None:
    with hooked.client(USER) as client:
        answer = client.post("/v1/jobs", json={"model": MODEL, "input": {}, "webhook": webhook})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "INVALID_WEBHOOK"
    assert answer.json()["error"]["message"] == message


def jobs_command(hooked: RunningStack, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBSTATUS), "jobs", *argv, "--local", str(hooked.data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_jobs_get_and_list_read_the_local_stack_as_an_admin(hooked: RunningStack) -> None:
    # Given: a job of another user
    with hooked.client("support-case") as client:
        job_id = post_job(client, {"model": MODEL, "input": {"prompt": "support me"}})
        wait_until_finished(client, [job_id], timeout=120)
    # When
    got = jobs_command(hooked, "get", job_id, "--json")
    listed = jobs_command(hooked, "list", "--user", "support-case", "--limit", "5")
    # Then
    assert got.returncode == 0, got.stderr
    job = json.loads(got.stdout)
    assert (job["jobId"], job["model"], job["input"]) == (job_id, MODEL, {"prompt": "support me"})
    assert listed.returncode == 0, listed.stderr
    assert (
        "jobs of support-case" in listed.stdout and job_id in listed.stdout and "support me" in listed.stdout
    )
