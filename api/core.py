"""The pure rules of the read API (DESIGN §4): who may read what, the job body, ETags, cursors, CORS.

No boto3, no Powertools and no pydantic: this module is on the GetJobFn cold-start path, and
`jobstatus.events` builds pydantic models at import (about 10 ms by `python -X importtime`):
the job-id pattern and the statuses come from the pure `jobstatus.contract`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jobstatus import http
from jobstatus.contract import JOB_ID_PATTERN, STATUSES, TERMINAL_STATUSES
from jobstatus.http import Caller, error_body

ADMIN_GROUP: Final = "admin"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_USER_ID_CHARS: Final = 256  # as the event's userId (DESIGN §2)

# Every error code an answer can carry, with its HTTP status (the OpenAPI document lists them).
UNAUTHORIZED: Final = "UNAUTHORIZED"
NOT_FOUND: Final = "NOT_FOUND"
INVALID_JOB_ID: Final = "INVALID_JOB_ID"
INVALID_STATUS: Final = "INVALID_STATUS"
INVALID_LIMIT: Final = "INVALID_LIMIT"
INVALID_CURSOR: Final = "INVALID_CURSOR"
INVALID_USER_ID: Final = "INVALID_USER_ID"
FORBIDDEN: Final = "FORBIDDEN"
METHOD_NOT_ALLOWED: Final = "METHOD_NOT_ALLOWED"
SERVICE_UNAVAILABLE: Final = "SERVICE_UNAVAILABLE"
INTERNAL_ERROR: Final = "INTERNAL_ERROR"

# Always on the job body (null when unset), then those copied only when the item has them.
ALWAYS_FIELDS: Final = ("jobId", "status", "createdAt", "updatedAt", "outputUrl")
OPTIONAL_FIELDS: Final = ("progress", "startedAt", "error", "result", "attempt")
# From the item's `request` fill-in (DESIGN §2): what the job was asked to do, when it is known.
REQUEST_FIELDS: Final = ("model", "input")

# CORS: what a browser on an allowed origin may send and read.
CORS_ALLOW_METHODS: Final = "GET, OPTIONS"
CORS_ALLOW_HEADERS: Final = "Authorization, Content-Type, If-None-Match, X-Amz-Date, X-Amz-Security-Token"
CORS_EXPOSE_HEADERS: Final = "ETag"
CORS_MAX_AGE_SECONDS: Final = 600

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_LIMIT_RE = re.compile(r"[0-9]{1,3}")
# One entity tag of an If-None-Match list (RFC 9110 §8.8.3): optional W/, then a quoted opaque tag.
_ENTITY_TAG_RE = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_CURSOR_KEY_FIELDS: Final = frozenset({"jobId", "userId", "createdAt"})

Item = dict[str, Any]


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a stable code and a message for the client."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The one error body of every route: `{"error": {"code", "message"}}`."""
        return error_body(self.code, self.message)


def not_found(what: str = "Job not found") -> ApiError:
    """The one 404 for unknown, expired and other users' jobs: nothing tells them apart."""
    return ApiError(404, NOT_FOUND, what)


def caller_from_claims(claims: object) -> Caller:
    """The caller from the authorizer's claims; 401 when there are none or no `sub`."""
    caller = http.caller_from_claims(claims)
    if caller is None:
        raise ApiError(401, UNAUTHORIZED, "Authentication required", {"WWW-Authenticate": "Bearer"})
    return caller


def parse_job_id(value: str) -> str:
    """The job id of the path, or 400 `INVALID_JOB_ID`."""
    if _JOB_ID_RE.fullmatch(value) is None:
        raise ApiError(400, INVALID_JOB_ID, f"jobId must match {JOB_ID_PATTERN}")
    return value


def is_live(item: Item, now: float) -> bool:
    """Whether the item's `ttl` is still ahead (DynamoDB deletes expired items only lazily)."""
    ttl = item.get("ttl")
    return not isinstance(ttl, int | float) or ttl > now


def may_read(item: Item | None, caller: Caller, now: float) -> bool:
    """Whether `caller` may see this item: it exists, is live, and is theirs (or they are admin)."""
    if item is None or not isinstance(item.get("userId"), str) or "status" not in item:
        return False
    return is_live(item, now) and (caller.is_admin or item["userId"] == caller.user_id)


def job_view(item: Item) -> dict[str, Any]:
    """The JSON body of a job: the always-present fields (null when unset), then the optional ones,
    and `model` and `input` from the item's `request` when it has one."""
    view: dict[str, Any] = {name: item.get(name) for name in ALWAYS_FIELDS}
    for name in OPTIONAL_FIELDS:
        if item.get(name) is not None:
            view[name] = item[name]
    request = item.get("request")
    if isinstance(request, Mapping):  # an item written before `request` existed has none
        for name in REQUEST_FIELDS:
            if request.get(name) is not None:
                view[name] = request[name]
    if item.get("status") in TERMINAL_STATUSES and item.get("updatedAt") is not None:
        view["completedAt"] = item["updatedAt"]
    return view


def etag_of(version: str) -> str:
    """A strong ETag of the item's version: the version changes exactly when the winner does."""
    return '"' + hashlib.sha256(version.encode()).hexdigest()[:32] + '"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` value matches `etag` (RFC 9110 §13.1.2: weak comparison, `*`).

    A malformed header matches nothing, so the client gets the full answer.
    """
    if header is None:
        return False
    text = header.strip()
    if text == "*":
        return True
    position, tags = 0, []
    while position < len(text):
        match = _ENTITY_TAG_RE.match(text, position)
        if match is None:
            return False
        tags.append(match.group(1))
        position = match.end()
    return etag in tags


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The validated query of `GET /v1/jobs`."""

    limit: int = DEFAULT_LIMIT
    status: str | None = None
    cursor: str | None = None
    user_id: str | None = None  # whose jobs an admin lists (None: the caller's own)


def parse_list_query(params: Mapping[str, str] | None) -> ListQuery:
    """`status`, `limit`, `cursor` and `userId` from the query string, or 400 with the parameter's code."""
    params = params or {}
    user_id = params.get("userId")
    if user_id is not None and not 1 <= len(user_id) <= MAX_USER_ID_CHARS:
        raise ApiError(400, INVALID_USER_ID, f"userId must be 1 to {MAX_USER_ID_CHARS} characters")
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, INVALID_STATUS, f"status must be one of {', '.join(STATUSES)}")
    raw_limit = params.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if _LIMIT_RE.fullmatch(raw_limit) is None or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(400, INVALID_LIMIT, f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    cursor = params.get("cursor")
    if cursor is not None and not cursor:
        raise ApiError(400, INVALID_CURSOR, "cursor is empty")
    return ListQuery(limit=limit, status=status, cursor=cursor, user_id=user_id)


def listed_user(query: ListQuery, caller: Caller) -> str:
    """Whose jobs the listing shows: the caller's own, or (admins only) those `userId` names.

    A caller outside `admin` who names another user gets 403 `FORBIDDEN` (naming themself is
    the same as naming no one).
    """
    if query.user_id is None or query.user_id == caller.user_id:
        return caller.user_id
    if not caller.is_admin:
        raise ApiError(403, FORBIDDEN, f"only members of {ADMIN_GROUP!r} may list another user's jobs")
    return query.user_id


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CursorCodec:
    """Opaque list cursors: the position (DynamoDB `LastEvaluatedKey`) signed with HMAC-SHA256.

    The signed payload binds the position to the listed user (the caller's own, or the one an
    admin named) and to the status filter, so a cursor cannot be replayed in another user's
    listing, edited, or reused with another filter.
    """

    key: bytes = field(repr=False)

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()

    def encode(self, position: Item, caller: Caller, status: str | None, owner: str | None = None) -> str:
        """The cursor for `position` (a LastEvaluatedKey in DynamoDB JSON) in the listing of
        `owner`'s jobs (default: the caller's)."""
        listed = caller.user_id if owner is None else owner
        payload = json.dumps(
            {"k": position, "u": listed, "s": status}, separators=(",", ":"), sort_keys=True
        ).encode()
        return _b64encode(payload) + "." + _b64encode(self._signature(payload))

    def decode(self, cursor: str, caller: Caller, status: str | None, owner: str | None = None) -> Item:
        """The position a cursor stands for, or 400 `INVALID_CURSOR` for any cursor not ours to use."""
        listed = caller.user_id if owner is None else owner
        invalid = ApiError(400, INVALID_CURSOR, "cursor is invalid for this listing")
        payload_text, _, signature_text = cursor.partition(".")
        try:
            payload = _b64decode(payload_text)
            signature = _b64decode(signature_text)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise invalid
        # Signed by us, so well-formed; still checked, since a leaked key must not widen access.
        try:
            data = json.loads(payload)
        except ValueError:
            raise invalid from None
        if not isinstance(data, dict) or data.get("u") != listed or data.get("s") != status:
            raise invalid
        position = data.get("k")
        if (
            not isinstance(position, dict)
            or set(position) != _CURSOR_KEY_FIELDS
            or not all(isinstance(v, dict) and isinstance(v.get("S"), str) for v in position.values())
            or position["userId"]["S"] != listed
        ):
            raise invalid
        return position


def cors_headers(origin: str | None, allowed: tuple[str, ...], *, preflight: bool) -> dict[str, str]:
    """CORS headers for a request from `origin`: only an allowed origin gets any (echoed back)."""
    headers = http.cors_headers(origin, allowed, CORS_EXPOSE_HEADERS)
    if headers and preflight:
        headers |= {
            "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
        }
    return headers
