"""StreamFn: the WebSocket routes `$connect`, `$disconnect`, `subscribe`, `unsubscribe`, `ping`, `$default`.

Every answer goes through the `@connections` API, in order: after a subscribe, the current state of
each subscribed job the caller may read, then `subscribed`. A refused message gets an `error`
message and changes nothing, so the connection's other subscriptions keep working.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from api.core import may_read
from api.store import Item, Page
from jobstatus.http import Caller
from jobstatus.logkeys import names_its_function
from notifier.core import (
    CONNECTION_EXPIRED,
    INTERNAL_ERROR,
    MINE_SNAPSHOT_LIMIT,
    Ping,
    ProtocolError,
    check_room,
    encode,
    error_message,
    job_message,
    parse_client_message,
    pong_message,
    subscribed_message,
    topics_of,
)
from notifier.sender import Sender
from notifier.store import Connection

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

OK: Final = {"statusCode": 200}

logger = Logger()
metrics = Metrics()


class Connections(Protocol):
    """What the routes need of the connections table (`notifier.store.ConnectionStore`)."""

    def add_connection(self, connection_id: str, caller: Caller) -> None: ...
    def connection(self, connection_id: str) -> Connection | None: ...
    def subscribe(self, connection: Connection, topics: list[str]) -> None: ...
    def unsubscribe(self, connection_id: str, topics: list[str]) -> None: ...
    def forget(self, connection_id: str) -> int: ...


class Jobs(Protocol):
    """What the routes need of the Jobs table (`api.store.JobReader`)."""

    def get(self, job_id: str) -> Item | None: ...
    def list_for_user(
        self, user_id: str, *, limit: int, status: str | None, start: Item | None, now: float
    ) -> Page: ...


@dataclass(frozen=True)
class StreamDeps:
    """The adapters the routes use, built outside."""

    connections: Connections
    jobs: Jobs
    sender: Sender
    clock: Callable[[], float] = time.time


class _Gone(Exception):
    """The connection went away while we answered it."""


def caller_from_authorizer(authorizer: object) -> Caller | None:
    """The caller the `$connect` authorizer put in its context (`userId`, `admin` as "true"/"false")."""
    if not isinstance(authorizer, Mapping):
        return None
    user_id = authorizer.get("userId")
    if not isinstance(user_id, str) or not user_id:
        return None
    admin = authorizer.get("admin")
    return Caller(user_id=user_id, is_admin=admin is True or str(admin).lower() == "true")


def handle(event: Mapping[str, Any], deps: StreamDeps) -> dict[str, Any]:
    """Answer one API Gateway WebSocket proxy event."""
    context = event.get("requestContext") or {}
    route = str(context.get("routeKey", ""))
    connection_id = str(context.get("connectionId", ""))
    logger.append_keys(connectionId=connection_id, route=route)
    try:
        return _route(route, connection_id, context, event, deps)
    finally:
        logger.remove_keys(["connectionId", "route"])


def _route(
    route: str, connection_id: str, context: Mapping[str, Any], event: Mapping[str, Any], deps: StreamDeps
) -> dict[str, Any]:
    if route == "$connect":
        caller = caller_from_authorizer(context.get("authorizer"))
        if caller is None:
            logger.warning("connect without an authorizer context refused")
            return {"statusCode": 401}
        deps.connections.add_connection(connection_id, caller)
        metrics.add_metric(name="Connects", unit=MetricUnit.Count, value=1)
        logger.info("connected", extra={"userId": caller.user_id, "admin": caller.is_admin})
        return OK
    if route == "$disconnect":
        rows = deps.connections.forget(connection_id)
        metrics.add_metric(name="Disconnects", unit=MetricUnit.Count, value=1)
        logger.info("disconnected", extra={"rowsDeleted": rows})
        return OK
    metrics.add_metric(name="ClientMessages", unit=MetricUnit.Count, value=1)
    try:
        _message(connection_id, event.get("body"), deps)
    except _Gone:
        deps.connections.forget(connection_id)
        logger.info("connection gone while answering; forgotten")
    return OK


def _message(connection_id: str, body: object, deps: StreamDeps) -> None:
    def send(message: Mapping[str, Any]) -> None:
        if not deps.sender.post(connection_id, encode(message)):
            raise _Gone

    try:
        request = parse_client_message(body if isinstance(body, str | bytes) else None)
        if isinstance(request, Ping):
            send(pong_message())
            return
        connection = deps.connections.connection(connection_id)
        if connection is None:
            raise ProtocolError(CONNECTION_EXPIRED, "this connection is no longer known; reconnect")
        topics = topics_of(request, connection.caller)
        if not request.subscribe:
            deps.connections.unsubscribe(connection_id, topics)
            send(subscribed_message(connection.topics - set(topics), connection.caller))
            metrics.add_metric(name="Unsubscribes", unit=MetricUnit.Count, value=1)
            return
        new = check_room(connection.topics, topics)
        deps.connections.subscribe(connection, new)
        now = deps.clock()
        for job_id in request.job_ids:
            item = deps.jobs.get(job_id)
            if item is not None and may_read(item, connection.caller, now):
                send(job_message(item))
        if request.mine:
            page = deps.jobs.list_for_user(
                connection.caller.user_id, limit=MINE_SNAPSHOT_LIMIT, status=None, start=None, now=now
            )
            for item in page.items:
                if item["jobId"] not in request.job_ids:
                    send(job_message(item))
        send(subscribed_message(connection.topics | set(new), connection.caller))
        metrics.add_metric(name="Subscribes", unit=MetricUnit.Count, value=1)
    except ProtocolError as error:
        logger.info("client message refused", extra={"code": error.code, "reason": error.message})
        metrics.add_metric(name="ClientMessagesRefused", unit=MetricUnit.Count, value=1)
        send(error_message(error.code, error.message))
    except _Gone:
        raise
    except Exception:
        logger.exception("client message failed")
        send(error_message(INTERNAL_ERROR, "the message could not be handled; try again"))


@functools.cache
def dependencies() -> StreamDeps:
    """The production adapters, built once per container."""
    from notifier.aws import stream_deps

    return stream_deps()


@logger.inject_lambda_context(clear_state=True)
@names_its_function
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point of StreamFn."""
    return handle(event, dependencies())
