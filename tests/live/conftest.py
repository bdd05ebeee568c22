"""Fixtures of the live-update tests: the template's Jobs (with its stream) and connections tables on moto."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from api.store import JobReader
from jobstatus.events import JobStatusChanged
from jobstatus.http import Caller
from notifier.handler import NotifierDeps
from notifier.handler import handle as notify
from notifier.routes import StreamDeps
from notifier.routes import handle as route
from notifier.store import ConnectionStore
from ops.template import Template
from projector.fold import coalesce
from projector.store import JobStore
from tests.live.support import (
    NOW,
    FakeConnectionsApi,
    as_lambda_record,
    client_frame,
    stream_records,
    ws_event,
)


@dataclass
class Live:
    """The route and notifier functions on moto tables, talking to an in-memory `@connections` API."""

    ddb: Any
    streams: Any
    jobs_table: str
    stream_arn: str
    store: JobStore
    connections: ConnectionStore
    api: FakeConnectionsApi
    stream_deps: StreamDeps
    notifier_deps: NotifierDeps
    _seen: int = 0

    def connect(self, connection_id: str, user: str, *, admin: bool = False) -> dict[str, Any]:
        authorizer = {"userId": user, "admin": "true" if admin else "false", "principalId": user}
        return route(ws_event("$connect", connection_id, authorizer=authorizer), self.stream_deps)

    def send(
        self, connection_id: str, message: dict[str, Any] | str, route_key: str | None = None
    ) -> list[Any]:
        """Send a frame (a dict is a valid client message, a str any frame); the frames sent back."""
        if isinstance(message, dict):
            body = client_frame(message)
            route_key = route_key or message["action"]
        else:
            body = message
        route(ws_event(route_key or "$default", connection_id, body=body), self.stream_deps)
        return self.api.take(connection_id)

    def disconnect(self, connection_id: str) -> None:
        route(ws_event("$disconnect", connection_id), self.stream_deps)

    def project(self, *events: JobStatusChanged) -> None:
        """Write events as ProjectorFn does, one batch."""
        for batch in coalesce((f"m{i}", event) for i, event in enumerate(events)):
            self.store.write(batch)

    def new_records(self) -> list[dict[str, Any]]:
        """The stream records written since the last call, as Lambda hands them over."""
        records = stream_records(self.streams, self.stream_arn)
        fresh, self._seen = records[self._seen :], len(records)
        return [as_lambda_record(record, self.stream_arn) for record in fresh]

    def pump(self) -> dict[str, Any]:
        """Feed the new stream records to the notifier as one batch; its answer."""
        return notify({"Records": self.new_records()}, self.notifier_deps)

    def job(self, job_id: str) -> dict[str, Any] | None:
        return JobReader(self.ddb, self.jobs_table).get(job_id)

    def caller_of(self, connection_id: str) -> Caller | None:
        connection = self.connections.connection(connection_id)
        return None if connection is None else connection.caller


@contextmanager
def live_tables(template: Template) -> Iterator[Live]:
    """Both tables made from template.yaml in moto (the Jobs table with its NEW_IMAGE stream)."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        # botocore sends a call naming a stream ARN to an account-based host that moto does not route.
        streams = boto3.client(
            "dynamodbstreams",
            region_name="us-east-1",
            endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com",
        )
        jobs = {
            **template.table_definition("JobsTable"),
            "StreamSpecification": {
                "StreamEnabled": True,
                **template.properties("JobsTable")["StreamSpecification"],
            },
        }
        arn = ddb.create_table(**jobs)["TableDescription"]["LatestStreamArn"]
        ddb.create_table(**template.table_definition("ConnectionsTable"))
        connections = ConnectionStore(ddb, template.physical_name("ConnectionsTable"), lambda: NOW)
        api = FakeConnectionsApi()
        reader = JobReader(ddb, jobs["TableName"])
        yield Live(
            ddb=ddb,
            streams=streams,
            jobs_table=jobs["TableName"],
            stream_arn=arn,
            store=JobStore(ddb, jobs["TableName"], 30),
            connections=connections,
            api=api,
            stream_deps=StreamDeps(connections=connections, jobs=reader, sender=api, clock=lambda: NOW),
            notifier_deps=NotifierDeps(connections=connections, sender=api, clock=lambda: NOW),
        )


@pytest.fixture
def live(template: Template) -> Iterator[Live]:
    """The route and notifier functions on fresh moto tables."""
    with live_tables(template) as tables:
        yield tables
