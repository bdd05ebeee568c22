"""The DynamoDB writer: unit tests on moto in-process and botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from jobstatus.codec import from_item
from jobstatus.events import Status
from projector.fold import coalesce, project
from projector.store import (
    FILL_IN_CONDITION,
    WINNER_CONDITION,
    InvalidForStore,
    JobStore,
    Outcome,
    WriteResult,
)
from tests.core.factories import NOW, TTL_DAYS, at, event

pytestmark = pytest.mark.unit

TABLE = "Jobs-unit"  # the `client` fixture's table (tests/core/conftest.py)


def write(store: JobStore, *events: Any) -> WriteResult:
    (batch,) = coalesce((f"m{i}", e) for i, e in enumerate(events))
    return store.write(batch)


def stored(client: Any, job_id: str = "job-1") -> dict[str, Any]:
    return from_item(client.get_item(TableName=TABLE, Key={"jobId": {"S": job_id}})["Item"])


def test_first_event_creates_the_item_the_fold_computes(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    e = event(Status.PROCESSING, at(2), progress=5, started_at=at(2), metrics={"queueWaitMs": 1.5})
    assert write(store, e) == WriteResult(Outcome.APPLIED, 1)
    assert stored(client) == project([e], ttl_days=TTL_DAYS, now=NOW)["job-1"]
    assert store.table_name == TABLE


def test_older_and_duplicate_events_are_stale_in_one_request(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    newer, older = event(Status.PROCESSING, at(2)), event(Status.QUEUED, at(1))
    write(store, newer)
    assert write(store, older) == WriteResult(Outcome.STALE, 1)
    assert write(store, newer) == WriteResult(Outcome.STALE, 1)
    assert stored(client) == project([older, newer], ttl_days=TTL_DAYS, now=NOW)["job-1"]


def test_a_winner_removes_the_winner_fields_it_lacks(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    failed = event(Status.FAILED, at(2), error={"code": "E", "message": "m", "retryable": True}, progress=50)
    completed = event(Status.COMPLETED, at(3), output_url="https://x.com/v.mp4")
    write(store, failed)
    assert write(store, completed).outcome is Outcome.APPLIED
    item = stored(client)
    assert "error" not in item and "progress" not in item
    assert item == project([failed, completed], ttl_days=TTL_DAYS, now=NOW)["job-1"]


def test_a_damaged_item_gets_its_fill_ins_back_with_a_second_write(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    newer, older = event(Status.PROCESSING, at(2)), event(Status.QUEUED, at(1))
    write(store, newer)
    client.update_item(
        TableName=TABLE,
        Key={"jobId": {"S": "job-1"}},
        UpdateExpression="REMOVE userId, #t",
        ExpressionAttributeNames={"#t": "ttl"},
    )
    assert write(store, older) == WriteResult(Outcome.FILLED, 2)
    assert stored(client) == project([older, newer], ttl_days=TTL_DAYS, now=NOW)["job-1"]
    assert write(store, older) == WriteResult(Outcome.STALE, 1)  # repaired: one request again


def test_an_item_without_a_version_is_overwritten(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    client.put_item(TableName=TABLE, Item={"jobId": {"S": "job-1"}, "status": {"S": "COMPLETED"}})
    e = event(Status.QUEUED, at(1))
    assert write(store, e).outcome is Outcome.APPLIED
    assert stored(client) == project([e], ttl_days=TTL_DAYS, now=NOW)["job-1"]


def test_a_number_dynamodb_cannot_hold_is_invalid_for_store(client: Any) -> None:
    # The model refuses such a number; an event built around it (model_copy skips validation)
    # stands for one that reached the writer anyway.
    store = JobStore(client, TABLE, TTL_DAYS)
    unstorable = event(Status.COMPLETED, at(1)).model_copy(update={"result": {"n": 10**40 + 1}})
    with pytest.raises(InvalidForStore, match="cannot be stored"):
        write(store, unstorable)


@pytest.mark.parametrize(
    "foreign",
    [{"user_id": "mallory"}, {"created_at": "2026-11-21T07:00:00.000Z"}],
    ids=["userId", "createdAt"],
)
def test_an_event_of_another_owner_changes_nothing_even_when_newer(client: Any, foreign: Any) -> None:
    # Given alice's job, projected
    store = JobStore(client, TABLE, TTL_DAYS)
    alice = event(Status.PROCESSING, at(2), progress=5)
    write(store, alice)
    before = stored(client)
    # When an event with a higher version claims another owner
    evil = event(Status.COMPLETED, at(9), output_url="https://evil.example.com/v.mp4").model_copy(
        update=foreign
    )
    result = write(store, evil)
    # Then it is a conflict naming the stored owner, and the item is untouched
    assert result == WriteResult(Outcome.CONFLICT, 1, "user-of-job-1", "2026-11-22T07:00:00.000Z")
    assert stored(client) == before


def test_a_fill_in_write_never_repairs_an_item_of_another_owner(client: Any) -> None:
    # A damaged item (no ttl) of alice: a stale event of mallory must not fill it in.
    store = JobStore(client, TABLE, TTL_DAYS)
    write(store, event(Status.PROCESSING, at(2)))
    client.update_item(
        TableName=TABLE,
        Key={"jobId": {"S": "job-1"}},
        UpdateExpression="REMOVE #t",
        ExpressionAttributeNames={"#t": "ttl"},
    )
    before = stored(client)
    stale = event(Status.QUEUED, at(1), request={"model": "m", "input": {"p": 1}}).model_copy(
        update={"user_id": "mallory"}
    )
    assert write(store, stale).outcome is Outcome.CONFLICT
    assert stored(client) == before


def test_request_is_filled_in_by_a_stale_event_and_never_changed(client: Any) -> None:
    store = JobStore(client, TABLE, TTL_DAYS)
    write(store, event(Status.PROCESSING, at(2)))
    first = event(Status.QUEUED, at(1), request={"model": "fal-ai/a", "input": {"prompt": "cat"}})
    assert write(store, first) == WriteResult(Outcome.FILLED, 2)
    later = event(Status.COMPLETED, at(3), request={"model": "fal-ai/b", "input": {"prompt": "dog"}})
    assert write(store, later).outcome is Outcome.APPLIED
    assert stored(client)["request"] == {"model": "fal-ai/a", "input": {"prompt": "cat"}}
    assert stored(client)["status"] == "COMPLETED"


# --- rare error codes, with botocore's Stubber -------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[JobStore, Stubber]]:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(ddb) as stubber:
        yield JobStore(ddb, TABLE, TTL_DAYS), stubber
        stubber.assert_no_pending_responses()  # and nothing else (no GetItem) was called


def expect_update(stubber: Stubber) -> None:
    stubber.add_response(
        "update_item",
        {},
        {
            "TableName": TABLE,
            "Key": {"jobId": {"S": "job-1"}},
            "UpdateExpression": ANY,
            "ConditionExpression": WINNER_CONDITION,
            "ExpressionAttributeNames": ANY,
            "ExpressionAttributeValues": ANY,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )


def test_one_conditional_update_and_nothing_else(stubbed: tuple[JobStore, Stubber]) -> None:
    store, stubber = stubbed
    expect_update(stubber)
    assert write(store, event(), event(Status.PROCESSING, at(3))) == WriteResult(Outcome.APPLIED, 1)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
        ("ResourceNotFoundException", 400),
    ],
)
def test_throttling_and_service_errors_raise(
    stubbed: tuple[JobStore, Stubber], code: str, status: int
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=status)
    with pytest.raises(ClientError) as raised:
        write(store, event())
    assert raised.value.response["Error"]["Code"] == code


@pytest.mark.parametrize("code", ["ValidationException", "SerializationException"])
def test_a_refused_request_is_invalid_for_store(stubbed: tuple[JobStore, Stubber], code: str) -> None:
    store, stubber = stubbed
    stubber.add_client_error("update_item", service_error_code=code, service_message="Item size too large")
    with pytest.raises(InvalidForStore, match="Item size too large"):
        write(store, event())


def condition_failed(stubber: Stubber, item: dict[str, Any] | None) -> None:
    extra = {} if item is None else {"Item": item}
    stubber.add_client_error(
        "update_item",
        service_error_code="ConditionalCheckFailedException",
        http_status_code=400,
        modeled_fields=extra,
    )


FULL_ITEM = {  # of the same owner as `event()`'s: user-of-job-1, created at CREATED_AT
    "jobId": {"S": "job-1"},
    "userId": {"S": "user-of-job-1"},
    "createdAt": {"S": "2026-11-22T07:00:00.000Z"},
    "ttl": {"N": "1"},
    "version": {"S": "9"},
}


def test_condition_failed_on_a_whole_item_is_stale_without_a_second_write(
    stubbed: tuple[JobStore, Stubber],
) -> None:
    store, stubber = stubbed
    condition_failed(stubber, FULL_ITEM)
    assert write(store, event()) == WriteResult(Outcome.STALE, 1)


FILL_IN_TTL = {
    "TableName": TABLE,
    "Key": {"jobId": {"S": "job-1"}},
    "UpdateExpression": "SET #ttl = if_not_exists(#ttl, :ttl)",
    "ConditionExpression": FILL_IN_CONDITION,
    "ExpressionAttributeNames": {
        "#jobId": "jobId",
        "#userId": "userId",
        "#createdAt": "createdAt",
        "#ttl": "ttl",
    },
    "ExpressionAttributeValues": {
        ":userId": {"S": "user-of-job-1"},
        ":createdAt": {"S": "2026-11-22T07:00:00.000Z"},
        ":ttl": ANY,
    },
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
}


def test_a_missing_fill_in_is_written_by_a_second_write_conditioned_on_the_owner(
    stubbed: tuple[JobStore, Stubber],
) -> None:
    store, stubber = stubbed
    condition_failed(stubber, {k: v for k, v in FULL_ITEM.items() if k != "ttl"})
    stubber.add_response("update_item", {}, FILL_IN_TTL)
    assert write(store, event()) == WriteResult(Outcome.FILLED, 2)


def test_an_item_gone_before_the_second_write_is_stale_after_a_read(
    stubbed: tuple[JobStore, Stubber],
) -> None:
    store, stubber = stubbed
    condition_failed(stubber, {k: v for k, v in FULL_ITEM.items() if k != "ttl"})
    stubber.add_client_error(
        "update_item", service_error_code="ConditionalCheckFailedException", expected_params=FILL_IN_TTL
    )
    stubber.add_response("get_item", {})  # no Item: it vanished (TTL or a wipe)
    assert write(store, event()) == WriteResult(Outcome.STALE, 3)


def test_another_owner_in_the_returned_item_is_a_conflict_in_one_request(
    stubbed: tuple[JobStore, Stubber],
) -> None:
    store, stubber = stubbed
    condition_failed(stubber, {**FULL_ITEM, "userId": {"S": "alice"}})
    assert write(store, event()) == WriteResult(Outcome.CONFLICT, 1, "alice", "2026-11-22T07:00:00.000Z")


def test_another_created_at_in_the_returned_item_is_a_conflict(stubbed: tuple[JobStore, Stubber]) -> None:
    store, stubber = stubbed
    condition_failed(stubber, {**FULL_ITEM, "createdAt": {"S": "2026-11-21T07:00:00.000Z"}})
    assert write(store, event()) == WriteResult(
        Outcome.CONFLICT, 1, "user-of-job-1", "2026-11-21T07:00:00.000Z"
    )


def test_without_a_returned_item_a_conflict_is_told_by_a_read(stubbed: tuple[JobStore, Stubber]) -> None:
    # dynalite ignores ReturnValuesOnConditionCheckFailure: the fill-in write fails on the
    # owner condition too, and a read says whose the item is.
    store, stubber = stubbed
    condition_failed(stubber, None)
    stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
    stubber.add_response(
        "get_item",
        {"Item": {"userId": {"S": "alice"}, "createdAt": {"S": "2026-11-22T07:00:00.000Z"}}},
        {
            "TableName": TABLE,
            "Key": {"jobId": {"S": "job-1"}},
            "ProjectionExpression": "#userId, #createdAt",
            "ExpressionAttributeNames": {"#userId": "userId", "#createdAt": "createdAt"},
            "ConsistentRead": True,
        },
    )
    assert write(store, event()) == WriteResult(Outcome.CONFLICT, 3, "alice", "2026-11-22T07:00:00.000Z")


@pytest.mark.parametrize(
    ("code", "raised"), [("ValidationException", InvalidForStore), ("ThrottlingException", ClientError)]
)
def test_second_write_errors(stubbed: tuple[JobStore, Stubber], code: str, raised: type[Exception]) -> None:
    store, stubber = stubbed
    condition_failed(stubber, {"jobId": {"S": "job-1"}, "version": {"S": "9"}})
    stubber.add_client_error("update_item", service_error_code=code)
    with pytest.raises(raised):
        write(store, event())


def test_condition_failed_without_the_old_item_fills_in_everything(stubbed: tuple[JobStore, Stubber]) -> None:
    # A service that does not return the old item: the fill-in write is the safe choice.
    store, stubber = stubbed
    condition_failed(stubber, None)
    stubber.add_response("update_item", {})
    assert write(store, event()) == WriteResult(Outcome.FILLED, 2)


def test_every_attribute_name_is_aliased(stubbed: tuple[JobStore, Stubber]) -> None:
    # status, result, error, ttl ... are DynamoDB reserved words: none may appear bare.
    store, stubber = stubbed
    calls: list[dict[str, Any]] = []
    store._client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda params, **_: calls.append(params)
    )
    expect_update(stubber)
    write(
        store,
        event(Status.FAILED, at(1), error={"code": "E", "message": "m", "retryable": True}, result={"a": 1}),
    )
    (params,) = calls
    expression = params["UpdateExpression"] + " " + params["ConditionExpression"]
    for name in params["ExpressionAttributeNames"].values():
        assert f" {name} " not in f" {expression} ".replace(",", " ")
    assert "#status = :status" in expression and "REMOVE" in expression
