"""The operations the functions answer: GET one job and a page of jobs (GetJobFn), POST a job
(SubmitJobFn), GET the webhook secret (WebhookSecretFn)."""

from __future__ import annotations

from typing import Any, Final

from api.core import (
    DEFAULT_LIMIT,
    FORBIDDEN,
    INVALID_CURSOR,
    INVALID_JOB_ID,
    INVALID_LIMIT,
    INVALID_STATUS,
    INVALID_USER_ID,
    MAX_LIMIT,
    MAX_USER_ID_CHARS,
)
from api.openapi.parts import (
    COMMON_ERRORS,
    COMMON_HEADERS,
    ETAG,
    NO_STORE,
    WWW_AUTHENTICATE,
    error_answer,
    header,
    json_answer,
    ref,
)
from api.openapi.schemas import SUBMIT_REFUSALS
from jobstatus.contract import JOB_ID_PATTERN, STATUSES


def job_id_parameter() -> dict[str, Any]:
    """The `{id}` of /v1/jobs/{id}."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
        "example": "job-1",
    }


def get_job() -> dict[str, Any]:
    """GET /v1/jobs/{id}."""
    return {
        "operationId": "getJob",
        "summary": "One job: the caller's own (any job for the admin group)",
        "parameters": [
            job_id_parameter(),
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "ETags (or `*`) the client holds; weak comparison",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": json_answer("The job", "Job", ETAG),
            "304": {
                "description": "Unchanged since the ETag in If-None-Match",
                "headers": {**COMMON_HEADERS, **NO_STORE, **ETAG},
            },
            "400": error_answer(f"Malformed job id ({INVALID_JOB_ID})"),
            "404": error_answer(
                "Unknown, expired or another user's job, or an unknown path (no existence leak)"
            ),
            **COMMON_ERRORS,
        },
    }


def list_jobs() -> dict[str, Any]:
    """GET /v1/jobs."""
    limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
    return {
        "operationId": "listJobs",
        "summary": "The caller's own jobs, newest first",
        "parameters": [
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(STATUSES)},
            },
            {"name": "limit", "in": "query", "required": False, "schema": limit},
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "`nextCursor` of the previous page, for the same caller, user and status",
                "schema": {"type": "string", "minLength": 1},
            },
            {
                "name": "userId",
                "in": "query",
                "required": False,
                "description": "Whose jobs: members of `admin` may name any user, others only themselves",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS},
            },
        ],
        "responses": {
            "200": json_answer("A page of jobs", "JobList"),
            "400": error_answer(
                f"Bad status, limit, cursor or userId ({INVALID_STATUS}, {INVALID_LIMIT}, {INVALID_CURSOR}, "
                f"{INVALID_USER_ID})"
            ),
            "403": error_answer(f"Another user's jobs asked for by a caller outside `admin` ({FORBIDDEN})"),
            **COMMON_ERRORS,
        },
    }


# SubmitJobFn exposes its own headers (Location, Retry-After) to browsers.
SUBMIT_EXPOSE_HEADERS: Final = "Location, Retry-After"
SUBMIT_HEADERS: Final = {
    "Vary": COMMON_HEADERS["Vary"],
    "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
    "Access-Control-Expose-Headers": header(
        "Response headers a browser may read", enum=[SUBMIT_EXPOSE_HEADERS]
    ),
    **NO_STORE,
}


def _submit_error(description: str, retry_after: str | None = None) -> dict[str, Any]:
    extra = {"Retry-After": header("Seconds to wait", enum=[retry_after])} if retry_after else {}
    return {
        "description": description,
        "headers": {**SUBMIT_HEADERS, **extra},
        "content": {"application/json": {"schema": ref("Error")}},
    }


def submit_job() -> dict[str, Any]:
    """POST /v1/jobs."""
    return {
        "operationId": "submitJob",
        "summary": "Submit one video-generation job for the caller (SubmitJobFn)",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeat a request safely: the same key and body answer the same job "
                "(per user, kept as long as the job)",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("SubmitJobRequest")}},
        },
        "responses": {
            "202": {
                "description": "Queued: the job's id; follow it at Location",
                "headers": {**SUBMIT_HEADERS, "Location": header("The job's URL", pattern="^/v1/jobs/")},
                "content": {"application/json": {"schema": ref("JobAccepted")}},
            },
            "400": _submit_error(f"The request is refused ({', '.join(SUBMIT_REFUSALS)}); `fields` says why"),
            "401": _submit_error("No or bad token (UNAUTHORIZED)"),
            "409": _submit_error(
                "A request with this Idempotency-Key is still running (REQUEST_IN_PROGRESS)", "1"
            ),
            "415": _submit_error("The body is not application/json in UTF-8 (UNSUPPORTED_MEDIA_TYPE)"),
            "500": _submit_error("Unexpected error (INTERNAL_ERROR)"),
            "503": _submit_error(
                "The job could not be queued (SERVICE_UNAVAILABLE): retry with the same Idempotency-Key", "2"
            ),
        },
    }


def webhook_secret() -> dict[str, Any]:
    """GET /v1/webhooks/secret."""
    headers = {
        "Vary": COMMON_HEADERS["Vary"],
        "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
        "Access-Control-Expose-Headers": COMMON_HEADERS["Access-Control-Expose-Headers"],
        **NO_STORE,
    }
    error_body = {"application/json": {"schema": ref("Error")}}
    return {
        "operationId": "getWebhookSecret",
        "summary": "The caller's webhook signing secret (WebhookSecretFn; docs/webhooks.md)",
        "responses": {
            "200": {
                "description": "The secret to verify the caller's webhook deliveries with",
                "headers": headers,
                "content": {"application/json": {"schema": ref("WebhookSecret")}},
            },
            "401": {
                "description": "No or bad token (UNAUTHORIZED)",
                "headers": {**headers, **WWW_AUTHENTICATE},
                "content": error_body,
            },
            "500": {
                "description": "Unexpected error (INTERNAL_ERROR)",
                "headers": headers,
                "content": error_body,
            },
        },
    }
