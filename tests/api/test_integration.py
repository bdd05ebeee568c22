"""GetJobFn on DynamoDB Local, reading what the projector's `JobStore` wrote: pages, filters, cursors."""

from __future__ import annotations

import base64
import json

import pytest

from api.store import MAX_QUERIES_PER_PAGE
from tests.api.support import ALICE, BOB, at, body, claims, header, job_event

pytestmark = pytest.mark.integration


def list_all(api, query=None, caller=None):
    """Every page of a listing: the job ids page by page."""
    pages, cursor = [], None
    while True:
        params = {**(query or {}), **({"cursor": cursor} if cursor else {})}
        response = api.call(path="/v1/jobs", query=params, claims_=caller)
        assert response["statusCode"] == 200, response["body"]
        payload = body(response)
        pages.append([job["jobId"] for job in payload["items"]])
        cursor = payload["nextCursor"]
        if cursor is None:
            return pages


def test_get_reads_what_the_projector_wrote(local_api):
    local_api.write(
        job_event("job-1", status="PROCESSING", occurred=at(2), started_at=at(1), progress=50),
        job_event("job-1", status="QUEUED"),
    )
    response = local_api.call()
    assert response["statusCode"] == 200
    assert body(response) == {
        "jobId": "job-1",
        "status": "PROCESSING",
        "createdAt": at(0),
        "updatedAt": at(2),
        "outputUrl": None,
        "progress": 50,
        "startedAt": at(1),
        "attempt": 1,
    }
    assert local_api.call(headers={"If-None-Match": header(response, "ETag")})["statusCode"] == 304


def test_pagination_newest_first_across_pages(local_api):
    local_api.write(*(job_event(f"a{n:02d}", ALICE, created=at(n)) for n in range(7)))
    local_api.write(*(job_event(f"b{n:02d}", BOB, created=at(n)) for n in range(3)))
    pages = list_all(local_api, {"limit": "3"})
    assert pages == [["a06", "a05", "a04"], ["a03", "a02", "a01"], ["a00"]]
    assert list_all(local_api, {"limit": "7"}) in (
        [[f"a{n:02d}" for n in range(6, -1, -1)]],
        [[f"a{n:02d}" for n in range(6, -1, -1)], []],
    )
    assert list_all(local_api) == [[f"a{n:02d}" for n in range(6, -1, -1)]]  # default limit 20


def test_status_filter_fills_pages_across_queries(local_api):
    # Every third job is COMPLETED: each Query of `limit` items holds fewer matches than asked.
    events = []
    for n in range(12):
        events.append(job_event(f"j{n:02d}", created=at(n)))
        if n % 3 == 0:
            events.append(
                job_event(
                    f"j{n:02d}",
                    status="COMPLETED",
                    created=at(n),
                    occurred=at(n + 1),
                    output_url="https://cdn.example/v.mp4",
                )
            )
    local_api.write(*events)
    pages = list_all(local_api, {"status": "COMPLETED", "limit": "2"})
    assert [job for page in pages for job in page] == ["j09", "j06", "j03", "j00"]
    assert all(len(page) == 2 for page in pages[:2])
    queued = [job for page in list_all(local_api, {"status": "QUEUED", "limit": "5"}) for job in page]
    assert queued == [f"j{n:02d}" for n in range(11, -1, -1) if n % 3]


def test_a_sparse_filter_returns_a_short_page_with_a_cursor_rather_than_scanning(local_api):
    local_api.write(
        job_event(
            "done",
            status="FAILED",
            created=at(0),
            occurred=at(1),
            error={"code": "X", "message": "m", "retryable": False},
        )
    )
    local_api.write(*(job_event(f"q{n:02d}", created=at(n + 1)) for n in range(MAX_QUERIES_PER_PAGE + 2)))
    first = body(local_api.call(path="/v1/jobs", query={"status": "FAILED", "limit": "1"}))
    assert first["items"] == [] and first["nextCursor"] is not None
    pages = list_all(local_api, {"status": "FAILED", "limit": "1"})
    assert [job for page in pages for job in page] == ["done"]


def test_expired_jobs_are_left_out_of_lists(local_api):
    local_api.write(
        job_event("live", created=at(0)),
        job_event("old1", created="2026-10-20T07:00:00.000Z"),
        job_event("old2", created="2026-10-21T07:00:00.000Z"),
    )
    assert list_all(local_api, {"limit": "1"})[0] == ["live"]
    assert [job for page in list_all(local_api, {"limit": "1"}) for job in page] == ["live"]


def test_admin_reads_another_users_job_and_expired_is_404(local_api):
    local_api.write(job_event("bobs", BOB), job_event("old", BOB, created="2026-10-20T07:00:00.000Z"))
    root = claims("root-sub", ["admin"])
    assert local_api.call(path="/v1/jobs/bobs", claims_=root)["statusCode"] == 200
    assert local_api.call(path="/v1/jobs/bobs")["statusCode"] == 404
    assert local_api.call(path="/v1/jobs/old", claims_=root)["statusCode"] == 404


def test_cursor_forgery_is_400(local_api):
    local_api.write(*(job_event(f"a{n}", ALICE, created=at(n)) for n in range(3)))
    local_api.write(*(job_event(f"b{n}", BOB, created=at(n)) for n in range(3)))
    alices = body(local_api.call(path="/v1/jobs", query={"limit": "1"}))["nextCursor"]
    bobs = claims(BOB)

    # Alice's cursor in Bob's hands (and Bob's edited into Alice's partition) is refused.
    other_user = local_api.call(path="/v1/jobs", query={"limit": "1", "cursor": alices}, claims_=bobs)
    payload, signature = alices.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["u"], data["k"]["userId"] = BOB, {"S": BOB}
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=") + "." + signature
    tampered = local_api.call(path="/v1/jobs", query={"cursor": forged}, claims_=bobs)
    other_filter = local_api.call(path="/v1/jobs", query={"cursor": alices, "status": "QUEUED"})
    garbage = local_api.call(path="/v1/jobs", query={"cursor": "bm90IGEgY3Vyc29y"})
    for response in (other_user, tampered, other_filter, garbage):
        assert response["statusCode"] == 400
        assert body(response)["error"]["code"] == "INVALID_CURSOR"
    # The cursor still works for its owner and filter.
    assert (
        body(local_api.call(path="/v1/jobs", query={"limit": "1", "cursor": alices}))["items"][0]["jobId"]
        == "a1"
    )


@pytest.mark.parametrize(
    ("limit", "status"), [("1", 200), ("100", 200), ("0", 400), ("101", 400), ("2.0", 400)]
)
def test_limit_bounds(local_api, limit, status):
    local_api.write(job_event("a"))
    assert local_api.call(path="/v1/jobs", query={"limit": limit})["statusCode"] == status
