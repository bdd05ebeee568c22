"""Fixtures of the API tests: the handler on a moto table (unit) or on DynamoDB Local (integration)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from api.core import CursorCodec
from api.handler import Dependencies, handle
from api.settings import ApiSettings
from api.store import JobReader
from jobstatus.events import JobStatusChanged
from projector.store import JobStore
from tests.api.support import ALLOWED_ORIGIN, KEY, NOW, project_into, rest_event
from tests.conftest import create_jobs_table


@dataclass
class Api:
    """The handler wired to one table, with the projector's writer beside it."""

    deps: Dependencies
    store: JobStore

    def write(self, *events: JobStatusChanged) -> None:
        """Project events into the table, as ProjectorFn would."""
        project_into(self.store, *events)

    def call(self, method: str = "GET", path: str = "/v1/jobs/job-1", **kwargs: Any) -> dict[str, Any]:
        """Answer one REST proxy event."""
        return handle(rest_event(method, path, **kwargs), None, self.deps)


def make_api(client: Any, table: str) -> Api:
    settings = ApiSettings(
        jobs_table_name=table, allowed_origins=(ALLOWED_ORIGIN, "https://admin.deepfoundai.com")
    )
    deps = Dependencies(
        settings=settings, jobs=JobReader(client, table), cursors=CursorCodec(KEY), clock=lambda: NOW
    )
    return Api(deps=deps, store=JobStore(client, table, settings.job_ttl_days))


@pytest.fixture
def api(template) -> Iterator[Api]:
    """The handler on a table in moto, in-process."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        yield make_api(client, create_jobs_table(client, template, "Jobs-unit"))


@pytest.fixture
def local_api(ddb, jobs_table) -> Api:
    """The handler on a fresh table in DynamoDB Local."""
    return make_api(ddb, jobs_table)
