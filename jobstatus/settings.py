"""Settings, read once from environment variables into typed models (DESIGN §5).

AWS endpoints are not settings of ours: botocore reads `AWS_ENDPOINT_URL*` itself.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobstatus.commalist import comma_list

DEFAULT_ALLOWED_ORIGINS = ("https://admin.deepfoundai.com", "https://video.deepfoundai.com")


class Settings(BaseSettings):
    """Every setting of the service; each function reads the ones it needs."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    stage: str = "dev"
    jobs_table_name: str = "Jobs-dev"
    event_bus_name: str = "jobs-dev"
    job_ttl_days: int = Field(default=30, ge=1, le=3650)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_ORIGINS

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return comma_list(value)
