"""The pieces every route's description is made of: references, headers, JSON and error answers."""

from __future__ import annotations

from typing import Any, Final

from api.core import CORS_EXPOSE_HEADERS
from api.handler import RETRY_AFTER_SECONDS

TIMESTAMP: Final = {"type": "string", "format": "date-time", "example": "2026-11-22T07:20:31.123Z"}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or null."""
    return {**schema, "nullable": True}


def header(description: str, **schema: Any) -> dict[str, Any]:
    """A string response header."""
    return {"description": description, "schema": {"type": "string", **schema}}


COMMON_HEADERS: Final = {
    "Vary": header("Always `Origin`: the CORS headers depend on it", enum=["Origin"]),
    "Access-Control-Allow-Origin": header("The request's Origin, only when it is an allowed origin"),
    "Access-Control-Expose-Headers": header(
        "Response headers a browser may read", enum=[CORS_EXPOSE_HEADERS]
    ),
}
NO_STORE: Final = {"Cache-Control": header("Never cache job status", enum=["no-store"])}
ETAG: Final = {"ETag": header("Strong entity tag of the job's version", pattern=r'^"[0-9a-f]{32}"$')}
WWW_AUTHENTICATE: Final = {"WWW-Authenticate": header("The scheme to authenticate with", enum=["Bearer"])}


def error_answer(description: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error answer of GetJobFn: the `Error` body with its headers."""
    return {
        "description": description,
        "headers": {**COMMON_HEADERS, **NO_STORE, **(extra_headers or {})},
        "content": {"application/json": {"schema": ref("Error")}},
    }


def json_answer(description: str, schema: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON answer of GetJobFn holding the component schema `schema`."""
    return {
        "description": description,
        "headers": {**COMMON_HEADERS, **NO_STORE, **(extra_headers or {})},
        "content": {"application/json": {"schema": ref(schema)}},
    }


COMMON_ERRORS: Final = {
    "401": error_answer(
        "No or bad token (the authorizer answers; the function refuses a request without claims)",
        WWW_AUTHENTICATE,
    ),
    "500": error_answer("Unexpected error"),
    "503": error_answer(
        "DynamoDB is throttling: retry later",
        {"Retry-After": header("Seconds to wait", enum=[RETRY_AFTER_SECONDS])},
    ),
}
