"""The whole system on one machine: engines, resources from the template, functions, HTTP API.

`LocalStack.start()` brings up moto server (EventBridge and SQS in this process; DynamoDB in memory
in a moto process of its own, or dynalite, or the user's own engine), every resource of
`template.yaml`, the Jobs table rebuilt from the archive copy (`archive.jsonl`, the truth), the
functions (imported in this process, fed by SQS pollers or the HTTP gateway as AWS feeds them), a
simulated Fal unless `FAL_KEY` is set, and the HTTP API. `stop()` undoes it all, in reverse order;
the archive and waiting messages are kept in the data folder for the next start.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from local.apigw import Route, gateway_responses_from_template, routes_from_template
from local.auth import Authorizer, SigningKey, issue_token
from local.engines import Dynalite, EngineError, MotoProcess, MotoServer, external_endpoint
from local.functions import (
    FunctionSpec,
    FunctionTimeout,
    drop_unpublished_metrics,
    functions_from_template,
    held_after_response,
    log_as,
)
from local.persistence import (
    ARCHIVE_FILE,
    QUEUES_FILE,
    ArchiveKeeper,
    restore_jobs,
    restore_queues,
    save_queues,
)
from local.poller import SqsPoller
from local.resources import StackResources, kept_secret_values, provision
from local.server import DEV_USER, Gateway, HttpServer, LocalEndpoints
from ops.template import TEMPLATE_PATH, Template

log = logging.getLogger(__name__)

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"  # moto's default account; the template's ARNs use the same
STACK_FILE: Final = "stack.json"
LOCAL_USER_POOL_ARN: Final = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_jobstatuslocal"
# Concurrent invocations per SQS event source when the template sets no MaximumConcurrency: Lambda
# scales out, and a single thread would run the invoker's long jobs one after another.
DEFAULT_POLLER_CONCURRENCY: Final = 4
# The producers' deadlines are tuned for AWS (PutEvents answers in milliseconds there). moto and
# dynalite on a busy laptop can take longer than a second, so the local stack gives them
# more time unless these variables are set already. Only the deadlines change, not the code.
MAX_PROBLEMS_SHOWN: Final = 20  # bad archive lines printed at start; the rest are counted
LOCAL_DEADLINES: Final = {
    "SUBMIT_PUBLISH_SECONDS": "5",
    "STATUS_FLUSH_SECONDS": "2",
    "STATUS_FLUSH_AFTER_RESPONSE_SECONDS": "2",
    "PUBLISH_CONNECT_TIMEOUT_SECONDS": "2",
    "PUBLISH_READ_TIMEOUT_SECONDS": "5",
}


@dataclass
class StackConfig:
    """How to run the local stack."""

    port: int = 3000
    data_dir: Path = field(default_factory=lambda: Path(".local"))
    stage: str = "dev"
    fal_latency: float = 2.0  # seconds a simulated Fal job takes, on average
    fal_failure_rate: float = 0.1
    dynamodb_engine: str = "moto"  # or "dynalite"; AWS_ENDPOINT_URL_DYNAMODB overrides both
    verbose: bool = False
    template_path: Path | None = None
    allow_local_webhooks: bool = False  # plain http and loopback webhook URLs (WEBHOOKS_ALLOW_LOCAL)


@dataclass
class Engines:
    """Endpoints of the running engines."""

    moto: str
    dynamodb: str
    dynamodb_engine: str  # "moto", "dynalite" or "AWS_ENDPOINT_URL_DYNAMODB (your own engine)"


class FunctionRunner:
    """Imports and invokes the template's functions in this process, with Lambda-like contexts."""

    def __init__(self, specs: dict[str, FunctionSpec]):
        self.specs = specs
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._lock = threading.Lock()
        self._workers: set[threading.Thread] = set()

    def handler(self, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        """The function's handler, imported on first use (its cold start)."""
        with self._lock:
            if logical_id not in self._handlers:
                self._handlers[logical_id] = self.specs[logical_id].load()
            return self._handlers[logical_id]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for invocations still running (or finishing their post-response work) to end."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def forget(self) -> None:
        """Clear the cold-start caches (`dependencies()`) of every handler module imported."""
        with self._lock:
            for logical_id in self._handlers:
                module = sys.modules.get(self.specs[logical_id].handler.rpartition(".")[0])
                cached = getattr(module, "dependencies", None)
                if callable(getattr(cached, "cache_clear", None)):
                    cached.cache_clear()  # type: ignore[union-attr]
            self._handlers.clear()

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Call the function with `event` and a context whose clock runs down from its timeout.

        As Lambda does, an invocation still running at its timeout is a failure
        (`FunctionTimeout`): a poller's batch comes back after its visibility timeout, the API
        answers 504. Python cannot stop the thread, so it finishes in the background. What the
        handler deferred until after its response (`producers.publishing.afterresponse`) runs on the same
        thread once the response is handed back, as a Lambda extension runs it.
        """
        spec = self.specs[logical_id]
        handler = self.handler(logical_id)
        context = spec.context()
        outcome: dict[str, Any] = {}
        answered = threading.Event()

        def run() -> None:
            log_as(context)
            try:
                with held_after_response() as held:
                    try:
                        outcome["result"] = handler(event, context)
                    except BaseException as error:  # handed to the caller's thread below
                        outcome["error"] = error
                answered.set()
                held.run()
            finally:
                drop_unpublished_metrics()
                with self._lock:
                    self._workers.discard(threading.current_thread())

        worker = threading.Thread(target=run, name=f"{logical_id}-{context.aws_request_id[:8]}", daemon=True)
        with self._lock:
            self._workers.add(worker)
        worker.start()
        if not answered.wait(spec.timeout):
            raise FunctionTimeout(f"{logical_id} timed out after {spec.timeout} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")


class LocalStack:
    """Everything `jobstatus local` runs; `start()` then `stop()` (also a context manager)."""

    def __init__(self, config: StackConfig, template: Template | None = None):
        self.config = config
        self.data_dir = config.data_dir.resolve()
        # Locally the stack makes its own REST API (/v1 and a Cognito authorizer), as a stage
        # without an existing API does: that is what gives the routes their full paths.
        parameters = {
            "Stage": config.stage,
            "CreateRestApi": "true",
            "CognitoUserPoolArn": LOCAL_USER_POOL_ARN,
        }
        self.template = template or Template.read(config.template_path or TEMPLATE_PATH, **parameters)
        self.template.region, self.template.account = REGION, ACCOUNT
        self.engines: Engines | None = None
        self.resources = StackResources()
        self.functions: dict[str, FunctionSpec] = {}
        self.runner: FunctionRunner | None = None
        self.pollers: dict[str, SqsPoller] = {}
        self.routes: list[Route] = []
        self.http: HttpServer | None = None
        self.signing_key: SigningKey | None = None
        self.archive: ArchiveKeeper | None = None
        self.fal_mode = "none"
        self._moto: MotoServer | None = None
        self._dynamodb: Dynalite | MotoProcess | None = None
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self._uninstall_fal: Callable[[], None] | None = None
        self.notes: list[str] = []
        self.live: Any = None  # local.live.LiveUpdates while live updates run

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Bring everything up; on any failure, what was started is stopped again."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._check_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.engines = self._start_engines()
        self._point_botocore_at(self.engines)
        import boto3
        from botocore.config import Config

        # Every poller thread shares the SQS client: give it a connection for each of them.
        pool = Config(max_pool_connections=64)
        self._clients = {
            "dynamodb": boto3.client("dynamodb", region_name=REGION),
            "sqs": boto3.client("sqs", region_name=REGION, config=pool),
            "events": boto3.client("events", region_name=REGION),
        }
        # Webhooks (DESIGN §4c): the master secret kept in the data folder; local URLs only when asked.
        if self.config.allow_local_webhooks:
            self._set_env("WEBHOOKS_ALLOW_LOCAL", "true")
            self.notes.append("webhooks may call plain http and loopback URLs (--allow-local-webhooks)")
        self.resources = provision(
            self.template,
            self._clients["dynamodb"],
            self._clients["sqs"],
            self._clients["events"],
            secret_values=kept_secret_values(self.template, self.data_dir),
        )
        self._keep_archive()
        self._restore_jobs()
        restored = restore_queues(self._clients["sqs"], self.resources.queues, self.data_dir / QUEUES_FILE)
        if restored:
            self.notes.append(f"{restored} queued messages restored from the last run")
        self.functions = functions_from_template(self.template)
        self._set_function_environment()
        self.fal_mode = self._install_fal()
        self.runner = FunctionRunner(self.functions)
        self._start_pollers()
        self.signing_key = SigningKey.load_or_create(self.data_dir)
        self.routes = routes_from_template(self.template)
        if not self.routes:
            self.notes.append("template.yaml has no API Gateway methods yet: the HTTP API has no routes")
        gateway = Gateway(
            self.routes,
            Authorizer(self.signing_key.jwks()),
            self.runner.invoke,
            LocalEndpoints(
                jwks=self.signing_key.jwks,
                dev_token=lambda: self.token(DEV_USER),
                describe=self.describe,
                set_source_enabled=self.set_source_enabled,
                kill_source=self.kill_source,
            ),
            gateway_responses_from_template(self.template),
        )
        self.http = HttpServer(gateway, self.config.port)
        self._start_live(self.http)
        self.http.start()
        # Whole or absent, never half-written: the command line and the tests read it as soon
        # as it exists (a reader once found it empty).
        written = self.data_dir / f"{STACK_FILE}.tmp"
        written.write_text(json.dumps(self.describe(), indent=2) + "\n")
        os.replace(written, self.data_dir / STACK_FILE)

    def stop(self) -> None:
        """Stop everything that runs, newest first; keep the archive and waiting messages."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("live updates", self._stop_live),
            ("HTTP API", self._stop_http),
            ("pollers", self._stop_pollers),
            ("archive copy", self._stop_archive),
            ("queue save", self._save_queues),
            ("moto server", self._stop_moto),
            ("DynamoDB engine", self._stop_dynamodb),
            ("functions", self._unload_functions),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping the %s failed", name)
        (self.data_dir / STACK_FILE).unlink(missing_ok=True)
        self._restore_env()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_port(self) -> None:
        # Before anything starts: a taken port should cost a second, not the engines' start-up.
        if not self.config.port:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.config.port))
            except OSError as error:
                raise OSError(
                    f"port {self.config.port} on 127.0.0.1 is in use; choose another: PORT=3001 make run"
                ) from error

    # --- engines -----------------------------------------------------------------------------

    def _start_engines(self) -> Engines:
        """moto server always (EventBridge, SQS); DynamoDB on it, on dynalite, or on the user's engine.

        Raises `EngineError` (one line, naming the engine and `AWS_ENDPOINT_URL_DYNAMODB`) when
        an engine does not start in time.
        """
        self._moto = MotoServer().start()
        self._moto.reset()  # start empty, as a process of its own would
        moto = self._moto.endpoint
        if own := external_endpoint():
            self.notes.append(f"DynamoDB: your own engine at {own} (AWS_ENDPOINT_URL_DYNAMODB is set)")
            return Engines(moto, own, "AWS_ENDPOINT_URL_DYNAMODB (your own engine)")
        if self.config.dynamodb_engine == "dynalite":
            self._dynamodb = Dynalite().start()
            return Engines(moto, self._dynamodb.endpoint, "dynalite")
        if self.config.dynamodb_engine != "moto":
            raise EngineError(f"unknown DynamoDB engine {self.config.dynamodb_engine!r}: moto or dynalite")
        # DynamoDB on a moto server of its own: see MotoProcess.
        self._dynamodb = MotoProcess().start()
        return Engines(moto, self._dynamodb.endpoint, "moto")

    def _set_env(self, name: str, value: str) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _point_botocore_at(self, engines: Engines) -> None:
        # Local engines accept any credentials; fixed fake ones make sure nothing reaches AWS.
        for name, value in {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": engines.moto,
            "AWS_ENDPOINT_URL_DYNAMODB": engines.dynamodb,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": engines.moto,
            "AWS_ENDPOINT_URL_SQS": engines.moto,
        }.items():
            self._set_env(name, value)
        os.environ.pop("AWS_PROFILE", None)

    def _stop_moto(self) -> None:
        moto, self._moto = self._moto, None
        if moto is not None:
            moto.stop()

    def _stop_dynamodb(self) -> None:
        dynamodb, self._dynamodb = self._dynamodb, None
        if dynamodb is not None:
            dynamodb.stop()

    # --- archive and queues across restarts --------------------------------------------------

    def _keep_archive(self) -> None:
        if not self.resources.archives:
            return
        logical_id = next(iter(self.resources.archives))
        name = self.template.physical_name(logical_id)
        self.archive = ArchiveKeeper(self.data_dir / ARCHIVE_FILE, name, ACCOUNT, REGION)
        if restored := self.archive.restore():
            self.notes.append(f"{restored} archived events restored from {self.archive.path}")
        self.archive.start()

    def _restore_jobs(self) -> None:
        # The Jobs table is derived state: fold the archive copy into it with the rebuild's own
        # code (same fold, same writer), before any poller runs.
        path = self.data_dir / ARCHIVE_FILE
        table = self.resources.tables.get("JobsTable")
        if table is None:
            return
        if not path.exists():
            self.notes.append(f"Jobs table starts empty: no {path.name} yet to restore it from")
            return
        started = time.monotonic()
        restored = restore_jobs(path, self._clients["dynamodb"], table, self.template)
        seconds = time.monotonic() - started
        self.notes.append(
            f"Jobs table restored from {path.name}: {restored.jobs} jobs from {restored.events} events "
            f"in {seconds:.1f} s"
        )
        print(f"local: {self.notes[-1]}", flush=True)
        for problem in restored.problems[:MAX_PROBLEMS_SHOWN]:
            print(f"local: {path.name} line {problem.line} skipped: {problem.reason}", flush=True)
        if len(restored.problems) > MAX_PROBLEMS_SHOWN:
            more = len(restored.problems) - MAX_PROBLEMS_SHOWN
            print(f"local: ... and {more} more lines skipped", flush=True)

    def _stop_archive(self) -> None:
        archive, self.archive = self.archive, None
        if archive is not None:
            archive.stop()

    def _save_queues(self) -> None:
        if self._moto is None or not self.resources.queues:
            return
        saved = save_queues(self.resources.queues.values(), self.data_dir / QUEUES_FILE, ACCOUNT, REGION)
        if saved:
            print(f"local: {saved} queued messages saved in {self.data_dir / QUEUES_FILE} for the next start")

    # --- functions ---------------------------------------------------------------------------

    def _set_function_environment(self) -> None:
        # Every function runs in this one process, so their variables share os.environ: the union
        # of Globals and each function's own. A name two functions set differently is reported.
        merged: dict[str, str] = {}
        for spec in self.functions.values():
            for name, value in spec.environment.items():
                if name in merged and merged[name] != value:
                    self.notes.append(f"{name} differs between functions; {spec.logical_id}'s value is used")
                merged[name] = value
        if not self.config.verbose:
            merged["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            merged["POWERTOOLS_METRICS_DISABLED"] = "true"
        merged["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here
        for name, value in LOCAL_DEADLINES.items():
            if name not in os.environ:
                merged[name] = value
        for name, value in merged.items():
            self._set_env(name, value)

    def _install_fal(self) -> str:
        from local.fal_sim import install_simulated_fal

        if os.environ.get("FAL_KEY"):
            return "fal.ai (FAL_KEY is set)"
        if "FalInvokerFn" not in self.functions:
            return "none (the template has no FalInvokerFn)"
        # Poll the simulated queue often enough that its short jobs are seen finishing promptly.
        self._set_env("FAL_POLL_SECONDS", f"{max(0.1, min(2.0, self.config.fal_latency / 5)):g}")
        description, self._uninstall_fal = install_simulated_fal(
            self.config.fal_latency, self.config.fal_failure_rate
        )
        return description

    def _start_pollers(self) -> None:
        assert self.runner is not None
        for logical_id, spec in self.functions.items():
            for source in spec.sqs_sources:
                queue = self.resources.queues.get(source.queue)
                if queue is None:
                    continue
                poller = SqsPoller(
                    name=logical_id,
                    sqs=self._clients["sqs"],
                    queue_url=queue.url,
                    queue_arn=queue.arn,
                    invoke=functools.partial(self._invoke, logical_id),
                    batch_size=source.batch_size,
                    batching_window=source.batching_window,
                    report_batch_item_failures=source.report_batch_item_failures,
                    region=REGION,
                    concurrency=source.maximum_concurrency or DEFAULT_POLLER_CONCURRENCY,
                )
                self.pollers[logical_id] = poller
                if source.enabled:
                    poller.start()

    def _unload_functions(self) -> None:
        # The handlers cached clients aimed at engines that are gone now; a next start (or a test
        # in the same process) must build fresh ones, and get FalInvokerFn's own gateway back.
        if self.runner is not None:
            self.runner.forget()
        if self._uninstall_fal is not None:
            self._uninstall_fal()
            self._uninstall_fal = None

    def _invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        assert self.runner is not None
        return self.runner.invoke(logical_id, event)

    def _stop_pollers(self) -> None:
        for poller in self.pollers.values():
            poller.stop()
        if self.runner is not None:
            self.runner.wait_idle()

    def set_source_enabled(self, logical_id: str, enabled: bool) -> bool:
        """Switch a function's SQS event source on or off; False when it has none."""
        poller = self.pollers.get(logical_id)
        if poller is None:
            return False
        if enabled:
            poller.start()
        else:
            poller.stop()
        return True

    def kill_source(self, logical_id: str) -> dict[str, Any] | None:
        """Kill a function's SQS pollers abruptly (batches in hand abandoned); None when it has none.

        `set_source_enabled(logical_id, True)` starts fresh pollers afterwards.
        """
        poller = self.pollers.get(logical_id)
        if poller is None:
            return None
        outcome = poller.kill()
        print(
            f"local: {logical_id} KILLED: {outcome.batches} batches ({outcome.messages} messages) in hand "
            "abandoned; they come back after the queue's visibility timeout. "
            f"POST /local/functions/{logical_id}/enable starts it again.",
            flush=True,
        )
        return {
            "function": logical_id,
            "enabled": False,
            "abandonedBatches": outcome.batches,
            "abandonedMessages": outcome.messages,
        }

    # --- live updates (DESIGN §4b): the WebSocket API and every stream mapping of the template ---

    def _start_live(self, http: HttpServer) -> None:
        """Serve `/v1/stream` and `@connections` on the HTTP port and poll the Jobs table's stream."""
        from local.live import LiveUpdates, connections_endpoint

        assert self.runner is not None and self.engines is not None and self.signing_key is not None
        table = self.resources.tables.get("JobsTable")
        if table is None or "ConnectionsTable" not in self.resources.tables:
            return
        if self.engines.dynamodb_engine == "dynalite":
            self.notes.append("live updates off: dynalite has no DynamoDB Streams (use the moto engine)")
            return
        import boto3

        try:
            stream_arn = self._jobs_stream(table)
            streams = boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=self.engines.dynamodb)
            streams.describe_stream(StreamArn=stream_arn)
        except Exception as error:  # an engine of the user's own without Streams
            self.notes.append(f"live updates off: the DynamoDB engine has no Streams ({error})")
            return
        self._set_env("CONNECTIONS_ENDPOINT", connections_endpoint(http.port))
        self.live = LiveUpdates(
            self.template,
            streams,
            {"JobsTable": stream_arn},
            self._invoke,
            Authorizer(self.signing_key.jwks()).claims_of,
            region=REGION,
            on_failure=self._stream_records_failed,
        )
        http.serve_stream(self.live.gateway)
        self.live.start()
        self.notes.append(f"live updates: ws://127.0.0.1:{http.port}/v1/stream?token=JWT")

    def _jobs_stream(self, table: str) -> str:
        """The Jobs table's stream ARN, switching on the template's StreamSpecification if it has none."""
        dynamodb = self._clients["dynamodb"]
        described = dynamodb.describe_table(TableName=table)["Table"]
        if described.get("StreamSpecification", {}).get("StreamEnabled") and described.get("LatestStreamArn"):
            return str(described["LatestStreamArn"])
        view = self.template.properties("JobsTable")["StreamSpecification"]["StreamViewType"]
        answer = dynamodb.update_table(
            TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": view}
        )
        return str(answer["TableDescription"]["LatestStreamArn"])

    def _stream_records_failed(self, function: str, records: list[dict[str, Any]]) -> None:
        """Lambda's on-failure destination: the batch's description to the mapping's SQS queue."""
        events = self.template.resources[function].get("Properties", {}).get("Events", {}).values()
        targets = [
            e.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", {})
            for e in events
            if e.get("Type") == "DynamoDB"
        ]
        named = [t.get("Fn::GetAtt", "") if isinstance(t, dict) else "" for t in targets]
        queues = [
            self.resources.queues.get(n[0] if isinstance(n, list) else str(n).split(".")[0]) for n in named
        ]
        sequence = [str(r["dynamodb"].get("SequenceNumber")) for r in records]
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": function},
            "DDBStreamBatchInfo": {
                "streamArn": records[0]["eventSourceARN"] if records else None,
                "startSequenceNumber": sequence[0] if sequence else None,
                "endSequenceNumber": sequence[-1] if sequence else None,
                "batchSize": len(records),
            },
        }
        for queue in filter(None, queues):
            self._clients["sqs"].send_message(QueueUrl=queue.url, MessageBody=json.dumps(body))

    def _stop_live(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            live.stop()

    # --- what it shows -----------------------------------------------------------------------

    def token(self, user: str, admin: bool = False) -> str:
        """A bearer token the local API accepts."""
        assert self.signing_key is not None
        return issue_token(self.signing_key, user, admin=admin)

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return self.http.url if self.http else f"http://127.0.0.1:{self.config.port}"

    def describe(self) -> dict[str, Any]:
        """Endpoints, names and ARNs of the running stack (also written to `.local/stack.json`)."""
        template = self.template
        engines = self.engines
        return {
            "api": self.url,
            "stage": self.config.stage,
            "region": REGION,
            "account": ACCOUNT,
            "endpoints": {
                "AWS_ENDPOINT_URL": engines.moto if engines else None,
                "AWS_ENDPOINT_URL_DYNAMODB": engines.dynamodb if engines else None,
                "AWS_ENDPOINT_URL_EVENTBRIDGE": engines.moto if engines else None,
                "AWS_ENDPOINT_URL_SQS": engines.moto if engines else None,
            },
            "dynamodb": engines.dynamodb_engine if engines else None,
            "tables": self.resources.tables,
            "queues": {k: {"url": q.url, "arn": q.arn} for k, q in self.resources.queues.items()},
            "buses": self.resources.buses,
            "archives": self.resources.archives,
            "rules": self.resources.rules,
            "functions": {k: self._describe_function(k, f) for k, f in self.functions.items()},
            "routes": [f"{r.method} {r.resource} -> {r.function}" for r in self.routes],
            "fal": self.fal_mode,
            "jobsTable": template.physical_name("JobsTable") if "JobsTable" in template.resources else None,
        }

    def _describe_function(self, logical_id: str, spec: FunctionSpec) -> dict[str, Any]:
        poller = self.pollers.get(logical_id)
        described: dict[str, Any] = {"handler": spec.handler, "enabled": poller is None or poller.running}
        if poller is not None:
            described["poller"] = {
                "invocations": poller.invocations,
                "errors": poller.errors,
                "kills": poller.kills,
                "abandonedBatches": poller.abandoned_batches,
                "abandonedMessages": poller.abandoned_messages,
            }
        return described

    def _stop_http(self) -> None:
        http, self.http = self.http, None
        if http is not None:
            http.stop()
