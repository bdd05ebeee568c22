"""WebhookSecretFn: `GET /v1/webhooks/secret` answers the caller's `whsec_` secret (DESIGN §4c).

Its own small function, so GetJobFn's cold start does not pay for Secrets Manager. The caller is
the `sub` claim; the error body and CORS are the API's (`api.core`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger
from botocore.session import Session

from api.core import ApiError, caller_from_claims, cors_headers
from jobstatus.http import error_body
from jobstatus.logkeys import names_its_function
from webhooks.settings import WebhookSettings
from webhooks.signing import read_master_secret, user_secret

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

SECRET_PATH: Final = "/v1/webhooks/secret"  # noqa: S105 - a path, not a password
logger = Logger()


@dataclass(frozen=True)
class Dependencies:
    """The master secret's bytes and the allowed CORS origins."""

    master: bytes
    allowed_origins: tuple[str, ...]


@functools.cache
def dependencies() -> Dependencies:
    """Read once per container: the settings and the master secret."""
    settings = WebhookSettings.from_env().require("webhook_secret_id")
    client: Any = Session().create_client("secretsmanager")
    return Dependencies(read_master_secret(client, settings.webhook_secret_id), settings.allowed_origins)


def _answer(status: int, body: Any | None, headers: Mapping[str, str]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "statusCode": status,
        "headers": {"Cache-Control": "no-store", "Vary": "Origin", **headers},
        "isBase64Encoded": False,
        "body": "" if body is None else json.dumps(body, separators=(",", ":")),
    }
    if body is not None:
        answer["headers"]["Content-Type"] = "application/json"
    return answer


def handle(event: Mapping[str, Any], deps: Dependencies) -> dict[str, Any]:
    """One REST proxy event: 200 `{"secret"}`, else the one error body (preflights are the gateway's MOCK)."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    method = str(event.get("httpMethod", "")).upper()
    cors = cors_headers(headers.get("origin"), deps.allowed_origins, preflight=False)
    if method != "GET":
        return _answer(
            405,
            error_body("METHOD_NOT_ALLOWED", f"{method} is not allowed on {SECRET_PATH}"),
            {**cors, "Allow": "GET"},
        )
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    try:
        caller = caller_from_claims(authorizer.get("claims") if isinstance(authorizer, Mapping) else None)
    except ApiError as error:
        return _answer(error.status, error.body(), {**cors, **error.headers})
    logger.info("webhook secret read", extra={"userId": caller.user_id})
    return _answer(200, {"secret": user_secret(deps.master, caller.user_id)}, cors)


@logger.inject_lambda_context(clear_state=True)
@names_its_function
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point."""
    return handle(event, dependencies())
