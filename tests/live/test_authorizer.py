"""StreamAuthorizerFn with keys made here and a JWKS served from a loopback HTTP server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier import authorizer
from notifier.authorizer import Identity, Refused, TokenVerifier, authorize
from notifier.settings import AuthorizerSettings
from tests.producers.fakes import lambda_context, serve_http

pytestmark = pytest.mark.unit

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"
CLIENT = "client0123456789"
KID = "key-1"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/$connect"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks() -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}


class Jwks(BaseHTTPRequestHandler):
    """Serves the JWKS and counts the fetches."""

    fetches = 0

    def do_GET(self) -> None:
        type(self).fetches += 1
        body = json.dumps(_jwks()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    server = serve_http(Jwks)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()


@pytest.fixture
def verifier(jwks_url: str) -> TokenVerifier:
    return TokenVerifier(AuthorizerSettings(ISSUER, (CLIENT,), jwks_url))


def token(*, key: Any = KEY, kid: str = KID, use: str = "id", **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "token_use": use, "iat": now, "exp": now + 3600}
    claims |= {"aud": CLIENT} if use == "id" else {"client_id": CLIENT}
    if "groups" in overrides:
        claims["cognito:groups"] = overrides.pop("groups")
    claims |= overrides
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_an_id_token_and_an_access_token_of_our_client_are_allowed(verifier):
    assert verifier.verify(token()) == Identity("alice", admin=False)
    assert verifier.verify(token(use="access", groups=["admin"])) == Identity("alice", admin=True)


def test_the_jwks_is_fetched_once_and_cached(verifier):
    before = Jwks.fetches
    for _ in range(5):
        verifier.verify(token())
    assert Jwks.fetches - before == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (None, "no token"),
        ("", "no token"),
        ("not-a-jwt", "token refused"),
        (token(exp=int(time.time()) - 60), "Signature has expired"),
        (token(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"), "Invalid issuer"),
        (token(aud="another-client"), "another app client (aud)"),
        (token(use="access", client_id="another-client"), "another app client (client_id)"),
        (token(use="refresh"), "token_use must be id or access"),
        (token(token_use=None), 'Token is missing the "token_use" claim'),
        (token(sub=""), "Authentication required"),
        (token(key=OTHER_KEY), "Signature verification failed"),
        (token(kid="unknown-kid"), "signed by an unknown key"),
        (jwt.encode({"sub": "alice", "iss": ISSUER}, key="", algorithm="none"), "unknown key"),
    ],
)
def test_bad_tokens_are_refused_saying_why(verifier, bad, reason):
    with pytest.raises(Refused) as refused:
        verifier.verify(bad)
    assert reason in str(refused.value)


def test_unknown_key_ids_refetch_the_jwks_at_most_every_five_minutes(jwks_url):
    now = [1000.0]
    verifier = TokenVerifier(AuthorizerSettings(ISSUER, (CLIENT,), jwks_url), clock=lambda: now[0])
    verifier.verify(token())
    before = Jwks.fetches
    for n in range(5):
        with pytest.raises(Refused, match="unknown key"):
            verifier.verify(token(kid=f"made-up-{n}"))
    assert Jwks.fetches - before == 1
    now[0] += 301
    with pytest.raises(Refused, match="unknown key"):
        verifier.verify(token(kid="made-up-again"))
    assert Jwks.fetches - before == 2
    assert verifier.verify(token()) == Identity("alice", admin=False)  # known keys never wait
    assert Jwks.fetches - before == 2


def test_allow_policy_carries_the_caller_in_the_context(verifier):
    event = {"type": "REQUEST", "methodArn": METHOD_ARN, "queryStringParameters": {"token": token()}}
    assert authorize(event, verifier) == {
        "principalId": "alice",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}],
        },
        "context": {"userId": "alice", "admin": "false"},
    }


def test_the_lambda_handler_answers_unauthorized_for_a_refused_token(monkeypatch, jwks_url):
    monkeypatch.setenv("COGNITO_ISSUER", ISSUER)
    monkeypatch.setenv("COGNITO_CLIENT_IDS", CLIENT)
    monkeypatch.setenv("JWKS_URL", jwks_url)
    authorizer.verifier.cache_clear()
    try:
        expired = {"methodArn": METHOD_ARN, "queryStringParameters": {"token": token(exp=1)}}
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorizer.lambda_handler(expired, lambda_context())
        allowed = {"methodArn": METHOD_ARN, "queryStringParameters": {"token": token(use="access")}}
        assert authorizer.lambda_handler(allowed, lambda_context())["context"] == {
            "userId": "alice",
            "admin": "false",
        }
    finally:
        authorizer.verifier.cache_clear()


def test_an_unconfigured_authorizer_refuses_every_connect(monkeypatch):
    monkeypatch.delenv("COGNITO_ISSUER", raising=False)
    monkeypatch.setenv("COGNITO_CLIENT_IDS", "")
    authorizer.verifier.cache_clear()
    try:
        event = {"methodArn": METHOD_ARN, "queryStringParameters": {"token": token()}}
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorizer.lambda_handler(event, lambda_context())
    finally:
        authorizer.verifier.cache_clear()
