"""SubmitJobFn's `webhook` and `webhookEvents` (DESIGN §4c): checked at submit, carried in `request`.

The resolver is a fake (a dict of host to addresses): no test here touches DNS or the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from producers.invoker.request import parse_request
from producers.settings import ProducerSettings
from producers.submit.handler import handle
from producers.submit.keys import JobKeys
from producers.submit.submitter import Submitter
from tests.producers.fakes import FakeEvents, lambda_context
from tests.producers.test_submit import MODEL, header, make, post
from tests.producers.test_submit_idempotency import TABLE, create_table
from webhooks.ssrf import ResolverUnavailable, WebhookRefused

pytestmark = pytest.mark.unit

HOOK = "https://hooks.example.com/jobs?team=7"
DNS: dict[str, list[str]] = {
    "hooks.example.com": ["93.184.216.34"],
    "loopback.example": ["127.0.0.1"],
    "ten.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "six-loopback.example": ["::1"],
    "ula.example": ["fc00::1"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
}


class FakeResolver:
    """Answers from `DNS`; records every lookup; an unknown host does not resolve."""

    def __init__(self, unavailable: bool = False) -> None:
        self.lookups: list[tuple[str, int]] = []
        self.unavailable = unavailable

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append((host, port))
        if self.unavailable:
            raise ResolverUnavailable(f"host {host!r} could not be resolved for now: [Errno -3] try again")
        if host not in DNS:
            raise WebhookRefused(
                f"host {host!r} does not resolve: [Errno -2] Name or service not known", permanent=False
            )
        return DNS[host]


def submitter(events: FakeEvents, resolver: FakeResolver | None = None, **settings: Any) -> Submitter:
    made: Submitter = make(events, **settings)
    made.deps.resolver = resolver or FakeResolver()
    return made


def submit(body: dict[str, Any], made: Submitter, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return handle(post(body, headers=headers), lambda_context(), made)


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(response["body"])["error"]
    return error


def test_a_webhook_is_stored_in_the_request_with_the_default_events() -> None:
    # Given
    events = FakeEvents()
    resolver = FakeResolver()
    body = {"model": MODEL, "input": {"prompt": "a rabbit"}, "webhook": HOOK}
    # When
    response = submit(body, submitter(events, resolver))
    # Then
    assert response["statusCode"] == 202
    job_id = json.loads(response["body"])["jobId"]
    [queued] = events.details("JobStatusChanged")
    [requested] = events.details("VideoGenerationRequested")
    assert queued["request"] == {
        "model": MODEL,
        "input": {"prompt": "a rabbit"},
        "webhook": "https://hooks.example.com/jobs?team=7",
        "webhookEvents": ["COMPLETED", "FAILED"],
    }
    assert requested["jobId"] == job_id
    assert requested["webhook"] == "https://hooks.example.com/jobs?team=7"
    assert requested["webhookEvents"] == ["COMPLETED", "FAILED"]
    assert resolver.lookups == [("hooks.example.com", 443)]


def test_the_invoker_builds_the_same_request_as_the_submitter() -> None:
    # Given: a job submitted with a webhook and its own events (repeated, out of order)
    events = FakeEvents()
    body = {
        "model": MODEL,
        "input": {"prompt": "a rabbit", "n": 2},
        "webhook": HOOK,
        "webhookEvents": ["FAILED", "PROCESSING", "FAILED"],
    }
    assert submit(body, submitter(events))["statusCode"] == 202
    [queued] = events.details("JobStatusChanged")
    [requested] = events.details("VideoGenerationRequested")
    # When: FalInvokerFn parses the request event SubmitJobFn sent
    job = parse_request({"id": "evt-1", "detail-type": "VideoGenerationRequested", "detail": requested})
    # Then: both carry one and the same request (a fill-in: the first event to arrive wins)
    expected = {
        "model": MODEL,
        "input": {"prompt": "a rabbit", "n": 2},
        "webhook": "https://hooks.example.com/jobs?team=7",
        "webhookEvents": ["PROCESSING", "FAILED"],
    }
    assert queued["request"] == expected
    assert job.request == expected
    assert job.problem is None


def test_without_a_webhook_nothing_is_resolved_and_the_request_has_no_webhook_keys() -> None:
    events = FakeEvents()
    resolver = FakeResolver()
    response = submit({"model": MODEL, "input": {"prompt": "a cat"}}, submitter(events, resolver))
    assert response["statusCode"] == 202
    assert events.details("JobStatusChanged")[0]["request"] == {"model": MODEL, "input": {"prompt": "a cat"}}
    assert "webhook" not in events.details("VideoGenerationRequested")[0]
    assert resolver.lookups == []


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        (
            "https://loopback.example/h",
            "webhook host 'loopback.example' resolves to 127.0.0.1, which is a loopback address",
        ),
        ("https://ten.example/h", "webhook host 'ten.example' resolves to 10.1.2.3, which is private"),
        (
            "https://metadata.example/latest",
            "webhook host 'metadata.example' resolves to 169.254.169.254, which is a cloud metadata address",
        ),
        (
            "https://six-loopback.example/",
            "webhook host 'six-loopback.example' resolves to ::1, which is a loopback address",
        ),
        ("https://ula.example/", "webhook host 'ula.example' resolves to fc00::1, which is private"),
        ("https://mixed.example/", "webhook host 'mixed.example' resolves to 192.168.1.10, which is private"),
        (
            "https://127.0.0.1/h",
            "webhook host '127.0.0.1' resolves to 127.0.0.1, which is a loopback address",
        ),
        ("https://10.0.0.5:8443/h", "webhook host '10.0.0.5' resolves to 10.0.0.5, which is private"),
        (
            "https://169.254.169.254/",
            "webhook host '169.254.169.254' resolves to 169.254.169.254, which is a cloud metadata address",
        ),
        ("https://[::1]/h", "webhook host '::1' resolves to ::1, which is a loopback address"),
        ("https://[fd12::1]/h", "webhook host 'fd12::1' resolves to fd12::1, which is private"),
        ("http://hooks.example.com/h", "webhook URL must use https"),
        ("http://127.0.0.1:9000/h", "webhook URL must use https"),
        ("https://user:pw@hooks.example.com/", "webhook URL must not carry credentials"),
        ("https://hooks.example.com/" + "a" * 2030, "webhook URL is 2056 characters; at most 2048 allowed"),
        (
            "https://nowhere.example/",
            "host 'nowhere.example' does not resolve: [Errno -2] Name or service not known",
        ),
    ],
)
def test_a_refused_webhook_is_400_invalid_webhook_with_the_reason(webhook: str, message: str) -> None:
    # Given
    events = FakeEvents()
    # When
    response = submit({"model": MODEL, "input": {}, "webhook": webhook}, submitter(events))
    # Then: nothing is published
    assert response["statusCode"] == 400
    assert error_of(response) == {
        "code": "INVALID_WEBHOOK",
        "message": message,
        "fields": [{"field": "webhook", "message": message}],
    }
    assert events.calls == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"webhookEvents": []},
            "webhookEvents",
            "webhookEvents must be a non-empty list of: QUEUED, PROCESSING, COMPLETED, FAILED",
        ),
        (
            {"webhookEvents": "COMPLETED"},
            "webhookEvents",
            "webhookEvents must be a non-empty list of: QUEUED, PROCESSING, COMPLETED, FAILED",
        ),
        (
            {"webhookEvents": ["COMPLETED", "DONE"]},
            "webhookEvents",
            'webhookEvents holds "DONE", not a status; known: QUEUED, PROCESSING, COMPLETED, FAILED',
        ),
        (
            {"webhookEvents": [7]},
            "webhookEvents",
            "webhookEvents holds 7, not a status; known: QUEUED, PROCESSING, COMPLETED, FAILED",
        ),
        (
            {"webhook": None, "webhookEvents": ["FAILED"]},
            "webhookEvents",
            "webhookEvents is given without a webhook",
        ),
        ({"webhook": 7}, "webhook", "webhook must be a string (an https URL)"),
        ({"webhook": ["https://hooks.example.com/"]}, "webhook", "webhook must be a string (an https URL)"),
    ],
)
def test_malformed_webhook_fields_are_400_invalid_webhook(
    change: dict[str, Any], field: str, message: str
) -> None:
    body = {"model": MODEL, "input": {}, "webhook": HOOK, **change}
    response = submit(body, submitter(FakeEvents()))
    assert response["statusCode"] == 400
    assert error_of(response) == {
        "code": "INVALID_WEBHOOK",
        "message": message,
        "fields": [{"field": field, "message": message}],
    }


def test_an_explicit_null_webhook_is_no_webhook() -> None:
    events = FakeEvents()
    response = submit({"model": MODEL, "input": {}, "webhook": None}, submitter(events))
    assert response["statusCode"] == 202
    assert events.details("JobStatusChanged")[0]["request"] == {"model": MODEL, "input": {}}


def test_a_resolver_that_cannot_answer_now_is_503_with_retry_after() -> None:
    events = FakeEvents()
    response = submit(
        {"model": MODEL, "input": {}, "webhook": HOOK}, submitter(events, FakeResolver(unavailable=True))
    )
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "2"
    assert error_of(response) == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "the webhook could not be checked now (host 'hooks.example.com' could not be resolved "
        "for now: [Errno -3] try again); try again",
    }
    assert events.calls == []


def test_a_webhook_is_checked_only_after_the_cheap_checks() -> None:
    resolver = FakeResolver()
    body = {"model": "fal-ai/other", "input": {}, "webhook": HOOK}
    response = submit(body, submitter(FakeEvents(), resolver))
    assert error_of(response)["code"] == "MODEL_NOT_ALLOWED"
    assert resolver.lookups == []


def test_local_mode_allows_plain_http_to_loopback() -> None:
    events = FakeEvents()
    made = submitter(events, webhooks_allow_local=True, stage="local")
    response = submit({"model": MODEL, "input": {}, "webhook": "http://127.0.0.1:9000/hook"}, made)
    assert response["statusCode"] == 202
    assert events.details("JobStatusChanged")[0]["request"]["webhook"] == "http://127.0.0.1:9000/hook"


def test_local_mode_still_refuses_private_addresses() -> None:
    made = submitter(FakeEvents(), webhooks_allow_local=True, stage="local")
    response = submit({"model": MODEL, "input": {}, "webhook": "http://10.0.0.1/hook"}, made)
    assert error_of(response)["message"] == "webhook host '10.0.0.1' resolves to 10.0.0.1, which is private"


def test_local_mode_is_refused_outside_local_stages() -> None:
    with pytest.raises(
        ValidationError, match=r"WEBHOOKS_ALLOW_LOCAL is only allowed in stages \['dev', 'local', 'test'\]"
    ):
        ProducerSettings(webhooks_allow_local=True, stage="prod")


@pytest.fixture
def keys() -> Iterator[JobKeys]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield JobKeys(client, TABLE, ttl_days=30)


def test_an_idempotency_key_binds_the_webhook_fields(keys: JobKeys) -> None:
    # Given: a job submitted with a key and a webhook
    made = make(FakeEvents(), keys=keys)
    made.deps.resolver = FakeResolver()
    key = {"Idempotency-Key": "order-7"}
    body = {"model": MODEL, "input": {"prompt": "a cat"}, "webhook": HOOK}
    first = submit(body, made, key)
    assert first["statusCode"] == 202
    # When: the same key comes with the same body, the events listed in another order, another
    # webhook, other events, or no webhook
    same = submit({**body, "webhookEvents": ["FAILED", "COMPLETED"]}, made, key)
    other_url = submit({**body, "webhook": "https://hooks.example.com/other"}, made, key)
    other_events = submit({**body, "webhookEvents": ["COMPLETED"]}, made, key)
    no_webhook = submit({"model": MODEL, "input": {"prompt": "a cat"}}, made, key)
    # Then: only the same request replays the job
    assert same["statusCode"] == 202 and json.loads(same["body"]) == json.loads(first["body"])
    for response in (other_url, other_events, no_webhook):
        assert response["statusCode"] == 400
        assert error_of(response)["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_webhook_of_exactly_2048_characters_is_accepted() -> None:
    webhook = "https://hooks.example.com/" + "a" * 2022
    assert len(webhook) == 2048
    events = FakeEvents()
    response = submit({"model": MODEL, "input": {}, "webhook": webhook}, submitter(events))
    assert response["statusCode"] == 202
    assert events.details("VideoGenerationRequested")[0]["webhook"] == webhook
