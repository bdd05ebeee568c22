"""GetJobFn's settings: the shared ones plus the key that signs list cursors."""

from __future__ import annotations

from typing import Final

from pydantic import SecretStr, model_validator

from jobstatus.settings import Settings

# Only stages that never face the internet may sign cursors with a key anyone can read here.
LOCAL_STAGES: Final = frozenset({"dev", "test", "local"})
DEV_CURSOR_SIGNING_KEY: Final = "jobstatus-local-cursor-signing-key"  # public: local stages only
MIN_KEY_LENGTH: Final = 16


class ApiSettings(Settings):
    """Settings of GetJobFn (`CURSOR_SIGNING_KEY` besides the shared ones)."""

    cursor_signing_key: SecretStr | None = None

    @model_validator(mode="after")
    def _key_outside_local_stages(self) -> ApiSettings:
        key = self.cursor_signing_key
        if key is None and self.stage not in LOCAL_STAGES:
            raise ValueError(f"CURSOR_SIGNING_KEY is required in stage {self.stage!r}")
        if key is not None and len(key.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(f"CURSOR_SIGNING_KEY must have at least {MIN_KEY_LENGTH} characters")
        return self

    def cursor_key(self) -> bytes:
        """The HMAC key of list cursors (the public dev default in local stages)."""
        key = self.cursor_signing_key
        return (key.get_secret_value() if key is not None else DEV_CURSOR_SIGNING_KEY).encode()
