"""SubmitJobFn's settings: the ones it reads, with `ProducerSettings`' names, defaults and rules.

A plain pydantic model read once from the environment, not pydantic-settings: importing
pydantic-settings (its dotenv, CLI and cloud sources) and building a `BaseSettings` class cost
this function's cold start about 25 ms of CPU, this model about 2 ms (bench/coldstart.py, docs/
performance.md). pydantic itself is on the path anyway (the contract models). Each value is
validated by the same field declaration pydantic-settings would validate it with;
tests/producers/test_submit_settings.py checks that both read any environment alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobstatus.commalist import comma_list
from jobstatus.contract import (
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_EVENT_BUS_NAME,
    DEFAULT_JOB_TTL_DAYS,
    DEFAULT_STAGE,
    JOB_TTL_DAYS_RANGE,
)
from webhooks.settings import LOCAL_STAGES

DEFAULT_MODELS: Final = ("fal-ai/kling-video/v2/master/text-to-video",)
DEFAULT_IDEMPOTENCY_TABLE_NAME: Final = "jobs-dev-idempotency"


class SubmitSettings(BaseModel):
    """`STAGE, EVENT_BUS_NAME, JOB_TTL_DAYS, ALLOWED_ORIGINS, IDEMPOTENCY_TABLE_NAME,
    OUTBOX_QUEUE_URL, MODEL_ALLOW_LIST, STATUS_FLUSH_SECONDS, PUBLISH_CONNECT_TIMEOUT_SECONDS,
    PUBLISH_READ_TIMEOUT_SECONDS, SUBMIT_PUBLISH_SECONDS, WEBHOOKS_ALLOW_LOCAL`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: str = DEFAULT_STAGE
    event_bus_name: str = DEFAULT_EVENT_BUS_NAME
    job_ttl_days: int = Field(
        default=DEFAULT_JOB_TTL_DAYS, ge=JOB_TTL_DAYS_RANGE[0], le=JOB_TTL_DAYS_RANGE[1]
    )
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    idempotency_table_name: str = DEFAULT_IDEMPOTENCY_TABLE_NAME
    outbox_queue_url: str = ""
    model_allow_list: tuple[str, ...] = DEFAULT_MODELS
    status_flush_seconds: float = Field(default=0.05, gt=0, le=5)
    publish_connect_timeout_seconds: float = Field(default=0.2, gt=0, le=10)
    publish_read_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    submit_publish_seconds: float = Field(default=0.5, gt=0, le=10)
    webhooks_allow_local: bool = False

    @field_validator("allowed_origins", "model_allow_list", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_list(value)

    @model_validator(mode="after")
    def _local_webhooks_only_locally(self) -> SubmitSettings:
        if self.webhooks_allow_local and self.stage not in LOCAL_STAGES:
            raise ValueError(f"WEBHOOKS_ALLOW_LOCAL is only allowed in stages {sorted(LOCAL_STAGES)}")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SubmitSettings:
        """The settings from environment variables (names case-insensitive, others ignored).

        Raises `pydantic.ValidationError` naming the setting that is wrong.
        """
        source = os.environ if environ is None else environ
        env = {name.lower(): value for name, value in source.items()}
        return cls.model_validate({name: env[name] for name in cls.model_fields if name in env})
