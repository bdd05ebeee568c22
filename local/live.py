"""Live updates in the local stack: the WebSocket gateway and the Jobs stream poller, from template.yaml.

`LiveUpdates` needs from the stack only: the template, a DynamoDB Streams client, each table's
stream ARN, a way to invoke a function by logical id, and the REST routes' token check. The stack's
HTTP server hands it upgrades on `/v1/stream` and requests under `/@connections/`
(`gateway.serve_upgrade`, `gateway.answer_management`), and the functions get
`CONNECTIONS_ENDPOINT` = the server's own URL (`connections_endpoint`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from local.streams import Record, StreamPoller, stream_mappings
from local.websocket import StreamGateway, local_verify

log = logging.getLogger("jobstatus.local.live")

_INTEGRATION_TARGET = re.compile(r"\$\{(\w+)\.Arn\}")


def websocket_routes(template: Any) -> tuple[str | None, list[str]]:
    """The function behind the template's WebSocket integration, and the WebSocket route keys."""
    function = None
    for integration in template.of_type("AWS::ApiGatewayV2::Integration").values():
        uri = integration.get("Properties", {}).get("IntegrationUri", {})
        text = uri.get("Fn::Sub", "") if isinstance(uri, Mapping) else str(uri)
        found = _INTEGRATION_TARGET.search(text if isinstance(text, str) else str(text[0]))
        if found:
            function = found.group(1)
    keys = [
        route["Properties"]["RouteKey"] for route in template.of_type("AWS::ApiGatewayV2::Route").values()
    ]
    return function, keys


def connections_endpoint(port: int, host: str = "127.0.0.1") -> str:
    """What `CONNECTIONS_ENDPOINT` is locally: the HTTP server itself serves `/@connections/`."""
    return f"http://{host}:{port}"


class LiveUpdates:
    """The local WebSocket API and stream event sources; `start()` then `stop()`."""

    def __init__(
        self,
        template: Any,
        streams: Any,
        stream_arns: Mapping[str, str],
        invoke: Callable[[str, dict[str, Any]], Any],
        claims_of: Callable[[str | None], Mapping[str, str]],
        *,
        region: str = "us-east-1",
        on_failure: Callable[[str, list[Record]], None] | None = None,
    ) -> None:
        route_function, route_keys = websocket_routes(template)
        if route_function is None:
            raise ValueError("the template has no WebSocket integration (AWS::ApiGatewayV2::Integration)")
        self.route_function = route_function
        self.gateway = StreamGateway(
            route=lambda event: invoke(route_function, event),
            verify=local_verify(claims_of),
            route_keys=route_keys,
        )
        self.pollers: list[StreamPoller] = []
        for mapping in stream_mappings(template):
            arn = stream_arns.get(mapping.table)
            if arn is None:
                log.warning("%s reads %s's stream, which has none here", mapping.function, mapping.table)
                continue
            source = mapping.source(
                arn, functools.partial(invoke, mapping.function), _failure_sink(on_failure, mapping.function)
            )
            self.pollers.append(StreamPoller(streams, source, region))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, interval: float = 0.05) -> None:
        """Place the stream iterators (changes from now on are delivered) and start polling."""
        for poller in self.pollers:
            poller.start()
            thread = threading.Thread(
                target=poller.run, args=(self._stop, interval), daemon=True, name="streams"
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and close every WebSocket connection."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.gateway.close_all()


def _failure_sink(
    on_failure: Callable[[str, list[Record]], None] | None, function: str
) -> Callable[[list[Record]], None] | None:
    return None if on_failure is None else functools.partial(on_failure, function)
