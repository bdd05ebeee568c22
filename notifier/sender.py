"""The `@connections` management API adapter: post a frame to a connection, learn whether it is gone."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

GONE_CODES = frozenset({"GoneException"})


class Sender(Protocol):
    """What the route and notifier functions need to talk to browsers."""

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send one frame; False when the connection is gone (410), raises on other failures."""
        ...


class ConnectionsApi:
    """Posts through an `apigatewaymanagementapi` client (its endpoint is the WebSocket stage's URL)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, data: bytes) -> bool:
        """`PostToConnection`; False for a connection that is gone (GoneException, HTTP 410)."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in GONE_CODES:
                return False
            raise
        return True
