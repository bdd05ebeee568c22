"""A modelled network round trip for the benchmarks, and the DynamoDB engine they run against.

On loopback an engine answers in about a millisecond, which hides what a Lambda function in AWS
waits for: every DynamoDB request costs a round trip of a few milliseconds. `RoundTrip` models
it with a botocore `before-send` hook that sleeps the round trip before each HTTP attempt.

Why a hook rather than a loopback TCP proxy: the sleep releases the GIL and costs no CPU, so
threads overlap their waits exactly as they overlap network waits, the client's CPU time
(`time.process_time`) stays the client's own (a proxy in our process would add its CPU; in
another process it would add its own loopback hops, about 0.1 ms each way), and it is one line
to switch off (RTT 0). What it does not model: TCP and TLS handshakes, bandwidth, or DynamoDB's
own variance; the engine's own time comes on top.

`dynamodb_engine()` is the one place a benchmark gets its DynamoDB endpoint from: an engine in
its own process on 127.0.0.1 (so its CPU and its GIL are not the client's). dynalite by default
when it is installed: moto server answers an UpdateItem in about 5 ms of its own, one request
at a time, so a benchmark of writes in flight on moto measures moto; dynalite (node) answers in
about 1.5 ms and serves requests concurrently. `--engine moto` (or no dynalite) runs moto server.
On this shared machine both take 15-70 ms of their own per conditional UpdateItem of a job (measured
with bench/projector.py), far more than the round trip being modelled; so the timing tables also
run on `null`: a server in its own process that answers every request at once with an empty
success (stores nothing). On it, what is timed is the client and the modelled RTT alone, as in
AWS, where DynamoDB's own time is inside the round trip; the items are checked on a real engine.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Final


class RoundTrip:
    """Sleeps `seconds` before every HTTP attempt a botocore client makes (a modelled RTT)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def attach(self, client: Any) -> Any:
        """Delay every request of `client`; the client."""
        if self.seconds > 0:
            client.meta.events.register("before-send", self._wait)
        return client

    def _wait(self, **_: Any) -> None:
        time.sleep(self.seconds)  # returns None: a value here would replace the HTTP response


NULL_ANSWERS: Final = {
    "CreateTable": {"TableDescription": {"TableStatus": "ACTIVE"}},
    "DescribeTable": {"Table": {"TableStatus": "ACTIVE"}},
    "Scan": {"Items": [], "Count": 0, "ScannedCount": 0},
}


def serve_null(port: int) -> None:
    """The null engine: every DynamoDB request answered at once, empty (`python -m bench.rtt PORT`)."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB
        disable_nagle_algorithm = True  # else headers and body wait 40 ms for a delayed ACK

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            body = json.dumps(NULL_ANSWERS.get(operation, {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Answer).serve_forever()


@contextlib.contextmanager
def dynamodb_engine(name: str = "dynalite") -> Iterator[tuple[str, str]]:
    """A DynamoDB engine in its own process on a free loopback port: (its name, its endpoint URL).

    `null` is this module's; moto and dynalite come from `bench.common.dynamodb_engine` (dynalite
    falls back to moto server where node is missing).
    """
    from bench.common import dynamodb_engine as real_engine
    from local.engines import free_port

    if name != "null":
        if name == "dynalite" and shutil.which("node") is None:
            name = "moto"
        with real_engine(name) as endpoint:
            yield ("moto server" if name == "moto" else name), endpoint
        return
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.rtt", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the null engine did not start") from None
                time.sleep(0.1)
        yield name, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    serve_null(int(sys.argv[1]))
