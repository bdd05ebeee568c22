"""The webhook functions' settings: a typed, frozen model read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from jobstatus.contract import DEFAULT_ALLOWED_ORIGINS, DEFAULT_STAGE

LOCAL_STAGES: Final = frozenset({"dev", "test", "local"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """`STAGE, DELIVERY_QUEUE_URL, DELIVERY_DLQ_URL, DELIVERIES_TABLE_NAME, WEBHOOK_SECRET_ID,
    WEBHOOKS_ALLOW_LOCAL, ALLOWED_ORIGINS`; each function checks the ones it needs with `require`.
    """

    stage: str = DEFAULT_STAGE
    delivery_queue_url: str = ""
    delivery_dlq_url: str = ""
    deliveries_table_name: str = ""
    webhook_secret_id: str = ""
    allow_local: bool = False
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS

    def __post_init__(self) -> None:
        if self.allow_local and self.stage not in LOCAL_STAGES:
            raise SettingsError(f"WEBHOOKS_ALLOW_LOCAL is only allowed in stages {sorted(LOCAL_STAGES)}")

    def require(self, *names: str) -> WebhookSettings:
        """These settings, or SettingsError naming the first empty one."""
        for name in names:
            if not getattr(self, name):
                raise SettingsError(f"{name.upper()} is required")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """The settings from environment variables (names case-insensitive)."""
        source = os.environ if environ is None else environ
        env = {name.lower(): value for name, value in source.items()}
        allow = env.get("webhooks_allow_local", "").strip().lower()
        if allow not in _TRUE | _FALSE:
            raise SettingsError(f"WEBHOOKS_ALLOW_LOCAL must be true or false, got {allow!r}")
        origins = env.get("allowed_origins")
        return cls(
            stage=env.get("stage", DEFAULT_STAGE),
            delivery_queue_url=env.get("delivery_queue_url", ""),
            delivery_dlq_url=env.get("delivery_dlq_url", ""),
            deliveries_table_name=env.get("deliveries_table_name", ""),
            webhook_secret_id=env.get("webhook_secret_id", ""),
            allow_local=allow in _TRUE,
            allowed_origins=DEFAULT_ALLOWED_ORIGINS
            if origins is None
            else tuple(o.strip() for o in origins.split(",") if o.strip()),
        )
