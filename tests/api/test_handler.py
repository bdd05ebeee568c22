"""GetJobFn on a moto table, driven with REST proxy events carrying Cognito claims (DESIGN §4)."""

from __future__ import annotations

import io
import json
import threading

import pytest

from api import handler
from tests.api.support import (
    ALICE,
    ALLOWED_ORIGIN,
    BOB,
    ROOT,
    at,
    body,
    claims,
    header,
    job_event,
    rest_event,
)

pytestmark = pytest.mark.unit

ERROR_KEYS = {"error"}


def assert_error(response, status, code):
    assert response["statusCode"] == status
    assert header(response, "Content-Type") == "application/json"
    payload = body(response)
    assert payload.keys() == ERROR_KEYS and payload["error"]["code"] == code
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]


def completed_job(api, job_id="job-1", user=ALICE):
    api.write(
        job_event(job_id, user, "QUEUED"),
        job_event(job_id, user, "PROCESSING", occurred=at(1), started_at=at(1), progress=40),
        job_event(
            job_id,
            user,
            "COMPLETED",
            occurred=at(5),
            started_at=at(1),
            progress=100,
            output_url="https://cdn.example/v.mp4",
            result={"seconds": 5.5, "tags": ["a"]},
        ),
    )


# --- own job: 200, strong ETag, no-store ---------------------------------------------------------


def test_own_job_is_200_with_body_etag_and_no_store(api):
    completed_job(api)
    response = api.call()
    assert response["statusCode"] == 200
    assert body(response) == {
        "jobId": "job-1",
        "status": "COMPLETED",
        "createdAt": at(0),
        "updatedAt": at(5),
        "outputUrl": "https://cdn.example/v.mp4",
        "progress": 100,
        "startedAt": at(1),
        "completedAt": at(5),
        "result": {"seconds": 5.5, "tags": ["a"]},
        "attempt": 1,
    }
    etag = header(response, "ETag")
    assert etag is not None and etag.startswith('"') and not etag.startswith("W/")
    assert header(response, "Cache-Control") == "no-store"


def test_queued_job_has_null_always_fields_and_no_optional_ones(api):
    api.write(job_event("job-1"))
    assert body(api.call()) == {
        "jobId": "job-1",
        "status": "QUEUED",
        "createdAt": at(0),
        "updatedAt": at(0),
        "outputUrl": None,
        "attempt": 1,
    }


def test_failed_job_carries_error_and_completed_at(api):
    api.write(
        job_event(
            "job-1",
            status="FAILED",
            occurred=at(3),
            error={"code": "FAL_ERROR", "message": "boom", "retryable": False},
        )
    )
    view = body(api.call())
    assert view["error"] == {"code": "FAL_ERROR", "message": "boom", "retryable": False}
    assert view["completedAt"] == at(3) and view["outputUrl"] is None


def test_etag_changes_when_the_job_does(api):
    api.write(job_event("job-1"))
    first = header(api.call(), "ETag")
    assert header(api.call(), "ETag") == first
    api.write(job_event("job-1", status="PROCESSING", occurred=at(2)))
    assert header(api.call(), "ETag") != first


# --- If-None-Match: 304 ------------------------------------------------------------------------


def test_matching_if_none_match_is_304_without_body(api):
    completed_job(api)
    etag = header(api.call(), "ETag")
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = api.call(headers={"If-None-Match": value})
        assert response["statusCode"] == 304, value
        assert not response["body"]
        assert header(response, "ETag") == etag
        assert header(response, "Cache-Control") == "no-store"


def test_stale_if_none_match_is_200(api):
    api.write(job_event("job-1"))
    old = header(api.call(), "ETag")
    api.write(job_event("job-1", status="PROCESSING", occurred=at(2)))
    assert api.call(headers={"If-None-Match": old})["statusCode"] == 200
    assert api.call(headers={"If-None-Match": "not-a-tag"})["statusCode"] == 200


def test_if_none_match_never_reveals_another_users_job(api):
    api.write(job_event("job-1", BOB))
    assert_error(api.call(headers={"If-None-Match": "*"}), 404, "NOT_FOUND")


def test_if_none_match_in_multi_value_headers(api):
    api.write(job_event("job-1"))
    etag = header(api.call(), "ETag")
    event = rest_event()
    event["headers"].pop("If-None-Match", None)
    event["multiValueHeaders"]["if-none-match"] = ['"other"', etag]
    assert handler.handle(event, None, api.deps)["statusCode"] == 304


# --- 404: unknown, expired, another user's: the same answer --------------------------------------


def test_unknown_expired_and_other_users_jobs_answer_the_same_404(api):
    api.write(job_event("bobs", BOB))
    # createdAt 31 days before the clock: ttl passed, but DynamoDB has not deleted it yet.
    api.write(job_event("old", ALICE, created="2026-10-22T07:00:00.000Z"))
    answers = [api.call(path=f"/v1/jobs/{job_id}") for job_id in ("nope", "bobs", "old")]
    for response in answers:
        assert_error(response, 404, "NOT_FOUND")
        assert header(response, "ETag") is None
    assert len({response["body"] for response in answers}) == 1  # no existence leak


def test_admin_reads_every_live_job_but_not_expired_ones(api):
    api.write(job_event("bobs", BOB), job_event("old", BOB, created="2026-10-22T07:00:00.000Z"))
    for groups in (["admin"], "[users admin]", "users,admin"):
        response = api.call(path="/v1/jobs/bobs", claims_=claims(ROOT, groups))
        assert response["statusCode"] == 200 and body(response)["jobId"] == "bobs"
    assert_error(api.call(path="/v1/jobs/old", claims_=claims(ROOT, ["admin"])), 404, "NOT_FOUND")
    assert_error(api.call(path="/v1/jobs/bobs", claims_=claims(ALICE, "[users]")), 404, "NOT_FOUND")
    assert_error(api.call(path="/v1/jobs/bobs", claims_=claims(ALICE, None)), 404, "NOT_FOUND")


# --- 400 and 401 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_id", ["-starts-with-dash", "has.dot", "x" * 129, "a%20b", "é", "\x84", "a#b", 'a"b']
)
def test_malformed_id_is_400(api, job_id):
    assert_error(api.call(path=f"/v1/jobs/{job_id}"), 400, "INVALID_JOB_ID")
    # Even an id the router cannot match: still authenticated first.
    assert_error(api.call(path=f"/v1/jobs/{job_id}", anonymous=True), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("path", ["/v1/jobs/job-1", "/v1/jobs"])
def test_no_claims_is_401_before_anything_else(api, path):
    for response in (
        api.call(path=path, anonymous=True),
        api.call(path=path, claims_={}),
        api.call(path=path, claims_={"cognito:username": "alice"}),
    ):
        assert_error(response, 401, "UNAUTHORIZED")
        assert header(response, "WWW-Authenticate") == "Bearer"
    assert_error(api.call(path="/v1/jobs/bad.id", anonymous=True), 401, "UNAUTHORIZED")


def test_null_authorizer_is_401(api):
    event = rest_event()
    event["requestContext"]["authorizer"] = None
    assert_error(handler.handle(event, None, api.deps), 401, "UNAUTHORIZED")
    event["requestContext"]["authorizer"] = "claims"
    assert_error(handler.handle(event, None, api.deps), 401, "UNAUTHORIZED")


# --- routes, methods, one error body ---------------------------------------------------------------


def test_unknown_route_is_404_and_other_methods_405_with_the_error_body(api):
    assert_error(api.call(path="/v1/other"), 404, "NOT_FOUND")
    assert_error(api.call(path="/v1/jobs/a/b"), 404, "NOT_FOUND")
    for method, path in (("DELETE", "/v1/jobs/job-1"), ("POST", "/v1/jobs"), ("HEAD", "/v1/jobs")):
        response = api.call(method, path)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert header(response, "Allow") == "GET, OPTIONS"


def test_unexpected_exception_is_500_with_the_error_body(api, monkeypatch):
    def broken(job_id):
        raise RuntimeError("bug")

    monkeypatch.setattr(api.deps.jobs, "get", broken)
    response = api.call()
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "bug" not in response["body"]


def test_an_event_that_is_not_a_rest_event_is_500_not_a_crash(api):
    response = handler.handle({"requestContext": {}}, None, api.deps)
    assert_error(response, 500, "INTERNAL_ERROR")
    assert header(response, "Vary") == "Origin"
    api.write(job_event("job-1"))
    assert api.call()["statusCode"] == 200  # the routing context was cleared


def test_throttling_is_503_with_retry_after(api, monkeypatch):
    from api.store import StoreUnavailable

    def throttled(*args, **kwargs):
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    monkeypatch.setattr(api.deps.jobs, "list_for_user", throttled)
    response = api.call(path="/v1/jobs")
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert header(response, "Retry-After") == "1"


# --- CORS -------------------------------------------------------------------------------------------


def test_cors_allowed_origin_is_echoed_with_vary(api):
    api.write(job_event("job-1"))
    response = api.call(headers={"Origin": ALLOWED_ORIGIN})
    assert header(response, "Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert header(response, "Access-Control-Expose-Headers") == "ETag"
    assert header(response, "Vary") == "Origin"
    # Errors carry CORS too, or a browser could not read them.
    error = api.call(path="/v1/jobs/nope", headers={"Origin": ALLOWED_ORIGIN})
    assert header(error, "Access-Control-Allow-Origin") == ALLOWED_ORIGIN


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "https://video.deepfoundai.com.evil.example", "null"]
)
def test_cors_refused_origin_gets_no_cors_header_but_vary(api, origin):
    api.write(job_event("job-1"))
    for response in (
        api.call(headers={"Origin": origin}),
        api.call("OPTIONS", "/v1/jobs", anonymous=True, headers={"Origin": origin}),
    ):
        assert not [
            name for name in response["multiValueHeaders"] if name.lower().startswith("access-control")
        ]
        assert header(response, "Vary") == "Origin"


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/job-1", "/v1/jobs/not.valid"])
def test_preflights_are_api_gateways_not_the_functions(api, path):
    # API Gateway answers every preflight with the template's MOCK (tests/local/test_apigw.py runs
    # it: no authorization, the allowed methods and headers); one that reaches GetJobFn is 405.
    response = api.call(
        "OPTIONS",
        path,
        anonymous=True,
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert header(response, "Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert header(response, "Access-Control-Allow-Methods") is None
    assert header(response, "Vary") == "Origin"


def test_response_without_origin_still_varies_on_origin(api):
    api.write(job_event("job-1"))
    response = api.call()
    assert header(response, "Vary") == "Origin"
    assert header(response, "Access-Control-Allow-Origin") is None


# --- list (moto; pagination on DynamoDB Local is in test_integration) -------------------------------


def test_list_is_newest_first_and_only_the_callers(api):
    api.write(
        job_event("a1", ALICE, created=at(1)),
        job_event("a2", ALICE, created=at(2)),
        job_event("b1", BOB, created=at(3)),
    )
    response = api.call(path="/v1/jobs")
    assert response["statusCode"] == 200
    assert header(response, "Cache-Control") == "no-store"
    payload = body(response)
    assert [job["jobId"] for job in payload["items"]] == ["a2", "a1"]
    assert payload["nextCursor"] is None
    assert payload["items"][0] == body(api.call(path="/v1/jobs/a2"))


def test_admin_lists_only_their_own_jobs(api):
    api.write(job_event("b1", BOB))
    assert body(api.call(path="/v1/jobs", claims_=claims(ROOT, ["admin"])))["items"] == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "0"}, "INVALID_LIMIT"),
        ({"limit": "101"}, "INVALID_LIMIT"),
        ({"limit": "x"}, "INVALID_LIMIT"),
        ({"status": "DONE"}, "INVALID_STATUS"),
        ({"cursor": "garbage"}, "INVALID_CURSOR"),
    ],
)
def test_bad_list_parameters_are_400(api, query, code):
    assert_error(api.call(path="/v1/jobs", query=query), 400, code)


# --- the AWS entry point: Latency metric, correlation id, jobId -------------------------------------


@pytest.fixture
def log_lines(monkeypatch):
    """The handler's JSON log lines (Powertools binds its stream at import, so capsys misses them)."""
    stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


class Context:
    function_name = "GetJobFn"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:GetJobFn"
    memory_limit_in_mb = 256
    aws_request_id = "52fdfc07-2182-454f-963f-5f0f9a621d72"
    log_group_name = "/aws/lambda/GetJobFn"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self):
        return 30_000


def test_lambda_handler_records_latency_and_logs_correlation_and_job_id(api, monkeypatch, capsys, log_lines):
    api.write(job_event("job-1"))
    monkeypatch.setattr(handler, "dependencies", lambda: api.deps)
    event = rest_event()
    response = handler.lambda_handler(event, Context())  # type: ignore[arg-type]  # a stand-in context
    assert response["statusCode"] == 200
    access = next(line for line in log_lines() if line.get("message") == "request answered")
    assert access["correlation_id"] == event["requestContext"]["requestId"]
    assert access["jobId"] == "job-1" and access["status"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = next(line for line in lines if "_aws" in line)
    metric = emf["_aws"]["CloudWatchMetrics"][0]
    assert metric["Namespace"] == "JobStatus"
    assert metric["Metrics"] == [{"Name": "Latency", "Unit": "Milliseconds"}]
    assert emf["service"] == "jobstatus" and emf["Latency"][0] >= 0


def test_job_id_does_not_leak_into_the_next_requests_logs(api, log_lines):
    api.write(job_event("job-1"))
    api.call()
    api.call(path="/v1/jobs")
    answered = [line for line in log_lines() if line.get("message") == "request answered"]
    assert answered[0]["jobId"] == "job-1" and "jobId" not in answered[1]


def test_a_job_id_stays_on_its_requests_thread(api, monkeypatch, log_lines):
    # Given: GetJobFn mid-request for job-1 (locally, every function shares one process)
    api.write(job_event("job-1"))
    inside, logged = threading.Event(), threading.Event()
    original = api.deps.jobs.get

    def get(job_id):
        inside.set()
        logged.wait(10)
        return original(job_id)

    monkeypatch.setattr(api.deps.jobs, "get", get)
    request = threading.Thread(target=api.call)
    request.start()
    assert inside.wait(10)
    # When: another thread logs meanwhile
    handler.logger.info("another thread's line")
    logged.set()
    request.join(10)
    # Then: only the request's own lines carry its jobId
    lines = log_lines()
    other = next(line for line in lines if line.get("message") == "another thread's line")
    answered = next(line for line in lines if line.get("message") == "request answered")
    assert "jobId" not in other and answered["jobId"] == "job-1"
