"""A real webhook receiver for tests: http.server on a free 127.0.0.1 port, verifying every delivery
with the `standardwebhooks` library's own `Webhook.verify`, as a customer would.

What it answers is a plan: `plan(webhook_id, n)` (n = how many times this id has arrived, from 1)
names an action: "ok", "500", "410", "slow" (answers after `slow_seconds`), "garbage" (bytes that are
not HTTP), "redirect" (307 to /moved, which records any request that follows it), "big" (200 with
a 200 KiB body), "drop" (closes without an answer).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

Plan = Callable[[str, int], str]
BIG_BODY_BYTES = 200 * 1024


@dataclass
class Arrival:
    """One request as the receiver saw it."""

    webhook_id: str
    action: str
    verified: bool
    payload: Any
    headers: dict[str, str]
    path: str
    at: float


@dataclass
class Receiver:
    """The server, its plan, and everything it received (thread-safe)."""

    secret: str
    plan: Plan = lambda _id, _n: "ok"
    slow_seconds: float = 1.5
    arrivals: list[Arrival] = field(default_factory=list)
    followed_redirects: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if self.path != "/hook":
                    receiver.followed_redirects.append(self.path)
                    self.send_response(200)
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                webhook_id = headers.get("webhook-id", "")
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError as error:
                    payload, verified = str(error), False
                with receiver._lock:
                    n = 1 + sum(1 for a in receiver.arrivals if a.webhook_id == webhook_id)
                    action = receiver.plan(webhook_id, n) if verified else "400"
                    receiver.arrivals.append(
                        Arrival(webhook_id, action, verified, payload, headers, self.path, time.monotonic())
                    )
                self._act(action)

            def _act(self, action: str) -> None:
                if action == "garbage":
                    self.wfile.write(b"\x00\x01 certainly not HTTP \xff\r\n\r\n")
                    self.close_connection = True
                    return
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "slow":
                    time.sleep(receiver.slow_seconds)
                    action = "ok"
                if action == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "/moved")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(BIG_BODY_BYTES))
                    self.end_headers()
                    with contextlib.suppress(OSError):  # the sender stops reading at 64 KiB and hangs up
                        self.wfile.write(b"x" * BIG_BODY_BYTES)
                    return
                status = {"ok": 204, "500": 500, "410": 410, "400": 400}[action]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (the port refuses connections until `start` again)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Arrival]:
        """Verified arrivals the receiver answered 2xx to, in arrival order."""
        with self._lock:
            return [a for a in self.arrivals if a.verified and a.action in ("ok", "slow", "big")]


def payload_version(arrival: Arrival) -> str:
    """The version an arrival carries (its webhook-id is `{jobId}.{version}`)."""
    return arrival.webhook_id.split(".", 1)[1]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
