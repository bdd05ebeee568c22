"""Shared fixtures: fake credentials, the DynamoDB engines, moto server, tables made from template.yaml.

The DynamoDB fixtures (`dynamodb_engine` → `dynamodb_endpoint` → `ddb` → `jobs_table`) run the
store's tests on both open-source engines (DESIGN §7): moto server (a process of its own, as the
local stack runs it) and dynalite, each started once per session on a free loopback port. Where
node or npm is missing, the dynalite runs are skipped with the reason. When
`AWS_ENDPOINT_URL_DYNAMODB` is set, the tests use that engine (the user's own, "external")
instead of both. moto server (EventBridge, SQS) runs once per session. Every test that needs a
table gets its own, so tests never share state.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.loaders
import botocore.session
import pytest
from hypothesis import settings

# The user's own engine, read before the endpoints are cleared below.
EXTERNAL_DYNAMODB: Final = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None

# Before anything builds a boto3 client: never reach real AWS from a test.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "jobstatus",
        "POWERTOOLS_METRICS_NAMESPACE": "JobStatus",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]:
    del os.environ[_name]

# One botocore data loader for the whole test process. moto's `mock_aws()` gives every test a new
# default boto3 session, and each new session's loader decodes botocore's endpoint and service
# JSON again (~90 ms of a ~120 ms in-process moto setup). The files are read-only data that one
# session already shares between all its clients, so sharing them between sessions changes nothing
# a test can see; it only stops paying for the same decoding hundreds of times.
botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)

# No property fails for being slow: speed is measured by the benchmarks, never asserted in a test,
# and hypothesis' default 200 ms deadline failed a correct test on a loaded machine (a first
# example that took 507 ms, then 0.3 ms on the replay).
settings.register_profile("jobstatus", deadline=None)
settings.load_profile("jobstatus")

from local.engines import (  # noqa: E402
    Dynalite,
    EngineError,
    MotoProcess,
    MotoServer,
    dynalite_unavailable,
    wait_table_active,
)
from ops.template import Template  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROOT: Final = Path(__file__).resolve().parents[1]
# The tests about what the engine stores run on both engines. The others that need a table use
# DynamoDB only as a place to keep items while they test producers, replay plumbing or the
# template, so they run on moto alone: twice would double their time and prove nothing new.
ON_BOTH_ENGINES: Final = frozenset(
    {
        "tests/core/test_store_properties.py",
        "tests/core/test_store_integration.py",
        "tests/core/test_projector_integration.py",
        "tests/core/test_engine_differences.py",
        "tests/api/test_integration.py",
    }
)
# Tests that count the writer's requests: dynalite ignores ReturnValuesOnConditionCheckFailure
# (DESIGN §8), so a correct writer spends a second, fill-in write where DynamoDB and moto spend
# one. Expected to fail there, strictly: the day dynalite honours it, these pass and say so.
COUNT_REQUESTS: Final = frozenset(
    {
        "test_shuffled_duplicated_batches_converge_on_the_fold",
        "test_the_second_write_happens_only_for_a_damaged_item",
    }
)


def engines_for(path: Path) -> list[str]:
    """The DynamoDB engines the tests of the file at `path` run on."""
    if EXTERNAL_DYNAMODB:
        return ["external"]
    relative = path.resolve().relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    return ["moto", "dynalite"] if relative in ON_BOTH_ENGINES else ["moto"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every test that needs DynamoDB its engines (see `engines_for`)."""
    if "dynamodb_engine" in metafunc.fixturenames:
        engines = engines_for(Path(str(metafunc.definition.path)))
        metafunc.parametrize("dynamodb_engine", engines, indirect=True, scope="session")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` (`make test`) with one scope for all e2e tests: they run on one worker,
    since their local stacks are package- and module-scoped fixtures, started once there and never
    two at a time; every other test is a scope of its own, spread over the workers meanwhile.
    Other modes are xdist's own (`make test-unit` runs the default, `load`).

    (xdist's own `--dist loadgroup` grouped nothing here, with pytest 9.2 and xdist 3.8, even in a
    two-test example, so the grouping is this scheduler's.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class E2EOnOneWorker(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "tests/e2e" if nodeid.startswith("tests/e2e/") else nodeid

    return E2EOnOneWorker(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the request-counting tests as expected to fail on dynalite (see `COUNT_REQUESTS`).

    The e2e tests go first (in their order): they are the longest chain, so on several workers
    the others fill the other workers around them.
    """
    items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("dynamodb_engine") if callspec else None
        if engine == "dynalite" and getattr(item, "originalname", "") in COUNT_REQUESTS:
            item.add_marker(
                pytest.mark.xfail(
                    raises=AssertionError,
                    strict=True,
                    reason="dynalite ignores ReturnValuesOnConditionCheckFailure: one more fill-in write",
                )
            )


@pytest.fixture(scope="session")
def template() -> Template:
    """template.yaml, stage `test`."""
    return Template.read(Stage="test")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port; its endpoint URL."""
    with MotoServer() as server:
        yield server.endpoint


class _DynaliteOnce:
    """dynalite started on first use and kept for the session (or why it cannot run)."""

    def __init__(self) -> None:
        self.engine: Dynalite | None = None
        self.reason: str | None = None

    def endpoint(self) -> str:
        if self.engine is None and self.reason is None:
            self.reason = dynalite_unavailable()
            if self.reason is None:
                try:
                    self.engine = Dynalite().start()
                except EngineError as error:
                    self.reason = str(error)
        if self.engine is None:
            pytest.skip(f"dynalite runs skipped: {self.reason}")
        return self.engine.endpoint

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()


@pytest.fixture(scope="session")
def _dynalite() -> Iterator[_DynaliteOnce]:
    once = _DynaliteOnce()
    try:
        yield once
    finally:
        once.stop()


@pytest.fixture(scope="session")
def _moto_dynamodb() -> Iterator[str]:
    # As the local stack runs it: a process of its own that serves one request at a time.
    with MotoProcess() as moto:
        yield moto.endpoint


@pytest.fixture(scope="session")
def dynamodb_engine(request: pytest.FixtureRequest) -> str:
    """Which DynamoDB engine the test runs on: `moto`, `dynalite` or `external` (see `engines_for`)."""
    return str(getattr(request, "param", "external" if EXTERNAL_DYNAMODB else "moto"))


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_engine: str, request: pytest.FixtureRequest) -> str:
    """The endpoint of the test's DynamoDB engine (the session's moto server, dynalite, or the user's)."""
    if dynamodb_engine == "external":
        assert EXTERNAL_DYNAMODB is not None
        return EXTERNAL_DYNAMODB
    if dynamodb_engine == "dynalite":
        once: _DynaliteOnce = request.getfixturevalue("_dynalite")
        return once.endpoint()
    return str(request.getfixturevalue("_moto_dynamodb"))


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch, dynamodb_endpoint: str, moto_server: str) -> dict[str, str]:
    """Point botocore's standard endpoint settings at the DynamoDB engine and moto server."""
    endpoints = {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": moto_server,
        "AWS_ENDPOINT_URL_SQS": moto_server,
    }
    for name, value in endpoints.items():
        monkeypatch.setenv(name, value)
    return endpoints


@pytest.fixture
def ddb(dynamodb_endpoint: str) -> DynamoDBClient:
    """A DynamoDB client on the test's engine."""
    return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name="us-east-1")


def create_jobs_table(client: DynamoDBClient, template: Template, name: str) -> str:
    """Create the template's Jobs table under `name` and wait until it is active."""
    definition: dict[str, Any] = {**template.table_definition(), "TableName": name}
    client.create_table(**definition)
    wait_table_active(client, name)
    return name


@pytest.fixture
def jobs_table(ddb: DynamoDBClient, template: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh Jobs table on the test's engine, made from template.yaml; `JOBS_TABLE_NAME` set to it."""
    name = create_jobs_table(ddb, template, f"Jobs-test-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("JOBS_TABLE_NAME", name)
    try:
        yield name
    finally:
        ddb.delete_table(TableName=name)
