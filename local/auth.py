"""A Cognito-like issuer and authorizer for the local stack: RS256 JWTs checked against a local JWKS.

The signing key is made once and kept in the data folder (`.local/jwt-signing-key.pem`), so tokens
printed by `jobstatus token` keep working across restarts. `Authorizer.claims_of` does what API
Gateway's Cognito user-pool authorizer does before any function runs: verify signature, issuer,
audience, expiry and `token_use`, then hand the claims on as strings (`requestContext.authorizer.claims`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE: Final = "jwt-signing-key.pem"
ISSUER: Final = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_jobstatuslocal"
AUDIENCE: Final = "jobstatus-local-client"
ADMIN_GROUP: Final = "admin"
DEFAULT_TOKEN_SECONDS: Final = 12 * 3600
REQUIRED_CLAIMS: Final = ("sub", "iss", "exp", "iat", "token_use")


class Unauthorized(Exception):
    """The request carries no token, or one the authorizer refuses."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key with its key id (the SHA-256 of its public numbers)."""

    private_key: rsa.RSAPrivateKey

    @classmethod
    def load_or_create(cls, folder: Path) -> SigningKey:
        """The key kept in `folder`, made (and saved owner-readable only) the first time."""
        path = folder / KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path} does not hold an RSA private key")
            return cls(loaded)
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return cls(key)

    @property
    def kid(self) -> str:
        """The key id put in every token header and in the JWKS."""
        numbers = self.private_key.public_key().public_numbers()
        return hashlib.sha256(f"{numbers.n}:{numbers.e}".encode()).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set, as Cognito serves it at `/.well-known/jwks.json`."""
        numbers = self.private_key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }
        return {"keys": [key]}


def issue_token(
    key: SigningKey,
    user: str,
    *,
    admin: bool = False,
    seconds: int = DEFAULT_TOKEN_SECONDS,
    now: float | None = None,
) -> str:
    """A Cognito-style ID token for `user` (its `sub`), in the `admin` group when asked."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        "cognito:username": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "id",
        "auth_time": issued,
        "iat": issued,
        "exp": issued + seconds,
        "jti": str(uuid.uuid4()),
    }
    if admin:
        claims["cognito:groups"] = [ADMIN_GROUP]
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def _as_claim_string(value: Any) -> str:
    # API Gateway's Cognito authorizer passes every claim on as a string; lists are comma-joined.
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Authorizer:
    """Verifies bearer tokens against a JWKS, as a Cognito user-pool authorizer does."""

    def __init__(self, jwks: dict[str, Any], issuer: str = ISSUER, audience: str = AUDIENCE):
        self._keys = jwt.PyJWKSet.from_dict(jwks)
        self._issuer = issuer
        self._audience = audience

    def claims_of(self, authorization: str | None) -> dict[str, str]:
        """The verified claims of an `Authorization` header value, as strings; else `Unauthorized`."""
        if not authorization:
            raise Unauthorized("no Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        # Cognito authorizers accept the raw token as well as `Bearer <token>`.
        token = token.strip() if scheme.lower() == "bearer" else authorization.strip()
        try:
            header = jwt.get_unverified_header(token)
            key = next((k for k in self._keys.keys if k.key_id == header.get("kid")), None)
            if key is None:
                raise Unauthorized("token signed by an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"token refused: {error}") from error
        if claims.get("token_use") not in {"id", "access"}:
            raise Unauthorized("token_use must be id or access")
        return {name: _as_claim_string(value) for name, value in claims.items()}
