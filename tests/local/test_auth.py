"""The Cognito-like authorizer: tokens it issues pass, everything else is refused."""

from __future__ import annotations

import time

import jwt
import pytest

from local.auth import AUDIENCE, ISSUER, Authorizer, SigningKey, Unauthorized, issue_token

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.load_or_create(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def authorizer(key: SigningKey) -> Authorizer:
    return Authorizer(key.jwks())


def test_a_token_it_issued_gives_string_claims(key: SigningKey, authorizer: Authorizer) -> None:
    claims = authorizer.claims_of(f"Bearer {issue_token(key, 'alice')}")
    assert claims["sub"] == "alice"
    assert claims["token_use"] == "id"
    assert claims["iss"] == ISSUER
    assert "cognito:groups" not in claims
    assert all(isinstance(v, str) for v in claims.values())


def test_admin_groups_arrive_as_a_string_as_api_gateway_sends_them(
    key: SigningKey, authorizer: Authorizer
) -> None:
    claims = authorizer.claims_of("Bearer " + issue_token(key, "root", admin=True))
    assert claims["cognito:groups"] == "admin"


def test_a_raw_token_without_bearer_is_accepted(key: SigningKey, authorizer: Authorizer) -> None:
    assert authorizer.claims_of(issue_token(key, "bob"))["sub"] == "bob"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
def test_missing_or_unreadable_tokens_are_refused(authorizer: Authorizer, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        authorizer.claims_of(header)


def test_an_expired_token_is_refused(key: SigningKey, authorizer: Authorizer) -> None:
    old = issue_token(key, "alice", seconds=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized, match="expired"):
        authorizer.claims_of(f"Bearer {old}")


def test_a_token_of_another_key_is_refused(tmp_path, authorizer: Authorizer) -> None:
    other = SigningKey.load_or_create(tmp_path)
    with pytest.raises(Unauthorized, match="unknown key"):
        authorizer.claims_of("Bearer " + issue_token(other, "mallory"))


def test_a_token_with_our_kid_but_another_signature_is_refused(
    tmp_path, key: SigningKey, authorizer: Authorizer
):
    other = SigningKey.load_or_create(tmp_path)
    forged = jwt.encode(
        {
            "sub": "mallory",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "token_use": "id",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        other.private_key,
        algorithm="RS256",
        headers={"kid": key.kid},
    )
    with pytest.raises(Unauthorized, match="Signature"):
        authorizer.claims_of(f"Bearer {forged}")


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("iss", "https://evil.example", "(?i)issuer"),
        ("aud", "other-client", "(?i)audience"),
        ("token_use", "refresh", "token_use"),
    ],
)
def test_wrong_issuer_audience_or_use_is_refused(
    key: SigningKey, authorizer: Authorizer, claim, value, reason
) -> None:
    claims = {
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "id",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        claim: value,
    }
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(Unauthorized, match=reason):
        authorizer.claims_of(f"Bearer {token}")


def test_a_token_without_sub_is_refused(key: SigningKey, authorizer: Authorizer) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "id",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(Unauthorized, match="sub"):
        authorizer.claims_of(f"Bearer {token}")


def test_an_hs256_token_is_refused(key: SigningKey, authorizer: Authorizer) -> None:
    token = jwt.encode(
        {"sub": "x"}, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256", headers={"kid": key.kid}
    )
    with pytest.raises(Unauthorized):
        authorizer.claims_of(f"Bearer {token}")


def test_the_key_is_kept_and_reused(tmp_path) -> None:
    first = SigningKey.load_or_create(tmp_path)
    second = SigningKey.load_or_create(tmp_path)
    assert first.kid == second.kid
    assert (tmp_path / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0
    Authorizer(second.jwks()).claims_of(issue_token(first, "alice"))


def test_a_key_file_that_is_not_rsa_is_refused(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "jwt-signing-key.pem").write_bytes(pem)
    with pytest.raises(ValueError, match="RSA"):
        SigningKey.load_or_create(tmp_path)
