"""The component schemas: a job, a page of jobs, the submit body and its answer, the secret, errors."""

from __future__ import annotations

from typing import Any, Final

from api.core import (
    ALWAYS_FIELDS,
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_CURSOR,
    INVALID_JOB_ID,
    INVALID_LIMIT,
    INVALID_STATUS,
    INVALID_USER_ID,
    MAX_LIMIT,
    NOT_FOUND,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
)
from api.openapi.parts import TIMESTAMP, nullable, ref
from jobstatus.contract import JOB_ID_PATTERN, STATUSES

# The codes of SubmitJobFn's 400 answer.
SUBMIT_REFUSALS: Final = (
    "INVALID_REQUEST",
    "MODEL_NOT_ALLOWED",
    "INPUT_TOO_LARGE",
    "INVALID_IDEMPOTENCY_KEY",
    "IDEMPOTENCY_KEY_REUSED",
    "INVALID_WEBHOOK",
)
ERROR_CODES: Final = (
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
)


def job_schema() -> dict[str, Any]:
    """A job as GET answers it: the fields every job has, and those its status adds."""
    properties: dict[str, Any] = {
        "jobId": {"type": "string", "pattern": JOB_ID_PATTERN},
        "status": {"type": "string", "enum": list(STATUSES)},
        "createdAt": nullable(TIMESTAMP),
        "updatedAt": nullable(TIMESTAMP),
        "outputUrl": nullable({"type": "string", "format": "uri"}),
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


def error_schema(codes: list[str]) -> dict[str, Any]:
    """The error body: one of `codes`, a message, and for POST /v1/jobs the fields at fault."""
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


def submit_request_schema() -> dict[str, Any]:
    """The body of POST /v1/jobs."""
    return {
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
    }


def component_schemas() -> dict[str, Any]:
    """Every schema the routes refer to, by name."""
    return {
        "Job": job_schema(),
        "JobList": {
            "type": "object",
            "required": ["items", "nextCursor"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": ref("Job"), "maxItems": MAX_LIMIT},
                "nextCursor": nullable({"type": "string"}),
            },
        },
        "SubmitJobRequest": submit_request_schema(),
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
        "Error": error_schema(list(ERROR_CODES)),
    }
