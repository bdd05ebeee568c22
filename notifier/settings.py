"""Settings of the live-update functions: typed, frozen, read once from the environment (DESIGN §5)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from jobstatus.contract import DEFAULT_JOBS_TABLE_NAME, DEFAULT_STAGE

DEFAULT_CONNECTIONS_TABLE_NAME: Final = "JobStreamConnections-dev"
JWKS_PATH: Final = "/.well-known/jwks.json"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _env(environ: Mapping[str, str] | None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    return {name.upper(): value for name, value in source.items()}


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """StreamFn and NotifierFn: `JOBS_TABLE_NAME, CONNECTIONS_TABLE_NAME, CONNECTIONS_ENDPOINT, STAGE`."""

    connections_endpoint: str
    stage: str = DEFAULT_STAGE
    jobs_table_name: str = DEFAULT_JOBS_TABLE_NAME
    connections_table_name: str = DEFAULT_CONNECTIONS_TABLE_NAME

    def __post_init__(self) -> None:
        if not self.connections_endpoint.startswith(("https://", "http://")):
            raise SettingsError(
                f"CONNECTIONS_ENDPOINT must be the WebSocket stage's URL, got {self.connections_endpoint!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamSettings:
        """The settings from environment variables; SettingsError when invalid."""
        env = _env(environ)
        return cls(
            connections_endpoint=env.get("CONNECTIONS_ENDPOINT", ""),
            stage=env.get("STAGE", DEFAULT_STAGE),
            jobs_table_name=env.get("JOBS_TABLE_NAME", DEFAULT_JOBS_TABLE_NAME),
            connections_table_name=env.get("CONNECTIONS_TABLE_NAME", DEFAULT_CONNECTIONS_TABLE_NAME),
        )


@dataclass(frozen=True, slots=True)
class AuthorizerSettings:
    """StreamAuthorizerFn: `COGNITO_ISSUER`, `COGNITO_CLIENT_IDS` (comma-separated), optional `JWKS_URL`."""

    issuer: str
    client_ids: tuple[str, ...]
    jwks_url: str

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("https://", "http://")):
            raise SettingsError(f"COGNITO_ISSUER must be the user pool's issuer URL, got {self.issuer!r}")
        if not self.client_ids:
            raise SettingsError("COGNITO_CLIENT_IDS must name at least one app client id")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthorizerSettings:
        """The settings from environment variables; SettingsError when invalid."""
        env = _env(environ)
        issuer = env.get("COGNITO_ISSUER", "").rstrip("/")
        clients = tuple(c.strip() for c in env.get("COGNITO_CLIENT_IDS", "").split(",") if c.strip())
        return cls(issuer=issuer, client_ids=clients, jwks_url=env.get("JWKS_URL") or issuer + JWKS_PATH)
