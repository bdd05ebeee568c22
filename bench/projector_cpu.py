"""Benchmark: where ProjectorFn's client CPU per event goes, side by side in one process.

    .venv/bin/python -m bench.projector_cpu [--events 3000] [--batch-size 100] [--rtt-ms 0]
        [--rounds 7]

The same deliveries as `bench.projector` (its workload and SQS batches), every variant on its own
client (ProjectorFn's `dynamodb_client()`, the round trip modelled by bench/rtt.py) against the
null engine, interleaved round by round (each round runs every variant over all the batches, the
order rotating), so the machine's load hits all alike; medians and minimums of `process_time`:

- ProjectorFn's handler with 16 and with 8 writes in flight, and one write after another;
- the same handler with a client that only records its requests: everything but botocore;
- botocore alone, sending exactly the requests the handler sent, one after another and on 16
  threads: botocore's share, without parsing, the fold or building the writes.

With `awscrt` importable (botocore then signs with the Common Runtime's SigV4, `botocore/crt/
auth.py`), also botocore alone and the handler (16 in flight) with each signer, the signer chosen
for each variant's round through `botocore.auth.AUTH_TYPE_MAPS` (a bench-only switch: botocore
looks the signer up there for every request). Run it with awscrt on `PYTHONPATH`, e.g.
`pip install --target /tmp/crtlib awscrt` and `PYTHONPATH=/tmp/crtlib`.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.common import fake_aws_environment, print_table
from bench.projector import TTL_DAYS, lambda_client, make_workload, sqs_batches
from bench.rtt import dynamodb_engine

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Variant = Callable[[], object]


class RecordingClient:
    """Answers every UpdateItem at once with an empty success, and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {}


def with_signer(signer: type, variant: Variant) -> Variant:
    """`variant` with botocore signing SigV4 requests by `signer`; the default put back after."""
    import botocore.auth

    def run() -> object:
        default = botocore.auth.AUTH_TYPE_MAPS["v4"]
        botocore.auth.AUTH_TYPE_MAPS["v4"] = signer
        try:
            return variant()
        finally:
            botocore.auth.AUTH_TYPE_MAPS["v4"] = default

    return run


def variants(
    endpoint: str, rtt: float, batches: list[dict[str, Any]], pools: dict[int, ThreadPoolExecutor]
) -> tuple[dict[str, Variant], int]:
    """The variants by name, and how many requests the handler sends for the batches."""
    import botocore.auth

    from projector.handler import ProjectorDeps, handle
    from projector.store import JobStore

    def handler(client: Any, pool: ThreadPoolExecutor | None) -> Variant:
        deps = ProjectorDeps(store=JobStore(client, "Jobs-bench", TTL_DAYS), ttl_days=TTL_DAYS, pool=pool)
        return lambda: [handle(batch, None, deps) for batch in batches]

    recording = RecordingClient()
    handler(recording, None)()
    requests = list(recording.requests)

    def alone(client: DynamoDBClient, pool: ThreadPoolExecutor | None) -> Variant:
        if pool is None:
            return lambda: [client.update_item(**request) for request in requests]
        return lambda: list(pool.map(lambda request: client.update_item(**request), requests))

    found: dict[str, Variant] = {
        "the handler, 16 in flight": handler(lambda_client(endpoint, rtt), pools[16]),
        "the handler, 8 in flight": handler(lambda_client(endpoint, rtt), pools[8]),
        "the handler, one after another": handler(lambda_client(endpoint, rtt), None),
        "the handler, a recording client (all but botocore)": handler(RecordingClient(), None),
        "botocore alone, the same requests, one after another": alone(lambda_client(endpoint, rtt), None),
        "botocore alone, the same requests, 16 threads": alone(lambda_client(endpoint, rtt), pools[16]),
    }
    crt = botocore.auth.AUTH_TYPE_MAPS["v4"]
    if crt is not botocore.auth.SigV4Auth:  # awscrt is importable: botocore signs with the CRT
        python = botocore.auth.SigV4Auth
        for name, signer in (("Python SigV4", python), ("CRT SigV4", crt)):
            found[f"botocore alone, one after another, {name}"] = with_signer(
                signer, alone(lambda_client(endpoint, rtt), None)
            )
            found[f"the handler, 16 in flight, {name}"] = with_signer(
                signer, handler(lambda_client(endpoint, rtt), pools[16])
            )
    return found, len(requests)


def main(argv: list[str] | None = None) -> int:
    """Print the side-by-side table; the exit status is 0 (timings are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000, help="deliveries, duplicates included")
    parser.add_argument("--batch-size", type=int, default=100, help="SQS batch size")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="modelled round trip")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (at least 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--freeze",
        action="store_true",
        help="gc.freeze() after the warm-up, as ProjectorFn's Lambda init does",
    )
    args = parser.parse_args(argv)
    fake_aws_environment()

    deliveries = make_workload(args.events, 4.0, args.seed, datetime.now(UTC)).deliveries
    batches = list(sqs_batches(deliveries, args.batch_size))
    events = len(deliveries)
    pools = {16: ThreadPoolExecutor(max_workers=16), 8: ThreadPoolExecutor(max_workers=8)}
    with dynamodb_engine("null") as (_, endpoint):
        found, requests = variants(endpoint, args.rtt_ms / 1000, batches, pools)
        for variant in found.values():  # connections, botocore's caches, the pools' threads
            variant()
        if args.freeze:
            gc.freeze()
        names = list(found)
        load = os.getloadavg()[0]
        spent: dict[str, list[float]] = {name: [] for name in names}
        full: dict[str, float] = dict.fromkeys(names, 0.0)  # CPU of full collections, seconds
        collecting: list[float] = []

        def full_collections(phase: str, info: dict[str, Any]) -> None:
            if info["generation"] == 2 and phase == "start":
                collecting.append(time.process_time())
            elif info["generation"] == 2 and collecting:
                full[current] += time.process_time() - collecting.pop()

        gc.callbacks.append(full_collections)
        for round_ in range(max(1, args.rounds)):
            shift = round_ % len(names)
            for current in names[shift:] + names[:shift]:
                started = time.process_time()
                found[current]()
                spent[current].append((time.process_time() - started) * 1000 / events)
        gc.callbacks.remove(full_collections)
    for pool in pools.values():
        pool.shutdown()
    print_table(
        f"Client CPU per event, side by side: {events} deliveries in batches of {args.batch_size}, "
        f"{requests} requests ({requests / events:.3f} per event), RTT {args.rtt_ms:g} ms, "
        f"{max(1, args.rounds)} rounds{', heap frozen' if args.freeze else ''}; load average {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}",
        ["variant", "median ms/event", "min ms/event", "median us per request", "full collections ms"],
        [
            [
                name,
                f"{statistics.median(values):.3f}",
                f"{min(values):.3f}",
                f"{statistics.median(values) * events / requests * 1000:.0f}",
                f"{full[name] * 1000:.0f}",
            ]
            for name, values in spent.items()
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
