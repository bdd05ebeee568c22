"""SubmitJobFn's cold start: what its init and first POST import; the SQS client built when needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.loopback_aws import aws_json_endpoint
from producers.publishing.putevents import Entry
from producers.submit import handler as submit
from producers.submit.handler import LazySqsOutbox
from tests.fresh import fresh_env, imported_of, run_fresh

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ENTRY: Entry = {
    "Source": "jobs.submit",
    "DetailType": "JobStatusChanged",
    "Detail": "{}",
    "EventBusName": "b",
}

# What SubmitJobFn's cold POST does without (bench/coldstart.py --submit-steps prints what its
# path costs): Tracer's X-Ray SDK, Powertools' parser, validation and OpenAPI models (request
# validation), the idempotency serializers for pydantic and dataclass results, pydantic-settings
# (settings are plain models, `jobstatus.settings`; the tests' OpenAPI checker still installs it)
# and the tooling.
KEPT_OUT = (
    "pydantic_settings",
    "dotenv",
    "aws_xray_sdk",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.validation",
    "aws_lambda_powertools.utilities.idempotency.serialization.pydantic",
    "aws_lambda_powertools.utilities.idempotency.serialization.dataclass",
    "aws_lambda_powertools.event_handler.openapi.models",
    "fastjsonschema",
    "jsonschema",
    "moto",
    "httpx",
    "rich",
    "local",
    "ops",
    "api",
    "projector",
    "jobstatus.codec",
    "jobstatus.schema",
)
EVENT = {
    "resource": "/v1/jobs",
    "path": "/v1/jobs",
    "httpMethod": "POST",
    "headers": {"Content-Type": "application/json", "Idempotency-Key": "cold-1"},
    "requestContext": {
        "httpMethod": "POST",
        "path": "/v1/jobs",
        "resourcePath": "/v1/jobs",
        "stage": "test",
        "authorizer": {"claims": {"sub": "user-1"}},
    },
    "body": json.dumps({"model": "fal-ai/kling-video/v2/master/text-to-video", "input": {"prompt": "a fox"}}),
    "isBase64Encoded": False,
}
COLD_POST = f"""
import io, json, sys, types
import producers.submit.handler as h
h.dependencies()
context = types.SimpleNamespace(function_name="submit", function_version="1", memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:submit", aws_request_id="r1",
    get_remaining_time_in_millis=lambda: 30000)
out, sys.stdout = sys.stdout, io.StringIO()
answer = h.lambda_handler({EVENT!r}, context)
sys.stdout = out
print(json.dumps([answer["statusCode"], {imported_of(KEPT_OUT)}]))
"""


@pytest.fixture
def aws() -> Iterator[tuple[str, list[str]]]:
    """A loopback endpoint answering DynamoDB and PutEvents as AWS would; the operations it saw."""
    seen: list[str] = []

    def answer(target: str, request: dict[str, Any]) -> dict[str, Any]:
        seen.append(target)
        if target == "AWSEvents.PutEvents":
            events = range(len(request["Entries"]))
            return {"FailedEntryCount": 0, "Entries": [{"EventId": str(n)} for n in events]}
        return {}

    with aws_json_endpoint(answer) as url:
        yield url, seen


def test_a_cold_post_imports_none_of_the_costly_packages(aws: tuple[str, list[str]]) -> None:
    # Given a fresh interpreter (this one has them all imported already)
    endpoint, seen = aws
    env = fresh_env(
        endpoint,
        STAGE="prod",
        POWERTOOLS_METRICS_NAMESPACE="JobStatus",  # as the template's Globals
        POWERTOOLS_SERVICE_NAME="jobstatus",
        EVENT_BUS_NAME="jobs-prod",
        IDEMPOTENCY_TABLE_NAME="JobsIdempotency-prod",
        OUTBOX_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/outbox",
    )
    # When it does what Lambda's init and a first keyed POST do
    output = run_fresh(COLD_POST, env)
    # Then the job was accepted, and none of them was imported
    status, imported = json.loads(output.splitlines()[-1])
    assert status == 202
    assert imported == []
    # And the POST took the key, reserved the job and published it; nothing went to SQS
    assert seen == [
        "DynamoDB_20120810.PutItem",
        "DynamoDB_20120810.PutItem",
        "AWSEvents.PutEvents",
        "DynamoDB_20120810.UpdateItem",
    ]


class RecordingSqs:
    """An SQS client that stores what SendMessageBatch is given."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        self.batches.append(request)
        return {"Successful": [{"Id": e["Id"]} for e in request["Entries"]], "Failed": []}


def test_init_builds_no_sqs_client_and_the_first_fallback_builds_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SubmitJobFn's own dependencies, with the SQS client's builds counted
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("OUTBOX_QUEUE_URL", "https://sqs.example/outbox")
    built: list[RecordingSqs] = []

    def sqs_client(*_: Any) -> RecordingSqs:
        built.append(RecordingSqs())
        return built[-1]

    monkeypatch.setattr("producers.aws.sqs_client", sqs_client)
    submit.dependencies.cache_clear()
    try:
        # When the function initialises
        submitter = submit.dependencies()
        # Then no SQS client exists
        assert built == []
        # When the publisher falls back to the outbox twice
        outbox = submitter.deps.publisher._outbox  # the one place it is reachable
        entry = ENTRY
        assert outbox.send([entry]) == []
        assert outbox.send([entry, entry]) == []
    finally:
        submit.dependencies.cache_clear()
    # Then one client was built, on the first, and both batches went to the outbox queue
    assert len(built) == 1
    assert [len(b["Entries"]) for b in built[0].batches] == [1, 2]
    assert {b["QueueUrl"] for b in built[0].batches} == {"https://sqs.example/outbox"}


def test_an_sqs_client_that_cannot_be_built_refuses_the_entries_without_raising() -> None:
    # Given an outbox whose client cannot be built
    def broken() -> Any:
        raise RuntimeError("no region")

    outbox = LazySqsOutbox(broken, "https://sqs.example/outbox")
    entry = ENTRY
    # When it is given an entry
    refused = outbox.send([entry])
    # Then the entry comes back with the reason, and no client exists
    assert refused == [(entry, "RuntimeError: no region")]
    assert outbox.built is False


def test_in_lambda_the_init_builds_the_submitter_and_freezes_its_heap(aws: tuple[str, list[str]]) -> None:
    # Given Lambda's init (and the same import outside Lambda)
    endpoint, seen = aws
    probe = (
        "import gc, producers.submit.handler as h; "
        "print(h.dependencies.cache_info().currsize, gc.get_freeze_count())"
    )

    def init(**extra: str) -> list[int]:
        return [int(n) for n in run_fresh(probe, fresh_env(endpoint, **extra)).split()[-2:]]

    # When each imports the handler
    built, frozen = init(AWS_LAMBDA_FUNCTION_NAME="jobs-dev-submit")
    built_outside, frozen_outside = init()
    # Then only Lambda's built the submitter and froze what init made; neither sent a request
    assert built == 1
    assert frozen > 10_000
    assert (built_outside, frozen_outside) == (0, 0)
    assert seen == []
