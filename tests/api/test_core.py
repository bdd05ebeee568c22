"""The pure rules of the read API: claims, ETags, If-None-Match, query parameters, cursors, CORS."""

from __future__ import annotations

import base64
import json

import pytest

from api.core import (
    DEFAULT_LIMIT,
    ApiError,
    CursorCodec,
    caller_from_claims,
    cors_headers,
    etag_of,
    job_view,
    may_read,
    none_match,
    parse_job_id,
    parse_list_query,
)
from jobstatus.http import Caller, groups_of

pytestmark = pytest.mark.unit

POSITION = {"jobId": {"S": "job-9"}, "userId": {"S": "alice"}, "createdAt": {"S": "2026-11-22T07:00:00.000Z"}}
ALICE = Caller("alice")


@pytest.mark.parametrize(
    ("claim", "groups"),
    [
        (["admin", "other"], {"admin", "other"}),
        ("[admin other]", {"admin", "other"}),
        ("admin,other", {"admin", "other"}),
        ("admin, other", {"admin", "other"}),
        ("admin", {"admin"}),
        ("[]", set()),
        ("", set()),
        (None, set()),
        (42, set()),
    ],
)
def test_groups_claim_in_every_shape(claim, groups):
    assert groups_of(claim) == groups


def test_caller_from_claims():
    assert caller_from_claims({"sub": "u1"}) == Caller("u1", is_admin=False)
    assert caller_from_claims({"sub": "u1", "cognito:groups": "[users admin]"}) == Caller("u1", True)
    # "administrators" is not "admin": groups are compared whole.
    assert not caller_from_claims({"sub": "u1", "cognito:groups": "administrators"}).is_admin


@pytest.mark.parametrize("claims", [None, {}, {"sub": ""}, {"sub": "  "}, {"sub": 5}, "sub=u1", []])
def test_no_usable_claims_is_401(claims):
    with pytest.raises(ApiError) as refused:
        caller_from_claims(claims)
    assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize("job_id", ["a", "A-b_9", "x" * 128])
def test_valid_job_ids(job_id):
    assert parse_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "-a", "_a", "a b", "a.b", "x" * 129, "é", "a/b"])
def test_malformed_job_id_is_400(job_id):
    with pytest.raises(ApiError) as refused:
        parse_job_id(job_id)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_JOB_ID")


def test_may_read_owner_admin_expiry():
    item = {"jobId": "j", "userId": "alice", "status": "QUEUED", "ttl": 1000}
    assert may_read(item, ALICE, now=999)
    assert not may_read(item, ALICE, now=1000)  # ttl reached: expired, even if not yet deleted
    assert not may_read(item, Caller("bob"), now=999)
    assert may_read(item, Caller("bob", is_admin=True), now=999)
    assert not may_read(item, Caller("bob", is_admin=True), now=1000)
    assert not may_read(None, ALICE, now=0)
    assert not may_read({"jobId": "j", "status": "QUEUED"}, Caller("x", True), now=0)  # no owner
    assert not may_read({"jobId": "j", "userId": "alice"}, ALICE, now=0)  # no status
    assert may_read({"jobId": "j", "userId": "alice", "status": "QUEUED"}, ALICE, now=0)  # no ttl


def test_job_view_always_fields_null_and_optional_fields_present_only():
    item = {
        "jobId": "j",
        "userId": "alice",
        "status": "QUEUED",
        "createdAt": "c",
        "updatedAt": "u",
        "version": "v",
        "ttl": 1,
        "lastEventId": "e",
        "attempt": 1,
        "metrics": {"x": 1},
    }
    assert job_view(item) == {
        "jobId": "j",
        "status": "QUEUED",
        "createdAt": "c",
        "updatedAt": "u",
        "outputUrl": None,
        "attempt": 1,
    }


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED"])
def test_job_view_completed_at_for_terminal_jobs(status):
    item = {
        "jobId": "j",
        "status": status,
        "createdAt": "c",
        "updatedAt": "u",
        "progress": 100,
        "startedAt": "s",
        "error": {"code": "x"},
        "result": {"k": [1]},
    }
    view = job_view(item)
    assert view["completedAt"] == "u"
    assert {k: view[k] for k in ("progress", "startedAt", "error", "result")} == {
        "progress": 100,
        "startedAt": "s",
        "error": {"code": "x"},
        "result": {"k": [1]},
    }
    assert "completedAt" not in job_view({**item, "status": "PROCESSING"})


def test_job_view_carries_model_and_input_from_the_request():
    item = {
        "jobId": "j",
        "userId": "alice",
        "status": "QUEUED",
        "createdAt": "c",
        "updatedAt": "u",
        "request": {"model": "fal-ai/kling-video", "input": {"prompt": "a cat", "seconds": 5}},
    }
    assert job_view(item) == {
        "jobId": "j",
        "status": "QUEUED",
        "createdAt": "c",
        "updatedAt": "u",
        "outputUrl": None,
        "model": "fal-ai/kling-video",
        "input": {"prompt": "a cat", "seconds": 5},
    }


@pytest.mark.parametrize("request_value", [None, "not an object", {}, {"model": None}])
def test_job_view_of_an_item_without_a_usable_request_has_no_model_or_input(request_value):
    item = {"jobId": "j", "status": "QUEUED", "createdAt": "c", "updatedAt": "u"}
    if request_value is not None:
        item["request"] = request_value
    assert job_view(item) == {
        "jobId": "j",
        "status": "QUEUED",
        "createdAt": "c",
        "updatedAt": "u",
        "outputUrl": None,
    }


def test_etag_is_strong_and_follows_the_version():
    etag = etag_of("0001#3#2026-11-22T07:00:00.000Z#e")
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert etag == etag_of("0001#3#2026-11-22T07:00:00.000Z#e")
    assert etag != etag_of("0001#2#2026-11-22T07:00:00.000Z#e")


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),  # If-None-Match uses the weak comparison
        ('"x", "abc"', True),
        ('"x",W/"abc" ,', True),
        ("*", True),
        (" * ", True),
        ('"x"', False),
        ('"ab"', False),
        ("abc", False),  # unquoted: malformed, matches nothing
        ('"abc', False),
        ('"x" "abc"', False),
    ],
)
def test_if_none_match(header, matches):
    assert none_match(header, '"abc"') is matches


def test_list_query_defaults_and_bounds():
    assert parse_list_query(None).limit == DEFAULT_LIMIT
    assert parse_list_query({}).status is None
    assert parse_list_query({"limit": "1", "status": "FAILED", "cursor": "c"}) == parse_list_query(
        {"limit": "001", "status": "FAILED", "cursor": "c"}
    )
    assert parse_list_query({"limit": "100"}).limit == 100
    assert parse_list_query({"unknown": "ignored"}).limit == DEFAULT_LIMIT


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "INVALID_LIMIT"),
        ({"limit": "101"}, "INVALID_LIMIT"),
        ({"limit": "-1"}, "INVALID_LIMIT"),
        ({"limit": "1.5"}, "INVALID_LIMIT"),
        ({"limit": "ten"}, "INVALID_LIMIT"),
        ({"limit": ""}, "INVALID_LIMIT"),
        ({"limit": "1000"}, "INVALID_LIMIT"),
        ({"limit": "٣"}, "INVALID_LIMIT"),  # a non-ASCII digit
        ({"status": "queued"}, "INVALID_STATUS"),
        ({"status": ""}, "INVALID_STATUS"),
        ({"cursor": ""}, "INVALID_CURSOR"),
    ],
)
def test_bad_list_query_is_400(params, code):
    with pytest.raises(ApiError) as refused:
        parse_list_query(params)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_cursor_round_trip_is_bound_to_user_and_filter():
    codec = CursorCodec(b"k" * 32)
    cursor = codec.encode(POSITION, ALICE, "QUEUED")
    assert codec.decode(cursor, ALICE, "QUEUED") == POSITION
    for caller, status in [(Caller("bob"), "QUEUED"), (ALICE, None), (ALICE, "FAILED")]:
        with pytest.raises(ApiError, match="cursor"):
            codec.decode(cursor, caller, status)
    with pytest.raises(ApiError, match="cursor"):
        CursorCodec(b"other-key" * 4).decode(cursor, ALICE, "QUEUED")


def _forge(codec: CursorCodec, payload: object) -> str:
    data = json.dumps(payload).encode()
    return (
        base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(codec._signature(data)).rstrip(b"=").decode()
    )


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        {"u": "alice", "s": None},
        {"u": "alice", "s": None, "k": {"jobId": {"S": "j"}}},
        {"u": "alice", "s": None, "k": {**POSITION, "extra": {"S": "x"}}},
        {"u": "alice", "s": None, "k": {**POSITION, "jobId": {"N": "1"}}},
        {"u": "alice", "s": None, "k": {**POSITION, "userId": {"S": "bob"}}},
    ],
)
def test_even_a_signed_cursor_must_be_a_position_of_the_callers_listing(payload):
    # What a leaked key could sign still cannot read another user's index partition.
    codec = CursorCodec(b"k" * 32)
    with pytest.raises(ApiError, match="cursor"):
        codec.decode(_forge(codec, payload), ALICE, None)


def test_signed_garbage_that_is_not_json_is_invalid():
    codec = CursorCodec(b"k" * 32)
    data = b"\xff not json"
    token = (
        base64.urlsafe_b64encode(data).decode()
        + "."
        + base64.urlsafe_b64encode(codec._signature(data)).decode()
    )
    with pytest.raises(ApiError, match="cursor"):
        codec.decode(token, ALICE, None)


@pytest.mark.parametrize("cursor", ["garbage", ".", "a.b", "!!!.???", "e30", "e30.", "x" * 500])
def test_garbage_cursor_is_invalid(cursor):
    with pytest.raises(ApiError) as refused:
        CursorCodec(b"k" * 32).decode(cursor, ALICE, None)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_CURSOR")


def test_tampered_cursor_is_invalid():
    codec = CursorCodec(b"k" * 32)
    payload, signature = codec.encode(POSITION, ALICE, None).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["u"] = "bob"
    data["k"]["userId"] = {"S": "bob"}
    tampered = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode() + "." + signature
    with pytest.raises(ApiError, match="cursor"):
        codec.decode(tampered, Caller("bob"), None)


def test_cors_only_for_allowed_origins():
    allowed = ("https://a.example",)
    assert cors_headers("https://a.example", allowed, preflight=False) == {
        "Access-Control-Allow-Origin": "https://a.example",
        "Access-Control-Expose-Headers": "ETag",
    }
    preflight = cors_headers("https://a.example", allowed, preflight=True)
    assert preflight["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert "If-None-Match" in preflight["Access-Control-Allow-Headers"]
    assert cors_headers("https://evil.example", allowed, preflight=True) == {}
    assert cors_headers(None, allowed, preflight=False) == {}
    assert cors_headers("https://a.example", (), preflight=False) == {}  # none configured: none allowed
