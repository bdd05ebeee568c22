"""SubmitJobFn's Idempotency-Key: one job per (user, key), one createdAt per job, whatever fails.

The idempotency table is moto in-process (unit) and, once, DynamoDB Local (integration).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from jobstatus.events import format_timestamp, parse_timestamp
from producers.submit.handler import handle
from producers.submit.keys import JobKeys, KeyReused, Reservation, payload_hash, reservation_id
from producers.submit.submitter import NotQueued, refusal_for
from tests.producers.fakes import FakeEvents, FakeOutbox, lambda_context
from tests.producers.test_submit import GOOD, MODEL, header, make, post

TABLE = "idempotency"
KEY = {"Idempotency-Key": "order-42"}
OTHER = {"model": MODEL, "input": {"prompt": "a turtle"}}


def create_table(client: Any, name: str = TABLE) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def keys() -> Iterator[JobKeys]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield JobKeys(client, TABLE, ttl_days=30)


def ticking(start: datetime | None = None) -> Callable[[], str]:
    """A clock that moves one second per reading: two requests never share a createdAt by luck."""
    origin = start or datetime.now(UTC).replace(microsecond=0)
    counter = itertools.count()
    return lambda: format_timestamp(origin + timedelta(seconds=next(counter)))


def fail_requests_while(flag: dict[str, bool]) -> Callable[[int, list[dict[str, Any]]], list[str | None]]:
    """PutEvents delivers every QUEUED, and refuses every request while `flag["down"]`."""

    def script(_: int, entries: list[dict[str, Any]]) -> list[str | None]:
        return [
            "InternalFailure" if flag["down"] and e["DetailType"] == "VideoGenerationRequested" else None
            for e in entries
        ]

    return script


def created_ats(events: FakeEvents) -> set[str]:
    return {
        d["createdAt"] for t in ("JobStatusChanged", "VideoGenerationRequested") for d in events.details(t)
    }


pytestmark = pytest.mark.unit


def test_a_repeated_key_replays_the_stored_202_and_publishes_nothing_again(keys: JobKeys) -> None:
    # Given: a clock that differs on every reading
    events = FakeEvents()
    handler = make(events, keys=keys, now=ticking())
    # When: the same request is sent twice, the second with its keys in another order
    first = handle(post(GOOD, headers=KEY), lambda_context(), handler)
    reordered = json.dumps({"input": {"prompt": "a rabbit"}, "model": MODEL})
    second = handle(post(reordered, headers=KEY), lambda_context(), handler)
    # Then: the same answer, and exactly one QUEUED and one request on the bus
    assert first["statusCode"] == second["statusCode"] == 202
    assert first["body"] == second["body"]  # byte for byte
    assert header(first, "Location") == header(second, "Location")
    assert len(events.details("JobStatusChanged")) == 1
    assert len(events.details("VideoGenerationRequested")) == 1
    assert created_ats(events) == {json.loads(first["body"])["createdAt"]}


def test_the_same_key_with_another_body_is_a_400_and_publishes_nothing(keys: JobKeys) -> None:
    events = FakeEvents()
    handler = make(events, keys=keys)
    assert handle(post(GOOD, headers=KEY), lambda_context(), handler)["statusCode"] == 202
    response = handle(post(OTHER, headers=KEY), lambda_context(), handler)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(events.calls) == 1


def test_the_same_key_from_two_users_names_two_jobs(keys: JobKeys) -> None:
    events = FakeEvents()
    handler = make(events, keys=keys)
    one = json.loads(handle(post(GOOD, sub="user-1", headers=KEY), lambda_context(), handler)["body"])
    two = json.loads(handle(post(GOOD, sub="user-2", headers=KEY), lambda_context(), handler)["body"])
    assert one["jobId"] != two["jobId"]
    assert {d["userId"] for d in events.details("VideoGenerationRequested")} == {"user-1", "user-2"}


def test_a_retry_after_a_503_completes_the_same_job_with_the_same_created_at(keys: JobKeys) -> None:
    # Given: the bus takes QUEUED but refuses the request, so the first answer is a 503
    flag = {"down": True}
    events = FakeEvents(fail_requests_while(flag))
    handler = make(events, keys=keys, now=ticking())
    failed = handle(post(GOOD, headers=KEY), lambda_context(), handler)
    assert failed["statusCode"] == 503 and header(failed, "Retry-After") == "2"
    assert len(events.details("JobStatusChanged")) == 1  # the first QUEUED is in the archive
    # When: the bus is back and the client retries with the same key (the clock has moved on)
    flag["down"] = False
    retried = handle(post(GOOD, headers=KEY), lambda_context(), handler)
    again = handle(post(GOOD, headers=KEY), lambda_context(), handler)
    # Then: one job, one createdAt on every event it ever published, and the answer is stored
    body = json.loads(retried["body"])
    assert retried["statusCode"] == 202 and json.loads(again["body"]) == body
    queued = events.details("JobStatusChanged")
    assert len(queued) == 2 and {q["jobId"] for q in queued} == {body["jobId"]}
    assert created_ats(events) == {body["createdAt"]}
    assert len(events.details("VideoGenerationRequested")) == 1


def test_a_retry_after_a_503_with_another_body_is_refused(keys: JobKeys) -> None:
    flag = {"down": True}
    events = FakeEvents(fail_requests_while(flag))
    handler = make(events, keys=keys)
    assert handle(post(GOOD, headers=KEY), lambda_context(), handler)["statusCode"] == 503
    flag["down"] = False
    response = handle(post(OTHER, headers=KEY), lambda_context(), handler)
    assert json.loads(response["body"])["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert events.details("VideoGenerationRequested") == []


def test_a_duplicate_while_the_first_is_still_running_is_a_409(keys: JobKeys) -> None:
    # Given: a second caller sends the same request while the first one is publishing
    seen: dict[str, Any] = {}
    other = make(FakeEvents(), keys=keys)

    def script(call: int, entries: list[dict[str, Any]]) -> list[str | None]:
        if call == 1:
            seen["duplicate"] = handle(post(GOOD, headers=KEY), lambda_context(), other)
        return [None] * len(entries)

    events = FakeEvents(script)
    first = handle(post(GOOD, headers=KEY), lambda_context(), make(events, keys=keys))
    # Then: the duplicate is told to come back, and the first completes
    duplicate = seen["duplicate"]
    assert duplicate["statusCode"] == 409 and header(duplicate, "Retry-After") == "1"
    assert json.loads(duplicate["body"])["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert first["statusCode"] == 202 and len(events.details("VideoGenerationRequested")) == 1


def test_an_unreachable_store_is_a_503_and_nothing_is_published() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")  # no table: every call fails
        events = FakeEvents()
        missing = JobKeys(client, "missing", ttl_days=30)
        response = handle(post(GOOD, headers=KEY), lambda_context(), make(events, keys=missing))
        with pytest.raises(ClientError):  # the reservation lets the store's error through too
            missing.reserve("user-1", "k", Reservation("job-1", "2026-01-01T00:00:00.000Z", "h"))
    assert response["statusCode"] == 503 and header(response, "Retry-After") == "2"
    assert events.calls == []


def test_a_400_does_not_bind_the_key(keys: JobKeys) -> None:
    events = FakeEvents()
    handler = make(events, keys=keys)
    too_big = {"model": MODEL, "input": {"p": "x" * 300_000}}
    assert handle(post(too_big, headers=KEY), lambda_context(), handler)["statusCode"] == 400
    assert handle(post(GOOD, headers=KEY), lambda_context(), handler)["statusCode"] == 202


def test_both_records_expire_with_the_job(keys: JobKeys) -> None:
    handler = make(FakeEvents(), keys=keys)
    before = time.time()
    body = json.loads(handle(post(GOOD, headers=KEY), lambda_context(), handler)["body"])
    items = keys.client.scan(TableName=TABLE)["Items"]
    expirations = {item["id"]["S"].split("#")[0]: int(item["expiration"]["N"]) for item in items}
    assert set(expirations) == {"submit.request", "submit.job"}
    created = parse_timestamp(body["createdAt"]).timestamp()
    assert expirations["submit.job"] == int(created) + 30 * 86400
    assert before + 30 * 86400 - 5 <= expirations["submit.request"] <= time.time() + 30 * 86400 + 5
    assert "order-42" not in json.dumps(items)  # the key itself is never stored in clear


def test_reserve_keeps_the_first_job_and_forgets_it_once_expired(keys: JobKeys) -> None:
    first = Reservation("job-1", "2026-01-01T00:00:00.000Z", payload_hash(GOOD))
    later = Reservation("job-2", "2026-01-01T00:00:05.000Z", payload_hash(GOOD))
    keys.wall_clock = lambda: parse_timestamp(first.created_at).timestamp()
    assert keys.reserve("user-1", "k", first) == first
    assert keys.reserve("user-1", "k", later) == first
    with pytest.raises(KeyReused):
        keys.reserve("user-1", "k", Reservation("job-3", later.created_at, payload_hash(OTHER)))
    # 30 days on, the item may linger (TTL deletion lags) but names no job any more
    keys.wall_clock = lambda: parse_timestamp(first.created_at).timestamp() + 30 * 86400 + 1
    assert keys.reserve("user-1", "k", later) == later


def test_reserve_reads_the_stored_job_when_the_store_does_not_return_it(keys: JobKeys) -> None:
    # Some stores leave out the old item on a failed condition: the reservation is then read back.
    stored = Reservation("job-1", "2026-01-01T00:00:00.000Z", payload_hash(GOOD))
    keys.wall_clock = lambda: parse_timestamp(stored.created_at).timestamp()
    keys.reserve("user-1", "k", stored)
    real_put = keys.client.put_item

    def put_without_old_item(**kwargs: Any) -> Any:
        try:
            return real_put(**kwargs)
        except ClientError as error:
            response: Any = error.response
            response.pop("Item", None)
            raise

    keys.client.put_item = put_without_old_item  # type: ignore[method-assign]
    assert keys.reserve("user-1", "k", Reservation("job-2", stored.created_at, stored.payload_hash)) == stored


def test_reservation_ids_separate_users_and_keys() -> None:
    assert reservation_id("u1", "k") != reservation_id("u2", "k") != reservation_id("u1", "k2")
    assert reservation_id("u\x00k", "") != reservation_id("u", "k\x00")  # no ambiguity from the separator


def test_refusals_map_expected_failures_and_leave_bugs_to_the_500() -> None:
    store_down = ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "PutItem")
    assert refusal_for(store_down) is not None and refusal_for(store_down).status == 503  # type: ignore[union-attr]
    assert refusal_for(NotQueued("x")).status == 503  # type: ignore[union-attr]
    assert refusal_for(KeyError("bug")) is None


@pytest.mark.integration
def test_the_key_on_dynamodb_local(ddb: Any, template: Any) -> None:
    # Given: the template's IdempotencyTable on AWS's own engine
    name = "idem-" + str(time.time_ns())
    ddb.create_table(**{**template.table_definition("IdempotencyTable"), "TableName": name})
    assert template.ttl_attribute("IdempotencyTable") == "expiration"  # what both records expire by
    try:
        flag = {"down": True}
        events = FakeEvents(fail_requests_while(flag))
        handler = make(events, FakeOutbox(), keys=JobKeys(ddb, name, ttl_days=30), now=ticking())
        # When: a 503, a retry, a repeat and a reuse with another body
        assert handle(post(GOOD, headers=KEY), lambda_context(), handler)["statusCode"] == 503
        flag["down"] = False
        answers = [handle(post(GOOD, headers=KEY), lambda_context(), handler) for _ in range(2)]
        reused = handle(post(OTHER, headers=KEY), lambda_context(), handler)
    finally:
        ddb.delete_table(TableName=name)
    # Then
    body = json.loads(answers[0]["body"])
    assert [a["statusCode"] for a in answers] == [202, 202] and json.loads(answers[1]["body"]) == body
    assert created_ats(events) == {body["createdAt"]}
    assert len(events.details("VideoGenerationRequested")) == 1
    assert reused["statusCode"] == 400
