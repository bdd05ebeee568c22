"""Helpers for the API tests: REST proxy events with Cognito claims, jobs written by the projector."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jobstatus.events import JobStatusChanged, format_timestamp
from projector.fold import coalesce
from projector.store import JobStore

FIXTURE = Path(__file__).parent / "fixtures" / "rest_event.json"
ALICE = "a1b2c3d4-0000-4000-8000-000000000001"
BOB = "a1b2c3d4-0000-4000-8000-000000000002"
ROOT = "a1b2c3d4-0000-4000-8000-000000000003"
ALLOWED_ORIGIN = "https://video.deepfoundai.com"
KEY = b"test-cursor-signing-key-0123456789"
# The tests' clock: jobs are created an hour before it, so they are 30 days from expiring.
NOW_DT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()


@cache
def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def claims(sub: str = ALICE, groups: Any = "[users]") -> dict[str, Any]:
    """The fixture's Cognito claims for another user and groups (None: no groups claim)."""
    result = {**_fixture()["requestContext"]["authorizer"]["claims"], "sub": sub}
    if groups is None:
        result.pop("cognito:groups")
    else:
        result["cognito:groups"] = groups
    return result


def rest_event(
    method: str = "GET",
    path: str = "/v1/jobs/job-1",
    *,
    claims_: dict[str, Any] | None = None,
    anonymous: bool = False,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST proxy event as API Gateway sends it, modelled on AWS's sample, for one request."""
    event = copy.deepcopy(_fixture())
    parts = path.split("/")
    job_route = len(parts) == 4 and parts[1:3] == ["v1", "jobs"]
    resource = "/v1/jobs/{id}" if job_route else path
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        pathParameters={"id": parts[3]} if job_route else None,
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
    )
    context = event["requestContext"]
    context.update(httpMethod=method, resourcePath=resource, path="/prod" + path, requestId=str(uuid.uuid4()))
    if anonymous:
        context.pop("authorizer")
        event["headers"].pop("Authorization")
        event["multiValueHeaders"].pop("Authorization")
    elif claims_ is not None:
        context["authorizer"]["claims"] = claims_
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def header(response: dict[str, Any], name: str) -> str | None:
    """One response header, case-insensitively (REST answers carry multiValueHeaders)."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ", ".join(values)
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def body(response: dict[str, Any]) -> Any:
    """The JSON body of a response."""
    return json.loads(response["body"])


def at(minutes: float, base: datetime = NOW_DT - timedelta(hours=1)) -> str:
    """A contract timestamp `minutes` after the tests' job creation time."""
    return format_timestamp(base + timedelta(minutes=minutes))


def job_event(
    job_id: str,
    user_id: str = ALICE,
    status: str = "QUEUED",
    *,
    created: str | None = None,
    occurred: str | None = None,
    **fields: Any,
) -> JobStatusChanged:
    """A valid JobStatusChanged event of one job."""
    created = created or at(0)
    return JobStatusChanged(
        event_id=str(uuid.uuid4()),
        job_id=job_id,
        user_id=user_id,
        status=status,
        occurred_at=occurred or created,
        created_at=created,
        **fields,
    )


def project_into(store: JobStore, *events: JobStatusChanged) -> None:
    """Write events as the projector does: coalesced per job, one conditional write each."""
    for batch in coalesce((f"m{index}", event) for index, event in enumerate(events)):
        store.write(batch)
