"""Webhook deliveries, measured: deliveries per second through the sender, and the time from the Jobs
table's write to the receiver's verified delivery (p50/p99).

Everything local: moto server (its own process) on 127.0.0.1 for DynamoDB and its Streams (the Jobs table and
the deliveries ledger, over HTTP), an in-memory delivery queue, and a real HTTP receiver on 127.0.0.1
verifying each delivery with `standardwebhooks.Webhook.verify`. The stream is read with
GetRecords as fast as the loop can (Lambda's own polling adds up to a second in AWS; not here).

    .venv/bin/python -m bench.webhooks [--deliveries 200] [--jobs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import Stopwatch, fake_aws_environment, print_table

MASTER = b"bench-master-secret-0123456789abcdef0123456789"
USER = "bench-user"


class VerifyingReceiver:
    """An HTTP receiver on a free 127.0.0.1 port that verifies each delivery; arrival times by webhook-id."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks import Webhook

        verifier = Webhook(secret)
        self.verified: dict[str, float] = {}
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verifier.verify(body, headers)
                except Exception:
                    receiver.refused += 1
                    self.send_response(400)
                else:
                    receiver.verified[headers["webhook-id"]] = time.perf_counter()
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MemoryQueue:
    """The delivery queue as the functions see it; messages kept in a list."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.dead: list[str] = []

    def send(self, deliveries: Any) -> list[int]:
        self.bodies.extend(d.to_message() for d in deliveries)
        return []

    def hide(self, receipt_handle: str, seconds: int) -> None:
        pass

    def dead_letter(self, body: str, reason: str) -> None:
        self.dead.append(body)

    def drain(self) -> list[dict[str, Any]]:
        records = [
            {"messageId": str(n), "receiptHandle": str(n), "body": b} for n, b in enumerate(self.bodies)
        ]
        self.bodies = []
        return records


def wait_for_port(port: int, seconds: float = 30) -> None:
    """Return once something listens on 127.0.0.1:`port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"moto server did not listen on port {port}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    fake_aws_environment()

    import boto3

    from jobstatus.codec import to_item
    from local.engines import free_port
    from ops.template import Template
    from webhooks import dispatcher, sender_handler
    from webhooks.dispatch import delivery_of
    from webhooks.http import post
    from webhooks.model import Delivery
    from webhooks.sender import Sender
    from webhooks.signing import delivery_body, user_secret
    from webhooks.store import DeliveryLedgerStore

    port = free_port()
    # Its own process: in this one it would share the GIL with the sender it serves.
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    receiver = VerifyingReceiver(user_secret(MASTER, USER))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
        template = Template.read(Stage="bench")
        ledger_table = template.table_definition("WebhookDeliveriesTable")
        ddb.create_table(**ledger_table)
        jobs_table = {
            **template.table_definition(),
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        }
        stream_arn = ddb.create_table(**jobs_table)["TableDescription"]["LatestStreamArn"]
        queue = MemoryQueue()
        sender = Sender(
            ledger=DeliveryLedgerStore(ddb, ledger_table["TableName"]),
            secret_for=functools.lru_cache(maxsize=1024)(functools.partial(user_secret, MASTER)),
            poster=post,
            allow_local=True,
        )
        send_deps = sender_handler.Dependencies(sender, queue)  # type: ignore[arg-type]

        def item(job_id: str) -> dict[str, Any]:
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            return {
                "jobId": job_id,
                "userId": USER,
                "createdAt": now,
                "updatedAt": now,
                "status": "COMPLETED",
                "version": f"0001#3#{now}#{uuid.uuid4()}",
                "outputUrl": f"https://cdn.example.com/{job_id}.mp4",
                "request": {"model": "fal-ai/x", "input": {"prompt": "a cat"}, "webhook": receiver.url},
            }

        # A. Deliveries per second through the sender (batches of 10, delivered concurrently).
        deliveries = []
        for _ in range(args.deliveries):
            job = item(f"bench-{uuid.uuid4().hex[:12]}")
            deliveries.append(
                Delivery(job["jobId"], USER, receiver.url, job["version"], "COMPLETED", delivery_body(job))
            )
        with Stopwatch() as watch:
            for start in range(0, len(deliveries), 10):
                queue.send(deliveries[start : start + 10])
                answer = sender_handler.handle({"Records": queue.drain()}, send_deps)
                assert answer["batchItemFailures"] == [], answer
        throughput = len(deliveries) / watch.seconds

        # B. Jobs table write -> stream -> dispatcher -> queue -> sender -> verified at the receiver.
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]
        latencies = []
        dispatch_deps = dispatcher.Dependencies(queue)  # type: ignore[arg-type]
        for _ in range(args.jobs):
            job = item(f"bench-{uuid.uuid4().hex[:12]}")
            started = time.perf_counter()
            ddb.put_item(TableName=jobs_table["TableName"], Item=to_item(job))
            records: list[dict[str, Any]] = []
            while not records:
                answer = streams.get_records(ShardIterator=iterator)
                iterator = answer["NextShardIterator"]
                records = answer["Records"]
            assert all(delivery_of(r) is not None for r in records)
            dispatcher.handle({"Records": records}, dispatch_deps)
            sender_handler.handle({"Records": queue.drain()}, send_deps)
            webhook_id = f"{job['jobId']}.{job['version']}"
            latencies.append((receiver.verified[webhook_id] - started) * 1000)
        assert receiver.refused == 0 and queue.dead == []
        print_table(
            "Webhooks (moto server on 127.0.0.1, real HTTP receiver verifying with standardwebhooks)",
            ["measure", "value"],
            [
                [
                    f"deliveries/s through the sender ({args.deliveries} deliveries, batches of 10)",
                    f"{throughput:.0f}",
                ],
                [
                    f"Jobs write -> verified delivery p50 ({args.jobs} jobs)",
                    f"{statistics.median(latencies):.1f} ms",
                ],
                ["Jobs write -> verified delivery p99", f"{percentile(latencies, 0.99):.1f} ms"],
                [
                    "verified deliveries / refused by the receiver",
                    f"{len(receiver.verified)} / {receiver.refused}",
                ],
            ],
        )
    finally:
        receiver.close()
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
