"""`VideoGenerationRequested` (DESIGN §2): what SubmitJobFn asks FalInvokerFn to run.

SubmitJobFn builds its detail with this model and FalInvokerFn parses it with the same one;
keys outside the contract are refused. The optional `webhook` and `webhookEvents` (§4c) ride
along so that FalInvokerFn's events carry the same `request` as SubmitJobFn's QUEUED.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from jobstatus.contract import JOB_ID_PATTERN
from jobstatus.events import WEBHOOK_URL_PATTERN

# The fields that name the job: a detail wrong in one of these cannot even become a FAILED job.
NAMING_FIELDS: Final = frozenset({"jobId", "userId", "createdAt"})
WebhookStatus = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]


class VideoGenerationRequested(BaseModel):
    """The `detail` `{jobId?, userId, createdAt?, model, input, webhook?, webhookEvents?}`.

    `model` is a Fal application id; the webhook fields are SubmitJobFn's checked ones (§4c).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN)
    user_id: str = Field(min_length=1, max_length=256)
    created_at: str | None = None  # the invoker reads it leniently (its own clock when unreadable)
    model: str = Field(min_length=1, max_length=256, pattern=r"\S")
    input: dict[str, JsonValue]
    webhook: str | None = Field(default=None, max_length=2048, pattern=WEBHOOK_URL_PATTERN)
    webhook_events: list[WebhookStatus] | None = Field(default=None, min_length=1, max_length=4)

    def detail_json(self) -> str:
        """The detail as compact JSON, keys in contract order, never anything but JSON."""
        detail: dict[str, Any] = self.model_dump(exclude_none=True)
        return json.dumps(detail, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
