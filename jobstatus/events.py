"""The `JobStatusChanged` event contract (DESIGN §2) and its version order (DESIGN §3).

Pure: no boto3, no Powertools. Producers build events with this model, the projector parses
them with it, and `jobstatus/schema/job_status_changed.schema.json` is exported from it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic.alias_generators import to_camel

from jobstatus.contract import JOB_ID_PATTERN, STATUS_RANK, TERMINAL_STATUSES
from jobstatus.storable import FIELD_LEVEL, unstorable_reason

DETAIL_TYPE: Final = "JobStatusChanged"
REQUEST_DETAIL_TYPE: Final = "VideoGenerationRequested"
SOURCE_SUBMIT: Final = "jobs.submit"
SOURCE_FAL_INVOKER: Final = "jobs.fal-invoker"
SOURCES: Final = (SOURCE_SUBMIT, SOURCE_FAL_INVOKER)

SCHEMA_VERSION: Final = 1
# ASCII digits only (`\d` would take any Unicode digit and break the byte order of versions);
# the ranges keep the JSON Schema close to the model, which also refuses impossible dates.
TIMESTAMP_PATTERN: Final = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$"
)
EVENT_ID_PATTERN: Final = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
OUTPUT_URL_PATTERN: Final = r"^https://[^\s/?#]+([/?#]\S*)?$"
WEBHOOK_URL_PATTERN: Final = r"^https?://[^\s/?#]+([/?#]\S*)?$"
MAX_RESULT_BYTES: Final = 16 * 1024
MAX_INPUT_BYTES: Final = 16 * 1024
INPUT_LEVEL: Final = FIELD_LEVEL + 1  # request is an event field's object; its input one level below
STORABLE_RULE: Final = (
    "Only values DynamoDB can store: numbers finite, at most 38 significant digits, magnitude 0 or "
    "1e-130 .. 1e125; no empty keys; nested at most 32 levels counting the event as level 1."
)
MAX_ATTEMPT: Final = 9999  # the version pads attempt to 4 digits; more would break byte order
EVENTBRIDGE_MAX_ENTRY_BYTES: Final = 256 * 1024

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)


class Status(StrEnum):
    """Where a job stands."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


RANK: Final[dict[Status, int]] = {status: STATUS_RANK[status] for status in Status}
TERMINAL: Final = frozenset(Status(status) for status in TERMINAL_STATUSES)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with exactly milliseconds: `2026-11-22T07:20:31.123Z`."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """The aware datetime of a timestamp (`%Y-%m-%dT%H:%M:%S.%f%z`); ValueError when unreadable."""
    if _TIMESTAMP_RE.fullmatch(value):
        # The contract's own format: fromisoformat reads it about 20 times faster than strptime.
        return datetime.fromisoformat(value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def utc_now() -> str:
    """The current time as a contract timestamp."""
    return format_timestamp(datetime.now(UTC))


def is_valid_job_id(value: str) -> bool:
    """Whether `value` matches the jobId pattern of DESIGN §2."""
    return _JOB_ID_RE.fullmatch(value) is not None


def _timestamp(value: str) -> str:
    # Only after TIMESTAMP_PATTERN has matched (`Timestamp`), so `parse_timestamp` would take
    # `fromisoformat` too: well-formed but not a real instant (February 30, year 0) is refused.
    datetime.fromisoformat(value)
    return value


def _event_id(value: str) -> str:
    # The canonical lowercase form, so that the same id always gives the same version bytes. Only
    # after EVENT_ID_PATTERN has matched (`EventId`): 8-4-4-4-12 hex digits, whose lower case is
    # `str(uuid.UUID(value))` exactly (tests/core/test_events.py checks it), at a tenth of the CPU.
    return value.lower()


def _json_integer(value: object) -> object:
    # What JSON Schema calls an integer: a number with no fraction. Never a bool or a string,
    # which pydantic's lax mode would otherwise turn into 1 or parse.
    if type(value) is int:  # the common case first (a bool's type is bool)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def _json_size(value: dict[str, Any], name: str) -> int:
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as error:  # NaN or Infinity: not JSON, and DynamoDB cannot store it either
        raise ValueError(f"{name} must hold only finite numbers") from error
    return len(encoded.encode())


def _storable(value: Any, name: str, level: int) -> None:
    # DESIGN §2 "Storable values": what DynamoDB cannot store is refused here, so that a valid
    # event can always be projected.
    if reason := unstorable_reason(value, level):
        raise ValueError(f"{name} holds a value DynamoDB cannot store: {reason}")


def _bounded_result(value: dict[str, Any]) -> dict[str, Any]:
    size = _json_size(value, "result")
    if size > MAX_RESULT_BYTES:
        raise ValueError(f"result is {size} bytes as JSON; at most {MAX_RESULT_BYTES} allowed")
    _storable(value, "result", FIELD_LEVEL)
    return value


def _bounded_input(value: dict[str, Any]) -> dict[str, Any]:
    size = _json_size(value, "input")
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"input is {size} bytes as JSON; at most {MAX_INPUT_BYTES} allowed")
    _storable(value, "request.input", INPUT_LEVEL)
    return value


def _storable_metrics(value: dict[str, Any]) -> dict[str, Any]:
    _storable(value, "metrics", FIELD_LEVEL)
    return value


Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN), AfterValidator(_timestamp)]
EventId = Annotated[str, Field(pattern=EVENT_ID_PATTERN), AfterValidator(_event_id)]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN)]
OutputUrl = Annotated[str, Field(max_length=2048, pattern=OUTPUT_URL_PATTERN)]
ResultMetadata = Annotated[
    dict[str, JsonValue],
    AfterValidator(_bounded_result),
    Field(description=f"Result metadata from Fal, at most {MAX_RESULT_BYTES} bytes as JSON. {STORABLE_RULE}"),
]
MetricName = Annotated[str, Field(min_length=1, max_length=128)]
Metric = Annotated[StrictInt | StrictFloat, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    # Python code may build events by field name (`job_id=...`); the wire takes only the
    # camelCase aliases (see `JobStatusChanged.from_detail`).
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class JobRequest(_Model):
    """What the job was asked to do: the Fal application and its arguments (a fill-in field)."""

    model: str = Field(min_length=1, max_length=256)
    input: Annotated[
        dict[str, JsonValue],
        AfterValidator(_bounded_input),
        Field(description=f"The Fal arguments, at most {MAX_INPUT_BYTES} bytes as JSON. {STORABLE_RULE}"),
    ]
    # Where to deliver this job's changes (DESIGN §4c). The scheme and address policy (https,
    # no private addresses) is the submitter's and the sender's to enforce; the event only
    # carries what was accepted.
    webhook: Annotated[str, Field(max_length=2048, pattern=WEBHOOK_URL_PATTERN)] | None = None
    webhook_events: Annotated[list[Status], Field(min_length=1, max_length=4)] | None = None


class JobError(_Model):
    """Why a job failed."""

    code: str = Field(min_length=1, max_length=128)
    message: str = Field(max_length=4096)
    retryable: StrictBool


def _only_with(field: str, status: Status) -> dict[str, Any]:
    # JSON Schema for "`field`, when set, only with `status`".
    return {
        "if": {"required": [field], "properties": {field: {"not": {"type": "null"}}}},
        "then": {"properties": {"status": {"const": status.value}}},
    }


class JobStatusChanged(_Model):
    """The `detail` of a `JobStatusChanged` event (DESIGN §2)."""

    model_config = ConfigDict(
        title="JobStatusChanged",
        json_schema_extra={
            "allOf": [_only_with("outputUrl", Status.COMPLETED), _only_with("error", Status.FAILED)]
        },
    )

    schema_version: Annotated[Literal[1], BeforeValidator(_json_integer)] = SCHEMA_VERSION
    event_id: EventId
    job_id: JobId
    user_id: str = Field(min_length=1, max_length=256)
    status: Status
    occurred_at: Timestamp
    created_at: Timestamp
    attempt: Annotated[int, Field(ge=1, le=MAX_ATTEMPT), BeforeValidator(_json_integer)] = 1
    progress: Annotated[int, Field(ge=0, le=100), BeforeValidator(_json_integer)] | None = None
    started_at: Timestamp | None = None
    output_url: OutputUrl | None = None
    result: ResultMetadata | None = None
    error: JobError | None = None
    metrics: (
        Annotated[
            dict[MetricName, Metric],
            Field(max_length=64, description=f"Numbers. {STORABLE_RULE}"),
            AfterValidator(_storable_metrics),
        ]
        | None
    ) = None
    request: JobRequest | None = None

    @model_validator(mode="after")
    def _status_rules(self) -> JobStatusChanged:
        if self.output_url is not None and self.status is not Status.COMPLETED:
            raise ValueError("outputUrl is only allowed with status COMPLETED")
        if self.error is not None and self.status is not Status.FAILED:
            raise ValueError("error is only allowed with status FAILED")
        return self

    @classmethod
    def from_detail(cls, detail: object) -> JobStatusChanged:
        """Validate an event `detail` from the wire: camelCase keys only, every rule checked.

        Raises `pydantic.ValidationError` saying which rule the detail breaks.
        """
        return cls.model_validate(detail, by_alias=True, by_name=False)

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
