"""The live-update protocol (DESIGN §4b), pure: client messages parsed, server messages built, who sees what.

No boto3, no Powertools, no pydantic. Who may read a job and the job body are the read API's own
(`api.core.may_read`, `api.core.job_view`), so a socket never shows more than `GET /v1/jobs/{id}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from api.core import job_view, may_read
from jobstatus.contract import JOB_ID_PATTERN
from jobstatus.http import Caller

MAX_JOB_IDS: Final = 50  # per subscribe or unsubscribe message
MAX_SUBSCRIPTIONS: Final = 200  # per connection, `mine` counting as one: a flood is refused beyond
MAX_MESSAGE_CHARS: Final = 32 * 1024  # API Gateway's WebSocket frame limit is 32 KiB too
MINE_SNAPSHOT_LIMIT: Final = 50  # a `mine` subscribe sends the current state of this many newest jobs
CONNECTION_TTL_SECONDS: Final = 2 * 3600  # API Gateway closes every connection after 2 h

ACTIONS: Final = ("subscribe", "unsubscribe", "ping")

# Error codes of `{"type": "error"}` messages (the AsyncAPI document lists them).
INVALID_JSON: Final = "INVALID_JSON"
INVALID_MESSAGE: Final = "INVALID_MESSAGE"
UNKNOWN_ACTION: Final = "UNKNOWN_ACTION"
INVALID_JOB_ID: Final = "INVALID_JOB_ID"
TOO_MANY_JOB_IDS: Final = "TOO_MANY_JOB_IDS"
TOO_MANY_SUBSCRIPTIONS: Final = "TOO_MANY_SUBSCRIPTIONS"
CONNECTION_EXPIRED: Final = "CONNECTION_EXPIRED"
INTERNAL_ERROR: Final = "INTERNAL_ERROR"
ERROR_CODES: Final = (
    INVALID_JSON,
    INVALID_MESSAGE,
    UNKNOWN_ACTION,
    INVALID_JOB_ID,
    TOO_MANY_JOB_IDS,
    TOO_MANY_SUBSCRIPTIONS,
    CONNECTION_EXPIRED,
    INTERNAL_ERROR,
)

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_SHAPE_KEYS: Final = frozenset({"action", "jobIds", "mine"})

Item = dict[str, Any]


class ProtocolError(Exception):
    """A client message the server refuses: a stable code and a message for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Ping:
    """`{"action": "ping"}`."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """`subscribe` or `unsubscribe`: some job ids (distinct, in the client's order), and/or all mine."""

    subscribe: bool
    job_ids: tuple[str, ...] = ()
    mine: bool = False


ClientMessage = Ping | Subscription


def parse_client_message(text: str | bytes | None) -> ClientMessage:
    """The client message a frame holds, or `ProtocolError` saying exactly what is wrong with it."""
    if text is None:
        raise ProtocolError(INVALID_MESSAGE, "the frame is empty; send a JSON object with an action")
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_JSON, "the frame is not UTF-8 text") from None
    if len(text) > MAX_MESSAGE_CHARS:
        raise ProtocolError(INVALID_MESSAGE, f"the frame is longer than {MAX_MESSAGE_CHARS} characters")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ProtocolError(INVALID_JSON, f"the frame is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_MESSAGE, "a message must be a JSON object with an action")
    action = data.get("action")
    if not isinstance(action, str):
        raise ProtocolError(INVALID_MESSAGE, f"action must be a string, one of: {', '.join(ACTIONS)}")
    if action not in ACTIONS:
        raise ProtocolError(
            UNKNOWN_ACTION, f"unknown action {action[:64]!r}; use one of: {', '.join(ACTIONS)}"
        )
    if action == "ping":
        if set(data) != {"action"}:
            raise ProtocolError(INVALID_MESSAGE, "ping takes no other field")
        return Ping()
    return _subscription(data, subscribe=action == "subscribe")


def _subscription(data: Mapping[str, Any], *, subscribe: bool) -> Subscription:
    action = "subscribe" if subscribe else "unsubscribe"
    unknown = sorted(set(data) - _SHAPE_KEYS)
    if unknown:
        raise ProtocolError(
            INVALID_MESSAGE, f"{action} takes only jobIds and mine; unknown: {', '.join(unknown)[:200]}"
        )
    mine = data.get("mine", False)
    if not isinstance(mine, bool):
        raise ProtocolError(INVALID_MESSAGE, "mine must be true or false")
    raw_ids = data.get("jobIds", [])
    if not isinstance(raw_ids, list):
        raise ProtocolError(INVALID_MESSAGE, "jobIds must be an array of job ids")
    if len(raw_ids) > MAX_JOB_IDS:
        raise ProtocolError(TOO_MANY_JOB_IDS, f"at most {MAX_JOB_IDS} jobIds per message, got {len(raw_ids)}")
    job_ids: list[str] = []
    for position, job_id in enumerate(raw_ids):
        if not isinstance(job_id, str):
            raise ProtocolError(INVALID_MESSAGE, f"jobIds[{position}] must be a string")
        if _JOB_ID_RE.fullmatch(job_id) is None:
            raise ProtocolError(INVALID_JOB_ID, f"jobIds[{position}] must match {JOB_ID_PATTERN}")
        if job_id not in job_ids:
            job_ids.append(job_id)
    if not job_ids and not mine:
        raise ProtocolError(INVALID_MESSAGE, f"{action} needs jobIds (1 to {MAX_JOB_IDS}) or mine: true")
    return Subscription(subscribe=subscribe, job_ids=tuple(job_ids), mine=mine)


# Subscriptions are stored as topics: one per job, one per user for `mine`.
def job_topic(job_id: str) -> str:
    """The topic of one job's changes."""
    return f"job#{job_id}"


def user_topic(user_id: str) -> str:
    """The topic of every change of one user's jobs (a `mine` subscription)."""
    return f"user#{user_id}"


def topics_of(request: Subscription, caller: Caller) -> list[str]:
    """The topics a subscribe or unsubscribe names, for this caller."""
    topics = [job_topic(job_id) for job_id in request.job_ids]
    if request.mine:
        topics.append(user_topic(caller.user_id))
    return topics


def check_room(current: Iterable[str], adding: Iterable[str]) -> list[str]:
    """The topics to add that are new; `ProtocolError` when the connection would hold too many."""
    held = set(current)
    new = [topic for topic in dict.fromkeys(adding) if topic not in held]
    if len(held) + len(new) > MAX_SUBSCRIPTIONS:
        raise ProtocolError(
            TOO_MANY_SUBSCRIPTIONS,
            f"a connection holds at most {MAX_SUBSCRIPTIONS} subscriptions; it holds {len(held)}, "
            f"this message adds {len(new)}: unsubscribe first",
        )
    return new


def job_message(item: Item) -> dict[str, Any]:
    """`{"type": "job", "job": <the GET body>, "version": ...}` for a Jobs item."""
    return {"type": "job", "job": job_view(item), "version": str(item.get("version", ""))}


def subscribed_message(topics: Iterable[str], caller: Caller) -> dict[str, Any]:
    """`{"type": "subscribed"}`: every job id the connection now follows, and whether it follows its own."""
    held = set(topics)
    job_ids = sorted(topic.removeprefix("job#") for topic in held if topic.startswith("job#"))
    return {"type": "subscribed", "jobIds": job_ids, "mine": user_topic(caller.user_id) in held}


def pong_message() -> dict[str, Any]:
    """`{"type": "pong"}`."""
    return {"type": "pong"}


def error_message(code: str, message: str) -> dict[str, Any]:
    """`{"type": "error", "error": {"code", "message"}}`."""
    return {"type": "error", "error": {"code": code, "message": message}}


def encode(message: Mapping[str, Any]) -> bytes:
    """A server message as the UTF-8 JSON text of one frame."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One connection following a topic, with who opened it (copied onto each subscription row)."""

    connection_id: str
    caller: Caller


def is_notifiable(item: Item) -> bool:
    """Whether a stream image is a job a subscriber could be told of (a projected item has all three)."""
    return all(isinstance(item.get(name), str) and item.get(name) for name in ("jobId", "userId", "version"))


def recipients(item: Item, subscribers: Iterable[Subscriber], now: float) -> list[str]:
    """The connections that may see this item, each once: the owner's, and admins' (others learn nothing)."""
    chosen: dict[str, None] = {}
    for subscriber in subscribers:
        if subscriber.connection_id not in chosen and may_read(item, subscriber.caller, now):
            chosen[subscriber.connection_id] = None
    return list(chosen)
