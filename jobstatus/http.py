"""The HTTP edge SubmitJobFn and GetJobFn share: error body, caller, headers, CORS with `Vary`.

Pure and pydantic-free: it is on GetJobFn's cold-start path. Preflights are API Gateway's
MOCK integrations; the functions only add CORS headers to their own answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

ADMIN_GROUP: Final = "admin"
NO_STORE: Final = {"Cache-Control": "no-store"}
_GROUP_SEPARATORS = re.compile(r"[\s,]+")


class HttpError(Exception):
    """A refused request: its status, a stable code, a message, optional field errors and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = [dict(field) for field in fields or ()]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The error body, with `fields` when there are any."""
        return error_body(self.code, self.message, self.fields)


def error_body(code: str, message: str, fields: Sequence[Mapping[str, str]] | None = None) -> dict[str, Any]:
    """`{"error": {"code", "message"[, "fields"]}}`: the body of every answer that is not a success."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = [dict(field) for field in fields]
    return {"error": error}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the Cognito `sub`, and whether they are in the `admin` group."""

    user_id: str
    is_admin: bool = False


def groups_of(value: object) -> frozenset[str]:
    """The Cognito groups of a `cognito:groups` claim, whatever shape the authorizer gave it.

    A JWT carries a list; API Gateway REST passes claims as strings, a list flattened to
    `"[admin other]"` or `"admin,other"`.
    """
    if isinstance(value, list | tuple):
        return frozenset(str(group).strip() for group in value if str(group).strip())
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return frozenset(group for group in _GROUP_SEPARATORS.split(text) if group)
    return frozenset()


def claims_of(event: Mapping[str, Any]) -> object:
    """`requestContext.authorizer.claims` of a REST proxy event, or None."""
    request_context = event.get("requestContext")
    authorizer = request_context.get("authorizer") if isinstance(request_context, Mapping) else None
    return authorizer.get("claims") if isinstance(authorizer, Mapping) else None


def caller_from_claims(claims: object) -> Caller | None:
    """The caller the authorizer's claims name; None without a non-blank `sub`."""
    if not isinstance(claims, Mapping):
        return None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        return None
    return Caller(user_id=sub, is_admin=ADMIN_GROUP in groups_of(claims.get("cognito:groups")))


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, case-insensitively; repeated values joined as one list (RFC 9110 §5.3)."""
    wanted = name.lower()
    values = [
        value
        for key, value in (event.get("multiValueHeaders") or {}).items()
        if key.lower() == wanted
        for value in (value or [])
    ]
    if values:
        return ", ".join(values)
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None


def cors_headers(origin: str | None, allowed: Sequence[str], expose: str) -> dict[str, str]:
    """CORS headers of an answer to `origin`: only an allowed origin gets any (echoed back)."""
    if origin is None or origin not in allowed:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": expose}


def add_headers(response: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """Set `headers` on a proxy response, in `multiValueHeaders` when it has them."""
    multi = response.get("multiValueHeaders")
    if isinstance(multi, dict):
        for name, value in headers.items():
            multi[name] = [value]
    else:
        response["headers"] = {**(response.get("headers") or {}), **headers}
    return response


def with_cors(
    response: dict[str, Any], event: Mapping[str, Any], allowed: Sequence[str], expose: str
) -> dict[str, Any]:
    """The response with `Vary: Origin` (the CORS headers depend on it) and CORS for an allowed origin."""
    return add_headers(response, {"Vary": "Origin", **cors_headers(header(event, "Origin"), allowed, expose)})
