"""What status publishing adds to a job: StatusPublisher on a moto bus vs direct UpdateItem on moto server.

Each job is an InvokerQueue record run by FalInvokerFn's own handler on a simulated Fal
(QUEUED → PROCESSING → COMPLETED), which defers the flush and the deletion of its record until
after its response. The figure per job is the wall time publishing adds to the job's path: the
time in the status publisher's calls (Fal and the idempotency writes are not counted). The
post-response settle (flush, hand-over of what is left to the outbox, record delete) is timed
beside it: it keeps the Lambda environment busy, not the job.
Between jobs, outside the timed region, the bus's target queue and the outbox are drained
(moto's PutEvents slows down as a queue fills) and one plain PutEvents is timed: the reference
row, what one synchronous send costs under the same conditions. Four conditions for each way:

- healthy: moto server's EventBridge (rule → SQS, so delivered events are counted) /
  moto server's DynamoDB (dynalite with BENCH_DYNAMODB_ENGINE=dynalite);
- unreachable: a closed port on 127.0.0.1;
- throttled: every call answered HTTP 400 ThrottlingException (ProvisionedThroughputExceeded
  for DynamoDB), injected as a botocore `before-send` response, so botocore parses it as real;
- half failing: each PutEvents entry fails (InternalFailure) with probability 1/2, the rest
  really delivered / each UpdateItem attempt throttled with probability 1/2.

The direct way is the seeds': one UpdateItem per transition on a default boto3 client
(standard retry mode, 3 attempts, 60 s timeouts); a write that still fails raises, which in
the seeds' code fails the job. Its fault runs put all jobs in flight at once (each job's
writes still in order), because botocore's backoff makes each faulty call last seconds and
200 of them one after another would take an hour; its healthy run is sequential, like ours.

Usage: .venv/bin/python -m bench.producers [--jobs 200] [--fal-ms 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from bench.common import fake_aws_environment, print_table, verdict

HEALTHY_P99_MS = 5.0
FAULT_P99_MS = 100.0
BUS = "jobs-bench"
IDEMPOTENCY_TABLE = "bench-idempotency"


def flush_seconds() -> float:
    """FalInvokerFn's default flush budget after the response (STATUS_FLUSH_AFTER_RESPONSE_SECONDS)."""
    from producers.settings import ProducerSettings

    default = ProducerSettings.model_fields["status_flush_after_response_seconds"].default
    return float(default)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def inject_error(client: Any, operation: str, code: str, *, probability: float = 1.0, seed: int = 7) -> None:
    """Answer `operation` with HTTP 400 `code` (with `probability`), before anything is sent."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    rng = random.Random(seed)
    lock = threading.Lock()
    service_id = client.meta.service_model.service_id.hyphenize()

    def respond(request: Any, **_: Any) -> Any:
        with lock:
            fail = rng.random() < probability
        if not fail:
            return None
        body = json.dumps({"__type": code, "message": "injected by bench/producers.py"}).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return AWSResponse(request.url, 400, headers, _Raw(body))

    client.meta.events.register(f"before-send.{service_id}.{operation}", respond)


class HalfFailingEvents:
    """An EventBridge client where each entry fails (InternalFailure) with probability 1/2."""

    def __init__(self, client: Any, seed: int = 11) -> None:
        self._client = client
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def put_events(self, *, Entries: Sequence[Any]) -> Any:  # `Entries`: boto3's name
        with self._lock:
            fail = [self._rng.random() < 0.5 for _ in Entries]
        passing = [e for e, f in zip(Entries, fail, strict=True) if not f]
        real = iter(self._client.put_events(Entries=passing)["Entries"]) if passing else iter(())
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} if f else next(real) for f in fail
        ]
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


@dataclass
class Outcome:
    """One scenario's figures. `per_job_ms`: what publishing adds to the job's path (the target);
    `post_ms`: the publisher's post-response settle (flush + record delete), off the job's path.
    The direct way has no post-response phase (`post_ms` empty, `deleted` None)."""

    way: str
    scenario: str
    per_job_ms: list[float]
    finished: int
    events: int
    delivered: int
    fallback: int | None
    lost: int
    post_ms: list[float] = field(default_factory=list)
    deleted: int | None = None

    def row(self, jobs: int) -> list[object]:
        p50, p99 = percentile(self.per_job_ms, 50), percentile(self.per_job_ms, 99)
        target = HEALTHY_P99_MS if self.scenario == "healthy" else FAULT_P99_MS
        met = p99 <= target and self.finished == jobs and self.lost == 0
        return [
            self.way,
            self.scenario,
            f"{p50:.2f} / {p99:.2f}",
            f"{max(self.per_job_ms):.1f}",
            _p50_p99(self.post_ms),
            f"{100 * self.finished / jobs:.0f}%",
            self.events,
            self.delivered,
            "-" if self.fallback is None else self.fallback,
            self.lost,
            "-" if self.deleted is None else self.deleted,
            f"≤{target:g}",
            verdict(met),
        ]


def _p50_p99(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}"


def drain(sqs: Any, url: str) -> list[str]:
    """Every eventId in a queue (message bodies are EventBridge events or outbox entries)."""
    ids: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return ids
        for message in messages:
            body = json.loads(message["Body"])
            detail = body["detail"] if "detail" in body else json.loads(body["Detail"])
            ids.append(detail["eventId"])
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def run_publisher(
    scenario: str,
    events_client: Any,
    sqs: Any,
    dynamodb: Any,
    queues: dict[str, str],
    jobs: int,
    fal_seconds: float,
    floor_client: Any,
) -> tuple[Outcome, list[float]]:
    """Run `jobs` jobs through FalInvokerFn's own handler (one Lambda environment), one after another.

    `producers.invoker.handler.handle` runs each InvokerQueue record with a runner built by its
    `make_runner` on a simulated Fal (`local.fal_sim.SimulatedFal`, no failures), this scenario's
    EventBridge client and moto's SQS and DynamoDB (the idempotency table): the benchmark cannot
    drift from the function. On the job's path, the time spent in the status publisher's calls is
    counted (the Fal waits and the idempotency writes are not); after the response (held, then
    run, as the Lambda extension runs it; the next job starts only after it): the settle. Between
    jobs, outside the timed region, the delivered and outbox queues are drained (moto's
    PutEvents slows down as the rule's target queue fills) and one synchronous PutEvents of one
    entry is timed on `floor_client`.
    """
    from jobstatus.events import REQUEST_DETAIL_TYPE, SOURCE_SUBMIT, utc_now
    from local.fal_sim import SimulatedFal
    from local.functions import LambdaContext, held_after_response
    from producers.invoker.handler import handle, make_runner
    from producers.invoker.records import FinishedRecords
    from producers.publishing.afterresponse import AfterResponse
    from producers.settings import ProducerSettings

    name = scenario.replace(" ", "-")
    invoker = sqs.create_queue(QueueName=f"bench-invoker-{name}")["QueueUrl"]
    settings = ProducerSettings(
        event_bus_name=BUS,
        outbox_queue_url=queues["outbox"],
        idempotency_table_name=IDEMPOTENCY_TABLE,
        fal_poll_seconds=max(fal_seconds / 5, 0.001),
    )
    runner = make_runner(
        SimulatedFal(fal_seconds, 0.0),
        settings,
        events=events_client,
        sqs=sqs,
        dynamodb=dynamodb,
        metrics_sink=None,
    )
    emitted: list[str] = []
    spent = [0.0]  # seconds in the publisher's calls, this job
    for method in ("build", "publish"):
        original = getattr(runner.publisher, method)

        def timed(*args: Any, _original: Any = original, _method: str = method, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
                if _method == "publish":
                    emitted.append(args[0].event.event_id)

        setattr(runner.publisher, method, timed)
    statuses: list[str] = []
    run_job = runner.handle

    def handled(job: Any, context: Any) -> dict[str, Any]:
        outcome = run_job(job, context)
        statuses.append(str(outcome.get("status")))
        return outcome

    runner.handle = handled  # type: ignore[method-assign]
    records = FinishedRecords(sqs, invoker)
    after = AfterResponse()
    invoke = after.wrap(handle)  # as `lambda_handler` is wrapped by the process's after_response
    delivered: set[str] = set()
    outboxed: set[str] = set()
    path_ms: list[float] = []
    post_ms: list[float] = []
    floor: list[float] = []
    for n in range(jobs):
        detail = {"jobId": f"bench-{name}-{n}", "userId": "bench-user", "createdAt": utc_now()}
        request = {"detail-type": REQUEST_DETAIL_TYPE, "source": SOURCE_SUBMIT, "id": str(uuid.uuid4())}
        body = {**request, "detail": {**detail, "model": "fal-ai/bench", "input": {"prompt": "p"}}}
        sqs.send_message(QueueUrl=invoker, MessageBody=json.dumps(body))
        message = sqs.receive_message(QueueUrl=invoker, MaxNumberOfMessages=1)["Messages"][0]
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
        }
        context = LambdaContext(
            "bench-fal-invoker", 512, "arn:aws:lambda:::function:bench", time.monotonic() + 900
        )
        spent[0] = 0.0
        with held_after_response(after) as held:
            invoke({"Records": [record]}, cast(Any, context), runner, records, after)
        path_ms.append(spent[0] * 1000)
        start = time.perf_counter()
        held.run()  # after the response: the extension's flush and delete
        post_ms.append((time.perf_counter() - start) * 1000)
        # Outside the timed region: keep moto at its floor, and time the floor itself.
        delivered.update(drain(sqs, queues["delivered"]))
        outboxed.update(drain(sqs, queues["outbox"]))
        floor.append(put_once_ms(floor_client))
    finished = sum(1 for status in statuses if status == "COMPLETED")
    runner.publisher.close()
    time.sleep(0.1)  # a call abandoned by a deadline may still land: count it
    delivered.update(drain(sqs, queues["delivered"]))
    outboxed.update(drain(sqs, queues["outbox"]))
    left = messages_left(sqs, invoker)
    sent = set(emitted)
    outcome = Outcome(
        "publisher",
        scenario,
        path_ms,
        finished,
        len(sent),
        len(sent & delivered),
        len(sent & outboxed),
        len(sent - delivered - outboxed),
        post_ms,
        jobs - left,
    )
    return outcome, floor


def messages_left(sqs: Any, url: str) -> int:
    """How many messages are in a queue, visible or in flight."""
    names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def run_direct(
    scenario: str, client: Any, table: str, jobs: int, fal_seconds: float, concurrent: bool
) -> Outcome:
    """The seeds' way: an UpdateItem per transition; a failed write fails the job."""
    from jobstatus.events import utc_now

    lock = threading.Lock()
    per_job: list[float] = []
    counts = {"finished": 0, "delivered": 0, "lost": 0}

    def one(n: int) -> None:
        job_id = f"direct-{scenario}-{n}"
        spent = 0.0
        ok = True
        for status, pause in (("QUEUED", fal_seconds / 5), ("PROCESSING", fal_seconds), ("COMPLETED", 0.0)):
            start = time.perf_counter()
            try:
                client.update_item(
                    TableName=table,
                    Key={"jobId": {"S": job_id}},
                    UpdateExpression="SET #s = :s, updatedAt = :u",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": status}, ":u": {"S": utc_now()}},
                )
                with lock:
                    counts["delivered"] += 1
            except Exception:  # the seeds' code lets it fail the job; later transitions never happen
                with lock:
                    counts["lost"] += 1
                ok = False
            spent += time.perf_counter() - start
            if not ok:
                break
            time.sleep(pause)
        with lock:
            per_job.append(spent * 1000)
            counts["finished"] += ok

    if concurrent:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, range(jobs)))
    else:
        for n in range(jobs):
            one(n)
    return Outcome(
        "direct",
        scenario,
        per_job,
        counts["finished"],
        jobs * 3,
        counts["delivered"],
        None,
        jobs * 3 - counts["delivered"],
    )


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    """Wait until something listens on 127.0.0.1:`port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"moto server did not start on port {port}")


def put_once_ms(client: Any) -> float:
    """One synchronous PutEvents of one COMPLETED entry to the bus, in ms: the floor of a flush.

    The entry is a real status event, so it matches the rule as the publisher's do: moto delivers
    rule targets inside PutEvents (AWS does it after answering), and the floor must pay that too.
    """
    from jobstatus.events import SOURCE_FAL_INVOKER, Status, utc_now
    from producers.publishing.entries import JobRef, build_status_entry

    job = JobRef(f"bench-floor-{uuid.uuid4()}", "bench-user", utc_now())
    entry = build_status_entry(
        job, Status.COMPLETED, bus_name=BUS, source=SOURCE_FAL_INVOKER, output_url="https://cdn.test/v.mp4"
    ).entry
    start = time.perf_counter()
    client.put_events(Entries=[entry])
    return (time.perf_counter() - start) * 1000


def setup_moto(endpoint: str) -> tuple[Any, Any, dict[str, str]]:
    """A bus with a rule delivering every JobStatusChanged to a queue, the outbox queue and the
    idempotency table; the SQS and DynamoDB clients."""
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    events = boto3.client("events", endpoint_url=endpoint)
    events.create_event_bus(Name=BUS)
    delivered = sqs.create_queue(QueueName="bench-delivered")["QueueUrl"]
    outbox = sqs.create_queue(QueueName="bench-outbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=delivered, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="to-delivered", EventBusName=BUS, EventPattern=json.dumps({"detail-type": ["JobStatusChanged"]})
    )
    events.put_targets(Rule="to-delivered", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, dynamodb, {"delivered": delivered, "outbox": outbox}


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--fal-ms", type=float, default=10.0, help="simulated Fal wait per job")
    parser.add_argument("--publisher-only", action="store_true", help="leave out the direct way's rows")
    args = parser.parse_args(argv)
    fake_aws_environment()
    os.environ.setdefault("COLUMNS", "200")  # the table is wide; rich reads COLUMNS
    # One ERROR line per undelivered event would bury the table (the publisher still calls the logger).
    logging.disable(logging.ERROR)

    import boto3

    from bench.common import create_jobs_table, dynamodb_engine
    from local.engines import free_port
    from ops.template import Template
    from producers.aws import FAST_FAIL

    fal = args.fal_ms / 1000
    closed = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    # Its own process: an in-process moto server would take the GIL from the code being measured.
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    rows: list[list[object]] = []
    wall = time.perf_counter()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        sqs, dynamodb, queues = setup_moto(endpoint)

        def events_on(url: str) -> Any:
            return boto3.client("events", endpoint_url=url, config=FAST_FAIL)

        throttled_events = events_on(endpoint)
        inject_error(throttled_events, "PutEvents", "ThrottlingException")
        publisher_runs: list[tuple[str, Callable[[], Any]]] = [
            ("healthy", lambda: events_on(endpoint)),
            ("unreachable", lambda: events_on(closed)),
            ("throttled", lambda: throttled_events),
            ("half failing", lambda: HalfFailingEvents(events_on(endpoint))),
        ]
        floor_client = events_on(endpoint)
        floors: list[float] = []
        for scenario, make in publisher_runs:
            outcome, floor = run_publisher(
                scenario, make(), sqs, dynamodb, queues, args.jobs, fal, floor_client
            )
            rows.append(outcome.row(args.jobs))
            floors += floor
            print(f"publisher {scenario}: done at {time.perf_counter() - wall:.0f} s", file=sys.stderr)
        rows.append(
            [
                "reference",
                "1 PutEvents, no publisher",
                f"{percentile(floors, 50):.2f} / {percentile(floors, 99):.2f}",
                f"{max(floors):.1f}",
                "",
                "",
                len(floors),
                "",
                "",
                "",
                "",
                "",
                "a synchronous send",
            ]
        )
        with contextlib.nullcontext() if args.publisher_only else dynamodb_engine() as ddb_endpoint:
            if ddb_endpoint is None:
                return _print(rows, args, wall)
            template = Template.read(Stage="bench")
            healthy = boto3.client("dynamodb", endpoint_url=ddb_endpoint)  # the seeds' default client
            table = create_jobs_table(healthy, template)
            throttled_ddb = boto3.client("dynamodb", endpoint_url=ddb_endpoint)
            inject_error(throttled_ddb, "UpdateItem", "ProvisionedThroughputExceededException")
            half_ddb = boto3.client("dynamodb", endpoint_url=ddb_endpoint)
            inject_error(half_ddb, "UpdateItem", "ProvisionedThroughputExceededException", probability=0.5)
            direct_runs = [
                ("healthy", healthy, False),
                ("unreachable", boto3.client("dynamodb", endpoint_url=closed), True),
                ("throttled", throttled_ddb, True),
                ("half failing", half_ddb, True),
            ]
            for scenario, client, concurrent in direct_runs:
                rows.append(run_direct(scenario, client, table, args.jobs, fal, concurrent).row(args.jobs))
                print(f"direct {scenario}: done at {time.perf_counter() - wall:.0f} s", file=sys.stderr)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    return _print(rows, args, wall)


def _print(rows: list[list[object]], args: argparse.Namespace, wall: float) -> int:
    from bench.common import dynamodb_engine_name

    print(
        "publisher = StatusPublisher → EventBridge (moto server), outbox on SQS, as FalInvokerFn runs it: "
        "the emits on the job's path, the flush and the record's delete after the response (Lambda "
        f"extension); direct = the seeds' UpdateItem per transition on {dynamodb_engine_name()}, "
        "all on the path. "
        "landed = events on the bus (counted from the rule's queue) or items written; outbox = undelivered "
        "events found in the outbox queue; lost = in neither; records deleted = InvokerQueue records "
        "deleted after their events were settled. The target holds when p99 ≤ its bound, every job "
        "finishes and nothing is lost."
    )
    print_table(
        f"Status publishing added per job (QUEUED → PROCESSING → COMPLETED, simulated Fal "
        f"{args.fal_ms:g} ms, flush budget after the response {flush_seconds() * 1000:g} ms), "
        f"{args.jobs} jobs per row; run took {time.perf_counter() - wall:.0f} s",
        [
            "way",
            "condition",
            "added to the job p50/p99 ms",
            "max ms",
            "after the response p50/p99 ms",
            "finished",
            "events",
            "landed",
            "outbox",
            "lost",
            "records deleted",
            "p99 target",
            "target",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
