"""StreamAuthorizerFn: the WebSocket `$connect` REQUEST authorizer (DESIGN §4b).

Verifies the Cognito token of the query parameter `token` with PyJWT: signature against the user
pool's JWKS (fetched once per container and cached by `PyJWKClient`), issuer, expiry, `token_use`
(`id` or `access`), and the app client: `aud` of an ID token, `client_id` of an access token. Allows
`$connect` with context `{userId, admin}`; anything else is refused with `Unauthorized`, which API
Gateway answers 401 (a Deny policy would be 403).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jwt
from aws_lambda_powertools import Logger

from api.core import ApiError, caller_from_claims
from jobstatus.logkeys import names_its_function
from notifier.settings import AuthorizerSettings, SettingsError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

ALGORITHMS: Final = ["RS256"]
TOKEN_USES: Final = frozenset({"id", "access"})
LEEWAY_SECONDS: Final = 5
JWKS_CACHE_SECONDS: Final = 3600
# A token naming an unknown key may mean Cognito rotated its keys: refetch, but at most this often,
# so tokens with made-up key ids cannot make every connect attempt fetch the JWKS.
JWKS_REFRESH_SECONDS: Final = 300

logger = Logger()


class Refused(Exception):
    """The token is missing or not one we accept; the message says why (for the log, not the client)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token names."""

    user_id: str
    admin: bool


class TokenVerifier:
    """Verifies Cognito tokens against one user pool and its app clients."""

    def __init__(
        self,
        settings: AuthorizerSettings,
        jwks: jwt.PyJWKClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._refreshed_at: float | None = None
        self._jwks = jwks or jwt.PyJWKClient(
            settings.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=5
        )

    def verify(self, token: str | None) -> Identity:
        """The identity of a valid token; `Refused` otherwise."""
        if not token:
            raise Refused("no token query parameter")
        try:
            key = self._signing_key(jwt.get_unverified_header(token).get("kid"))
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                issuer=self._settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "iss", "exp", "token_use"], "verify_aud": False},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise Refused(f"the JWKS could not be fetched: {error}") from error
        except jwt.PyJWTError as error:
            raise Refused(f"token refused: {error}") from error
        use = claims.get("token_use")
        if use not in TOKEN_USES:
            raise Refused(f"token_use must be id or access, got {use!r}")
        client = claims.get("aud") if use == "id" else claims.get("client_id")
        if client not in self._settings.client_ids:
            raise Refused(f"the token is for another app client ({'aud' if use == 'id' else 'client_id'})")
        try:
            caller = caller_from_claims(claims)
        except ApiError as error:
            raise Refused(error.message) from error
        return Identity(user_id=caller.user_id, admin=caller.is_admin)

    def _signing_key(self, kid: object) -> jwt.PyJWK:
        """The JWKS key named `kid`: from the cached set, refetched at most every JWKS_REFRESH_SECONDS."""
        for refresh in (False, True):
            if refresh:
                now = self._clock()
                if self._refreshed_at is not None and now - self._refreshed_at < JWKS_REFRESH_SECONDS:
                    break
                self._refreshed_at = now
            found = next((k for k in self._jwks.get_signing_keys(refresh=refresh) if k.key_id == kid), None)
            if found is not None:
                return found
        raise Refused("the token is signed by an unknown key")


def _token_of(event: Mapping[str, Any]) -> str | None:
    params = event.get("queryStringParameters") or {}
    token = params.get("token") if isinstance(params, Mapping) else None
    return token if isinstance(token, str) else None


def allow_policy(identity: Identity, method_arn: str) -> dict[str, Any]:
    """The IAM policy that lets this identity connect, with the context the routes read."""
    return {
        "principalId": identity.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        # API Gateway passes context values on as strings, numbers or booleans: admin as "true"/"false".
        "context": {"userId": identity.user_id, "admin": "true" if identity.admin else "false"},
    }


def authorize(event: Mapping[str, Any], verifier: TokenVerifier) -> dict[str, Any]:
    """The Allow policy for a valid token; `Refused` otherwise."""
    identity = verifier.verify(_token_of(event))
    logger.info("connect allowed", extra={"userId": identity.user_id, "admin": identity.admin})
    return allow_policy(identity, str(event.get("methodArn", "")))


@functools.cache
def verifier() -> TokenVerifier:
    """The production verifier (settings read and the JWKS client made once per container)."""
    return TokenVerifier(AuthorizerSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@names_its_function
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The AWS entry point: an Allow policy, or `Unauthorized` (API Gateway answers 401)."""
    try:
        return authorize(event, verifier())
    except SettingsError:
        # StreamUserPoolId / StreamClientIds not given at deploy: nobody can connect, loudly.
        logger.exception("the authorizer is not configured; every connect is refused")
        raise Exception("Unauthorized") from None
    except Refused as error:
        logger.info("connect refused", extra={"reason": str(error)})
        raise Exception("Unauthorized") from None
