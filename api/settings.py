"""GetJobFn's settings: a typed, frozen model read once from the environment (DESIGN §5).

Not the shared pydantic model `jobstatus.settings.Settings`: pydantic (with pydantic-settings,
which that model no longer uses) cost this function's cold start about 77 ms (bench/api.py),
more than a third of the margin it has over boto3's own import. The same variables, names,
defaults and rules, checked here by hand, with the defaults of `jobstatus.contract`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from jobstatus.commalist import split_comma_list
from jobstatus.contract import (
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_JOB_TTL_DAYS,
    DEFAULT_JOBS_TABLE_NAME,
    DEFAULT_STAGE,
    JOB_TTL_DAYS_RANGE,
)

# Only stages that never face the internet may sign cursors with a key anyone can read here; every
# other stage reads its key from the Secrets Manager secret named by CURSOR_KEY_SECRET_ARN.
LOCAL_STAGES: Final = frozenset({"dev", "test", "local"})
DEV_CURSOR_SIGNING_KEY: Final = "jobstatus-local-cursor-signing-key"  # public: local stages only
MIN_KEY_LENGTH: Final = 16


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def split_origins(value: str) -> tuple[str, ...]:
    """The origins of a comma-separated `ALLOWED_ORIGINS` value, blanks dropped."""
    return split_comma_list(value)


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """GetJobFn's settings: `STAGE, JOBS_TABLE_NAME, JOB_TTL_DAYS, ALLOWED_ORIGINS, CURSOR_KEY_SECRET_ARN`."""

    stage: str = DEFAULT_STAGE
    jobs_table_name: str = DEFAULT_JOBS_TABLE_NAME
    job_ttl_days: int = DEFAULT_JOB_TTL_DAYS
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    # The secret holding the list cursors' HMAC key (its ARN, not its value: no key in the environment).
    cursor_key_secret_arn: str | None = None

    def __post_init__(self) -> None:
        low, high = JOB_TTL_DAYS_RANGE
        if not low <= self.job_ttl_days <= high:
            raise SettingsError(f"JOB_TTL_DAYS must be from {low} to {high}, got {self.job_ttl_days}")
        if not self.cursor_key_secret_arn and self.stage not in LOCAL_STAGES:
            raise SettingsError(f"CURSOR_KEY_SECRET_ARN is required in stage {self.stage!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """The settings from environment variables (names case-insensitive); SettingsError when invalid."""
        source = os.environ if environ is None else environ
        env = {name.lower(): value for name, value in source.items()}
        ttl = env.get("job_ttl_days")
        origins = env.get("allowed_origins")
        return cls(
            stage=env.get("stage", DEFAULT_STAGE),
            jobs_table_name=env.get("jobs_table_name", DEFAULT_JOBS_TABLE_NAME),
            job_ttl_days=DEFAULT_JOB_TTL_DAYS if ttl is None else _integer("JOB_TTL_DAYS", ttl),
            allowed_origins=DEFAULT_ALLOWED_ORIGINS if origins is None else split_origins(origins),
            cursor_key_secret_arn=env.get("cursor_key_secret_arn") or None,
        )

    def cursor_key(self, secret_value: str | None) -> bytes:
        """The HMAC key of list cursors: the secret's value, or without a secret the public dev key.

        `secret_value` is what the secret of `cursor_key_secret_arn` holds (None when there is none;
        `__post_init__` allows that only in local stages).
        """
        if secret_value is None:
            if self.cursor_key_secret_arn:
                raise SettingsError("the secret of CURSOR_KEY_SECRET_ARN holds no SecretString")
            return DEV_CURSOR_SIGNING_KEY.encode()
        if len(secret_value) < MIN_KEY_LENGTH:
            raise SettingsError(
                f"the secret of CURSOR_KEY_SECRET_ARN must hold at least {MIN_KEY_LENGTH} characters"
            )
        return secret_value.encode()
