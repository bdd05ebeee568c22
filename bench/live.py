"""Benchmark: the time from a Jobs table write to the `job` message at a subscribed browser (DESIGN §4b).

    .venv/bin/python -m bench.live [--connections 1,100,1000] [--changes 40]

The local live-update path, as `make run` would run it: moto server (DynamoDB and its Streams) on
a loopback port, the stream poller feeding NotifierFn, the WebSocket gateway and its `@connections`
API on another port, StreamFn for the routes, and N WebSocket clients (`websockets`), each
subscribed to a job of its own. Then, `--changes` times, one client's job is written as the
projector writes it (`JobStore`) and the clock runs until that client has the message.
Printed: p50, p99 and max per connection count; goal p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import fake_aws_environment, print_table, verdict

GOAL_P99_SECONDS = 1.0


def _handler(gateway: Any) -> type[BaseHTTPRequestHandler]:
    from local.websocket import STREAM_PATH

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.startswith(STREAM_PATH) and self.headers.get("Upgrade", "").lower() == "websocket":
                self.close_connection = True
                gateway.serve_upgrade(self.path, self.headers.items(), self.connection, self.rfile)
                return
            self._manage("GET")

        def do_POST(self) -> None:
            self._manage("POST")

        def do_DELETE(self) -> None:
            self._manage("DELETE")

        def _manage(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, data = gateway.answer_management(method, self.path, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def measure(connections: int, changes: int) -> list[float]:
    """Seconds from each write to its message, for `changes` writes among `connections` clients."""
    import tempfile
    from pathlib import Path

    import boto3
    from moto.server import ThreadedMotoServer
    from websockets.sync.client import connect

    from api.store import JobReader
    from jobstatus.events import JobStatusChanged, format_timestamp
    from local.auth import Authorizer, SigningKey, issue_token
    from local.engines import free_port
    from local.live import LiveUpdates, connections_endpoint
    from notifier.handler import NotifierDeps
    from notifier.handler import handle as notify
    from notifier.routes import StreamDeps
    from notifier.routes import handle as route
    from notifier.sender import ConnectionsApi
    from notifier.store import ConnectionStore
    from ops.template import Template
    from projector.fold import coalesce
    from projector.store import JobStore

    template = Template.read(Stage="bench")
    with ExitStack() as stack:
        port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        endpoint = f"http://127.0.0.1:{port}"
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
        # moto server's backends live in this process: fresh table names for every run.
        suffix = uuid.uuid4().hex[:8]
        jobs = {
            **template.table_definition("JobsTable"),
            "TableName": f"Jobs-bench-{suffix}",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        }
        arn = ddb.create_table(**jobs)["TableDescription"]["LatestStreamArn"]
        connections_table = f"JobStreamConnections-bench-{suffix}"
        ddb.create_table(**{**template.table_definition("ConnectionsTable"), "TableName": connections_table})
        key = SigningKey.load_or_create(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        functions: dict[str, Any] = {}
        updates = LiveUpdates(
            template,
            streams,
            {"JobsTable": arn},
            lambda name, event: functions[name](event),
            Authorizer(key.jwks()).claims_of,
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(updates.gateway))
        server.daemon_threads = True
        server.request_queue_size = max(128, connections)
        http_port = server.server_address[1]
        sender = ConnectionsApi(
            boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=connections_endpoint(http_port),
                region_name="us-east-1",
            )
        )
        table = ConnectionStore(ddb, connections_table, time.time)
        stream_deps = StreamDeps(table, JobReader(ddb, jobs["TableName"]), sender)
        notifier_deps = NotifierDeps(table, sender)
        functions["StreamFn"] = lambda event: route(event, stream_deps)
        functions["NotifierFn"] = lambda event: notify(event, notifier_deps)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        updates.start(interval=0.01)
        stack.callback(updates.stop)

        token = issue_token(key, "bench-user")
        clients = []
        for n in range(connections):
            ws = stack.enter_context(
                connect(f"ws://127.0.0.1:{http_port}/v1/stream?token={token}", open_timeout=30)
            )
            ws.send(json.dumps({"action": "subscribe", "jobIds": [f"bench-{n}"]}))
            assert json.loads(ws.recv(timeout=30))["type"] == "subscribed"
            clients.append(ws)

        writer = JobStore(ddb, jobs["TableName"], 30)
        created = datetime.now(UTC)
        rnd = random.Random(7)
        latencies = []
        for change in range(changes):
            n = rnd.randrange(connections)
            event = JobStatusChanged(
                event_id=f"00000000-0000-4000-8000-{change:012d}",
                job_id=f"bench-{n}",
                user_id="bench-user",
                status="PROCESSING",
                occurred_at=format_timestamp(created + timedelta(seconds=change + 1)),
                created_at=format_timestamp(created),
                progress=change % 101,
            )
            started = time.perf_counter()
            for batch in coalesce([("m", event)]):
                writer.write(batch)
            message = json.loads(clients[n].recv(timeout=30))
            latencies.append(time.perf_counter() - started)
            assert message["job"]["jobId"] == f"bench-{n}"
        return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="1,100,1000", help="comma-separated connection counts")
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args(argv)
    fake_aws_environment()
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rows = []
    for connections in (int(c) for c in args.connections.split(",")):
        seconds = sorted(measure(connections, args.changes))
        p99 = seconds[min(len(seconds) - 1, round(0.99 * (len(seconds) - 1)))]
        rows.append(
            [
                connections,
                len(seconds),
                f"{statistics.median(seconds) * 1000:.0f}",
                f"{p99 * 1000:.0f}",
                f"{seconds[-1] * 1000:.0f}",
                verdict(p99 <= GOAL_P99_SECONDS),
            ]
        )
    print_table(
        "Jobs table write -> job message at a subscribed client (local stack path, moto server)",
        ["connections", "changes", "p50 ms", "p99 ms", "max ms", "p99 <= 1 s"],
        rows,
    )


if __name__ == "__main__":
    main()
