"""The OpenAPI document of every route, built from the constants the code answers with.

Hand-built, not Powertools' `enable_validation` (40 ms of GetJobFn's cold start). `python -m
api.openapi` prints it, `make openapi` writes `openapi.json`; a test fails when it is stale.
"""

from __future__ import annotations

import json
from typing import Any, Final

from api.core import (
    ALWAYS_FIELDS,
    CORS_EXPOSE_HEADERS,
    DEFAULT_LIMIT,
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_CURSOR,
    INVALID_JOB_ID,
    INVALID_LIMIT,
    INVALID_STATUS,
    INVALID_USER_ID,
    MAX_LIMIT,
    MAX_USER_ID_CHARS,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
)
from api.handler import RETRY_AFTER_SECONDS
from jobstatus.contract import JOB_ID_PATTERN, STATUSES

TIMESTAMP: Final = {"type": "string", "format": "date-time", "example": "2026-11-22T07:20:31.123Z"}
SECURITY_SCHEME: Final = "CognitoUserPool"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _job_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "jobId": {"type": "string", "pattern": JOB_ID_PATTERN},
        "status": {"type": "string", "enum": list(STATUSES)},
        "createdAt": _nullable(TIMESTAMP),
        "updatedAt": _nullable(TIMESTAMP),
        "outputUrl": _nullable({"type": "string", "format": "uri"}),
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "startedAt": TIMESTAMP,
        "completedAt": {**TIMESTAMP, "description": "updatedAt of a COMPLETED or FAILED job"},
        "error": {
            "type": "object",
            "required": ["code", "message", "retryable"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
            },
        },
        "result": {"type": "object", "description": "result metadata from Fal", "additionalProperties": True},
        "attempt": {"type": "integer", "minimum": 1},
        "model": {"type": "string", "description": "the Fal application the job runs (from its request)"},
        "input": {
            "type": "object",
            "description": "the arguments the job was submitted with (from its request)",
            "additionalProperties": True,
        },
    }
    return {
        "type": "object",
        "required": list(ALWAYS_FIELDS),
        "properties": properties,
        "additionalProperties": False,
    }


def _error_schema(codes: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "array",
                        "description": "POST /v1/jobs: which fields are wrong, and how",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "additionalProperties": False,
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            }
        },
    }


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


COMMON_HEADERS: Final = {
    "Vary": _header("Always `Origin`: the CORS headers depend on it", enum=["Origin"]),
    "Access-Control-Allow-Origin": _header("The request's Origin, only when it is an allowed origin"),
    "Access-Control-Expose-Headers": _header(
        "Response headers a browser may read", enum=[CORS_EXPOSE_HEADERS]
    ),
}
NO_STORE: Final = {"Cache-Control": _header("Never cache job status", enum=["no-store"])}


def _error(description: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**COMMON_HEADERS, **NO_STORE, **(extra_headers or {})},
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _json(description: str, schema: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**COMMON_HEADERS, **NO_STORE, **(extra_headers or {})},
        "content": {"application/json": {"schema": _ref(schema)}},
    }


ETAG: Final = {"ETag": _header("Strong entity tag of the job's version", pattern=r'^"[0-9a-f]{32}"$')}
COMMON_ERRORS: Final = {
    "401": _error(
        "No or bad token (the authorizer answers; the function refuses a request without claims)",
        {"WWW-Authenticate": _header("The scheme to authenticate with", enum=["Bearer"])},
    ),
    "500": _error("Unexpected error"),
    "503": _error(
        "DynamoDB is throttling: retry later",
        {"Retry-After": _header("Seconds to wait", enum=[RETRY_AFTER_SECONDS])},
    ),
}


# What the template's MOCK preflights answer (tests/api/test_openapi.py compares them with template.yaml).
PREFLIGHT_METHODS: Final = {
    "Jobs": "GET, POST, OPTIONS",
    "Job": "GET, OPTIONS",
    "WebhookSecret": "GET, OPTIONS",
}
PREFLIGHT_HEADERS: Final = {
    "Jobs": "Authorization, Content-Type, Idempotency-Key",
    "Job": "Authorization, If-None-Match",
    "WebhookSecret": "Authorization, If-None-Match",
}
PREFLIGHT_MAX_AGE: Final = "600"


def _preflight(name: str, path_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": f"preflight{name}",
        "summary": "CORS preflight: API Gateway answers (MOCK), no authorization, no function",
        "security": [],
        "parameters": [
            *path_parameters,
            {"name": "Origin", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "204": {
                "description": "The CORS headers for an allowed Origin; for any other, only `Vary`",
                "headers": {
                    "Vary": COMMON_HEADERS["Vary"],
                    "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
                    "Access-Control-Allow-Methods": _header(
                        "Allowed methods", enum=[PREFLIGHT_METHODS[name]]
                    ),
                    "Access-Control-Allow-Headers": _header(
                        "Allowed headers", enum=[PREFLIGHT_HEADERS[name]]
                    ),
                    "Access-Control-Max-Age": _header(
                        "Seconds a preflight may be cached", enum=[PREFLIGHT_MAX_AGE]
                    ),
                },
            }
        },
        "x-amazon-apigateway-integration": {"type": "mock"},
    }


SUBMIT_EXPOSE_HEADERS: Final = "Location, Retry-After"
SUBMIT_HEADERS: Final = {
    "Vary": COMMON_HEADERS["Vary"],
    "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
    "Access-Control-Expose-Headers": _header(
        "Response headers a browser may read", enum=[SUBMIT_EXPOSE_HEADERS]
    ),
    **NO_STORE,
}
SUBMIT_REFUSALS: Final = (
    "INVALID_REQUEST",
    "MODEL_NOT_ALLOWED",
    "INPUT_TOO_LARGE",
    "INVALID_IDEMPOTENCY_KEY",
    "IDEMPOTENCY_KEY_REUSED",
    "INVALID_WEBHOOK",
)


def _submit_error(description: str, retry_after: str | None = None) -> dict[str, Any]:
    extra = {"Retry-After": _header("Seconds to wait", enum=[retry_after])} if retry_after else {}
    return {
        "description": description,
        "headers": {**SUBMIT_HEADERS, **extra},
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _submit_job() -> dict[str, Any]:
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
            "content": {"application/json": {"schema": _ref("SubmitJobRequest")}},
        },
        "responses": {
            "202": {
                "description": "Queued: the job's id; follow it at Location",
                "headers": {
                    **SUBMIT_HEADERS,
                    "Location": _header("The job's URL", pattern="^/v1/jobs/"),
                },
                "content": {"application/json": {"schema": _ref("JobAccepted")}},
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


def _webhook_secret() -> dict[str, Any]:
    headers = {
        "Vary": COMMON_HEADERS["Vary"],
        "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
        "Access-Control-Expose-Headers": COMMON_HEADERS["Access-Control-Expose-Headers"],
        **NO_STORE,
    }
    return {
        "operationId": "getWebhookSecret",
        "summary": "The caller's webhook signing secret (WebhookSecretFn; docs/webhooks.md)",
        "responses": {
            "200": {
                "description": "The secret to verify the caller's webhook deliveries with",
                "headers": headers,
                "content": {"application/json": {"schema": _ref("WebhookSecret")}},
            },
            "401": {
                "description": "No or bad token (UNAUTHORIZED)",
                "headers": {
                    **headers,
                    "WWW-Authenticate": _header("The scheme to authenticate with", enum=["Bearer"]),
                },
                "content": {"application/json": {"schema": _ref("Error")}},
            },
            "500": {
                "description": "Unexpected error (INTERNAL_ERROR)",
                "headers": headers,
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        },
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route: the jobs, the webhook secret, their CORS preflights."""
    job_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
        "example": "job-1",
    }
    get_job = {
        "operationId": "getJob",
        "summary": "One job: the caller's own (any job for the admin group)",
        "parameters": [
            job_id,
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "ETags (or `*`) the client holds; weak comparison",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": _json("The job", "Job", ETAG),
            "304": {
                "description": "Unchanged since the ETag in If-None-Match",
                "headers": {**COMMON_HEADERS, **NO_STORE, **ETAG},
            },
            "400": _error(f"Malformed job id ({INVALID_JOB_ID})"),
            "404": _error("Unknown, expired or another user's job, or an unknown path (no existence leak)"),
            **COMMON_ERRORS,
        },
    }
    list_jobs = {
        "operationId": "listJobs",
        "summary": "The caller's own jobs, newest first",
        "parameters": [
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(STATUSES)},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
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
            "200": _json("A page of jobs", "JobList"),
            "400": _error(
                f"Bad status, limit, cursor or userId ({INVALID_STATUS}, {INVALID_LIMIT}, {INVALID_CURSOR}, "
                f"{INVALID_USER_ID})"
            ),
            "403": _error(f"Another user's jobs asked for by a caller outside `admin` ({FORBIDDEN})"),
            **COMMON_ERRORS,
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Job status API",
            "version": "1.0.0",
            "description": "Submit video-generation jobs and read their status (docs/api.md).",
        },
        "paths": {
            "/v1/jobs": {"get": list_jobs, "post": _submit_job(), "options": _preflight("Jobs", [])},
            "/v1/jobs/{id}": {"get": get_job, "options": _preflight("Job", [job_id])},
            "/v1/webhooks/secret": {"get": _webhook_secret(), "options": _preflight("WebhookSecret", [])},
        },
        "security": [{SECURITY_SCHEME: []}],
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "A Cognito user pool ID token, checked by API Gateway's authorizer",
                    "x-amazon-apigateway-authtype": "cognito_user_pools",
                }
            },
            "schemas": {
                "Job": _job_schema(),
                "JobList": {
                    "type": "object",
                    "required": ["items", "nextCursor"],
                    "additionalProperties": False,
                    "properties": {
                        "items": {"type": "array", "items": _ref("Job"), "maxItems": MAX_LIMIT},
                        "nextCursor": _nullable({"type": "string"}),
                    },
                },
                "SubmitJobRequest": {
                    "type": "object",
                    "required": ["model", "input"],
                    "additionalProperties": False,
                    "properties": {
                        "model": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 256,
                            "description": "A Fal application on the allow-list",
                        },
                        "input": {
                            "type": "object",
                            "additionalProperties": True,
                            "description": "The model's arguments; at most 16 KiB as JSON",
                        },
                        "webhook": {
                            "type": "string",
                            "format": "uri",
                            "maxLength": 2048,
                            "description": "An https:// URL to POST the job's changes to (docs/webhooks.md)",
                        },
                        "webhookEvents": {
                            "type": "array",
                            "minItems": 1,
                            "uniqueItems": True,
                            "items": {"type": "string", "enum": list(STATUSES)},
                            "description": "The statuses to be told of; default COMPLETED and FAILED",
                        },
                    },
                },
                "JobAccepted": {
                    "type": "object",
                    "required": ["jobId", "status", "createdAt"],
                    "additionalProperties": False,
                    "properties": {
                        "jobId": {"type": "string", "pattern": JOB_ID_PATTERN},
                        "status": {"type": "string", "enum": ["QUEUED"]},
                        "createdAt": TIMESTAMP,
                    },
                },
                "WebhookSecret": {
                    "type": "object",
                    "required": ["secret"],
                    "additionalProperties": False,
                    "properties": {"secret": {"type": "string", "pattern": "^whsec_"}},
                },
                "Error": _error_schema(
                    [
                        UNAUTHORIZED,
                        NOT_FOUND,
                        INVALID_JOB_ID,
                        INVALID_STATUS,
                        INVALID_LIMIT,
                        INVALID_CURSOR,
                        INVALID_USER_ID,
                        FORBIDDEN,
                        SERVICE_UNAVAILABLE,
                        INTERNAL_ERROR,
                        *SUBMIT_REFUSALS,
                        "REQUEST_IN_PROGRESS",
                        "UNSUPPORTED_MEDIA_TYPE",
                    ]
                ),
            },
        },
    }


def render() -> str:
    """The document as `openapi.json` holds it."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Print the document (`make openapi` redirects it into openapi.json)."""
    print(render(), end="")


if __name__ == "__main__":
    main()
