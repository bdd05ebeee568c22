"""The `JobStatusChanged` event contract (DESIGN §2) and its version order (DESIGN §3).

Pure: no boto3, no Powertools. Producers build events with this model, the projector parses
them with it, and `jobstatus/schema/job_status_changed.schema.json` is exported from it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

DETAIL_TYPE: Final = "JobStatusChanged"
REQUEST_DETAIL_TYPE: Final = "VideoGenerationRequested"
SOURCE_SUBMIT: Final = "jobs.submit"
SOURCE_FAL_INVOKER: Final = "jobs.fal-invoker"
SOURCES: Final = (SOURCE_SUBMIT, SOURCE_FAL_INVOKER)

SCHEMA_VERSION: Final = 1
JOB_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
TIMESTAMP_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
MAX_RESULT_BYTES: Final = 16 * 1024
MAX_ATTEMPT: Final = 9999  # the version pads attempt to 4 digits; more would break byte order
EVENTBRIDGE_MAX_ENTRY_BYTES: Final = 256 * 1024

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)


class Status(StrEnum):
    """Where a job stands."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


RANK: Final[dict[Status, int]] = {
    Status.QUEUED: 1,
    Status.PROCESSING: 2,
    Status.COMPLETED: 3,
    Status.FAILED: 3,
}
TERMINAL: Final = frozenset({Status.COMPLETED, Status.FAILED})


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with exactly milliseconds: `2026-11-22T07:20:31.123Z`."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """The aware UTC datetime of a contract timestamp."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def utc_now() -> str:
    """The current time as a contract timestamp."""
    return format_timestamp(datetime.now(UTC))


def is_valid_job_id(value: str) -> bool:
    """Whether `value` matches the jobId pattern of DESIGN §2."""
    return _JOB_ID_RE.fullmatch(value) is not None


def _timestamp(value: str) -> str:
    parse_timestamp(value)  # a well-formed string that is not a real instant (month 13) is refused
    return value


def _event_id(value: str) -> str:
    # The canonical lowercase form, so that the same id always gives the same version bytes.
    return str(uuid.UUID(value))


def _https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError("outputUrl must be an https URL")
    return value


def _bounded_result(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_RESULT_BYTES:
        raise ValueError(f"result is {size} bytes as JSON; at most {MAX_RESULT_BYTES} allowed")
    return value


Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN), AfterValidator(_timestamp)]
EventId = Annotated[str, Field(min_length=32, max_length=36), AfterValidator(_event_id)]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN)]
OutputUrl = Annotated[str, Field(max_length=2048), AfterValidator(_https_url)]
ResultMetadata = Annotated[dict[str, Any], AfterValidator(_bounded_result)]
Metric = Annotated[int | float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class JobError(_Model):
    """Why a job failed."""

    code: str = Field(min_length=1, max_length=128)
    message: str = Field(max_length=4096)
    retryable: bool


class JobStatusChanged(_Model):
    """The `detail` of a `JobStatusChanged` event (DESIGN §2)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: EventId
    job_id: JobId
    user_id: str = Field(min_length=1, max_length=256)
    status: Status
    occurred_at: Timestamp
    created_at: Timestamp
    attempt: int = Field(default=1, ge=1, le=MAX_ATTEMPT)
    progress: int | None = Field(default=None, ge=0, le=100)
    started_at: Timestamp | None = None
    output_url: OutputUrl | None = None
    result: ResultMetadata | None = None
    error: JobError | None = None
    metrics: dict[str, Metric] | None = None

    @model_validator(mode="after")
    def _status_rules(self) -> JobStatusChanged:
        if self.output_url is not None and self.status is not Status.COMPLETED:
            raise ValueError("outputUrl is only allowed with status COMPLETED")
        if self.error is not None and self.status is not Status.FAILED:
            raise ValueError("error is only allowed with status FAILED")
        return self

    @property
    def version(self) -> str:
        """This event's place in its job's total order (DESIGN §3)."""
        return version_of(self)

    def to_detail(self) -> dict[str, Any]:
        """The camelCase JSON object sent as the EventBridge `detail` (unset optionals left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def version_of(event: JobStatusChanged) -> str:
    """`f"{attempt:04d}#{rank}#{occurredAt}#{eventId}"`, compared byte-wise (DESIGN §3)."""
    return f"{event.attempt:04d}#{RANK[event.status]}#{event.occurred_at}#{event.event_id}"


def put_events_entry_size(entry: dict[str, Any]) -> int:
    """The size EventBridge charges a PutEvents entry against its 256 KiB limit.

    As AWS documents it: Source, DetailType and Detail as UTF-8, each Resources entry, and 14
    bytes for Time when it is set.
    """
    size = 0
    for key in ("Source", "DetailType", "Detail"):
        if key in entry:
            size += len(str(entry[key]).encode())
    size += sum(len(str(r).encode()) for r in entry.get("Resources", []))
    if entry.get("Time") is not None:
        size += 14
    return size


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the event detail, for producers written in other languages."""
    schema = JobStatusChanged.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://deepfoundai.com/schemas/job-status-changed/v1.json"
    return schema
