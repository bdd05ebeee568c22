"""Settings, read once from environment variables into typed models (DESIGN §5).

AWS endpoints are not settings of ours: botocore reads `AWS_ENDPOINT_URL*` itself.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobstatus.commalist import comma_list
from jobstatus.contract import (
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_EVENT_BUS_NAME,
    DEFAULT_JOB_TTL_DAYS,
    DEFAULT_JOBS_TABLE_NAME,
    DEFAULT_STAGE,
    JOB_TTL_DAYS_RANGE,
)


class Settings(BaseSettings):
    """Every setting of the service; each function reads the ones it needs."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    stage: str = DEFAULT_STAGE
    jobs_table_name: str = DEFAULT_JOBS_TABLE_NAME
    event_bus_name: str = DEFAULT_EVENT_BUS_NAME
    job_ttl_days: int = Field(
        default=DEFAULT_JOB_TTL_DAYS, ge=JOB_TTL_DAYS_RANGE[0], le=JOB_TTL_DAYS_RANGE[1]
    )
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_ORIGINS

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return comma_list(value)
