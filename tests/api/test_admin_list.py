"""`GET /v1/jobs?userId=` (DESIGN §4): admins list any user's jobs; others get 403 FORBIDDEN."""

from __future__ import annotations

from typing import Any

import pytest

from api.core import ApiError, CursorCodec, ListQuery, listed_user
from jobstatus.http import Caller
from tests.api.conftest import Api
from tests.api.support import ALICE, BOB, KEY, ROOT, at, body, claims, job_event

pytestmark = pytest.mark.unit

ADMIN = claims(ROOT, ["admin"])
POSITION = {"jobId": {"S": "b2"}, "userId": {"S": BOB}, "createdAt": {"S": "2026-11-22T07:02:00.000Z"}}


def error(response: dict[str, Any]) -> tuple[int, str, str]:
    payload = body(response)["error"]
    return response["statusCode"], payload["code"], payload["message"]


def write_bobs_jobs(api: Api) -> None:
    api.write(
        job_event("b1", BOB, created=at(1)),
        job_event("b2", BOB, "COMPLETED", created=at(2), output_url="https://cdn.example/b2.mp4"),
        job_event("b3", BOB, created=at(3)),
        job_event("a1", ALICE, created=at(4)),
    )


def test_an_admin_lists_another_users_jobs_newest_first(api: Api) -> None:
    write_bobs_jobs(api)
    response = api.call(path="/v1/jobs", claims_=ADMIN, query={"userId": BOB})
    assert response["statusCode"] == 200
    payload = body(response)
    assert [job["jobId"] for job in payload["items"]] == ["b3", "b2", "b1"]
    assert payload["nextCursor"] is None


def test_an_admin_filters_another_users_jobs_by_status(api: Api) -> None:
    write_bobs_jobs(api)
    response = api.call(path="/v1/jobs", claims_=ADMIN, query={"userId": BOB, "status": "COMPLETED"})
    [job] = body(response)["items"]
    assert (job["jobId"], job["status"], job["outputUrl"]) == (
        "b2",
        "COMPLETED",
        "https://cdn.example/b2.mp4",
    )


def test_an_admin_pages_through_another_users_jobs(api: Api) -> None:
    # Given
    write_bobs_jobs(api)
    query = {"userId": BOB, "limit": "2"}
    # When
    first = body(api.call(path="/v1/jobs", claims_=ADMIN, query=query))
    second = body(api.call(path="/v1/jobs", claims_=ADMIN, query={**query, "cursor": first["nextCursor"]}))
    # Then
    assert [job["jobId"] for job in first["items"]] == ["b3", "b2"]
    assert [job["jobId"] for job in second["items"]] == ["b1"]
    assert second["nextCursor"] is None


def test_a_cursor_of_one_users_listing_is_refused_in_another(api: Api) -> None:
    # Given: a cursor an admin got listing Bob's jobs
    write_bobs_jobs(api)
    api.write(job_event("a0", ALICE, created=at(0)))
    cursor = body(api.call(path="/v1/jobs", claims_=ADMIN, query={"userId": BOB, "limit": "1"}))["nextCursor"]
    assert cursor
    # When: it is replayed for Alice's listing (by the admin, or by Alice herself)
    for_alice = api.call(path="/v1/jobs", claims_=ADMIN, query={"userId": ALICE, "cursor": cursor})
    by_alice = api.call(path="/v1/jobs", claims_=claims(ALICE), query={"cursor": cursor})
    # Then
    assert error(for_alice) == (400, "INVALID_CURSOR", "cursor is invalid for this listing")
    assert error(by_alice) == (400, "INVALID_CURSOR", "cursor is invalid for this listing")


def test_anyone_else_naming_another_user_is_403_forbidden(api: Api) -> None:
    write_bobs_jobs(api)
    response = api.call(path="/v1/jobs", claims_=claims(ALICE), query={"userId": BOB})
    assert error(response) == (403, "FORBIDDEN", "only members of 'admin' may list another user's jobs")


def test_naming_oneself_is_the_own_listing(api: Api) -> None:
    write_bobs_jobs(api)
    response = api.call(path="/v1/jobs", claims_=claims(ALICE), query={"userId": ALICE})
    assert [job["jobId"] for job in body(response)["items"]] == ["a1"]


@pytest.mark.parametrize("user_id", ["", "u" * 257])
def test_a_user_id_outside_the_contract_is_400(api: Api, user_id: str) -> None:
    response = api.call(path="/v1/jobs", claims_=ADMIN, query={"userId": user_id})
    assert error(response) == (400, "INVALID_USER_ID", "userId must be 1 to 256 characters")


def test_listed_user_rules() -> None:
    admin, alice = Caller(ROOT, is_admin=True), Caller(ALICE)
    assert listed_user(ListQuery(), alice) == ALICE
    assert listed_user(ListQuery(user_id=BOB), admin) == BOB
    assert listed_user(ListQuery(user_id=ALICE), alice) == ALICE


def test_a_cursor_is_bound_to_the_listed_user_not_to_the_reader() -> None:
    codec = CursorCodec(KEY)
    admin = Caller(ROOT, is_admin=True)
    cursor = codec.encode(POSITION, admin, None, BOB)
    assert codec.decode(cursor, admin, None, BOB) == POSITION
    with pytest.raises(ApiError, match="cursor is invalid for this listing"):
        codec.decode(cursor, admin, None)  # the admin's own listing
    with pytest.raises(ApiError, match="cursor is invalid for this listing"):
        codec.decode(cursor, admin, "QUEUED", BOB)  # another filter
