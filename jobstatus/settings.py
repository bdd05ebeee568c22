"""Settings, read once from environment variables into typed models (DESIGN §5).

Plain pydantic models filled by `from_env`, not pydantic-settings: importing that package and
building a `BaseSettings` class cost a function's cold start ~25 ms of CPU (docs/performance.md).
AWS endpoints are not settings of ours: botocore reads `AWS_ENDPOINT_URL*` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobstatus.commalist import comma_list
from jobstatus.contract import (
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_EVENT_BUS_NAME,
    DEFAULT_JOB_TTL_DAYS,
    DEFAULT_JOBS_TABLE_NAME,
    DEFAULT_STAGE,
    JOB_TTL_DAYS_RANGE,
)


class Settings(BaseModel):
    """Every setting of the service; each function reads the ones it needs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: str = DEFAULT_STAGE
    jobs_table_name: str = DEFAULT_JOBS_TABLE_NAME
    event_bus_name: str = DEFAULT_EVENT_BUS_NAME
    job_ttl_days: int = Field(
        default=DEFAULT_JOB_TTL_DAYS, ge=JOB_TTL_DAYS_RANGE[0], le=JOB_TTL_DAYS_RANGE[1]
    )
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return comma_list(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings from environment variables (default: the process's), names in any case.

        Variables that name no setting are ignored; a wrong value raises `pydantic.ValidationError`
        naming the setting.
        """
        source = os.environ if environ is None else environ
        env = {name.lower(): value for name, value in source.items()}
        return cls.model_validate({name: env[name] for name in cls.model_fields if name in env})
