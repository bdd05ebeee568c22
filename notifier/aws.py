"""The production adapters of StreamFn and NotifierFn, built from the settings (once per container).

botocore's clients without boto3 (as GetJobFn does): the same clients, less cold start.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from botocore.session import Session

from api.store import JobReader
from notifier.sender import ConnectionsApi
from notifier.settings import StreamSettings
from notifier.store import ConnectionStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from notifier.handler import NotifierDeps
    from notifier.routes import StreamDeps

_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def dynamodb_client() -> DynamoDBClient:
    """A DynamoDB client (endpoint from `AWS_ENDPOINT_URL*`)."""
    return cast("DynamoDBClient", Session().create_client("dynamodb", config=_CONFIG))


def connections_client(endpoint: str) -> Any:
    """An `apigatewaymanagementapi` client on the WebSocket stage's URL."""
    return Session().create_client("apigatewaymanagementapi", endpoint_url=endpoint, config=_CONFIG)


def _common(settings: StreamSettings) -> tuple[ConnectionStore, JobReader, ConnectionsApi]:
    client = dynamodb_client()
    return (
        ConnectionStore(client, settings.connections_table_name, time.time),
        JobReader(client, settings.jobs_table_name),
        ConnectionsApi(connections_client(settings.connections_endpoint)),
    )


def stream_deps(settings: StreamSettings | None = None) -> StreamDeps:
    """StreamFn's adapters."""
    from notifier.routes import StreamDeps

    connections, jobs, sender = _common(settings or StreamSettings.from_env())
    return StreamDeps(connections=connections, jobs=jobs, sender=sender)


def notifier_deps(settings: StreamSettings | None = None) -> NotifierDeps:
    """NotifierFn's adapters."""
    from notifier.handler import NotifierDeps

    connections, _, sender = _common(settings or StreamSettings.from_env())
    return NotifierDeps(connections=connections, sender=sender)
