"""Authenticators: bearer tokens, JWT (HS256/RS256/ES256, claims, kid rotation, attacks),
mTLS identities, and their combination."""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_mod
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from netkit.http import Headers
from netkit.security import (
    AnyOf,
    AuthRequest,
    BearerTokens,
    JWTAuthenticator,
    MutualTLS,
    PeerIdentity,
    Principal,
    Unauthenticated,
)

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())


def request(token: str | None = None, peer: PeerIdentity | None = None) -> AuthRequest:
    pairs = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    headers = Headers(pairs)
    return AuthRequest("rest", "GET", "/", headers, peer)


def claims(**extra: Any) -> dict[str, Any]:
    # Parametrize builds some of these at collection: valid for an hour, so a long suite
    # run before the test does not expire them.
    now = int(time.time())
    base = {"sub": "carol", "iss": "iss", "aud": "api", "exp": now + 3600, "scope": "a b"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


async def test_bearer_tokens_static_and_callable() -> None:
    static = BearerTokens({"t1": Principal("alice", {"x"}), "t2": "bob"})
    assert (await static.authenticate(request("t1"))) == Principal("alice", {"x"})
    assert (await static.authenticate(request("t2"))).id == "bob"  # type: ignore[union-attr]
    assert await static.authenticate(request()) is None
    with pytest.raises(Unauthenticated) as bad:
        await static.authenticate(request("t3"))
    assert bad.value.error == "invalid_token"

    async def lookup(token: str) -> Principal | None:
        return Principal(token.upper()) if token.startswith("ok") else None

    dynamic = BearerTokens(lookup=lookup)
    assert (await dynamic.authenticate(request("ok1"))) == Principal("OK1")
    with pytest.raises(Unauthenticated):
        await dynamic.authenticate(request("no"))
    with pytest.raises(ValueError):
        BearerTokens()


@pytest.mark.parametrize(
    ("algorithm", "signing", "verifying"),
    [
        ("HS256", b"k" * 32, b"k" * 32),
        ("RS256", RSA, RSA.public_key()),
        ("ES256", EC, EC.public_key()),
    ],
)
async def test_jwt_algorithms(algorithm: str, signing: Any, verifying: Any) -> None:
    authn = JWTAuthenticator(verifying, algorithms=[algorithm], issuer="iss", audience="api")
    token = jwt.encode(claims(roles=["admin"]), signing, algorithm=algorithm)
    principal = await authn.authenticate(request(token))
    assert principal is not None
    assert (principal.id, principal.scopes, principal.roles) == ("carol", {"a", "b"}, {"admin"})
    assert principal.method == "jwt" and principal.claims["aud"] == "api"


@pytest.mark.parametrize(
    ("bad", "message"),
    # Built when the test runs, not when it is collected: a long suite would otherwise
    # let the "good" expiry of these tokens pass before they are checked.
    [
        (lambda: claims(exp=int(time.time()) - 3600), "expired"),
        (lambda: claims(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: claims(iss="evil"), "issuer"),
        (lambda: claims(aud="other"), "not meant for us"),
        (lambda: claims(exp=None), "'exp'"),
    ],
    ids=["expired", "not-yet-valid", "issuer", "audience", "no-exp"],
)
async def test_jwt_claims_are_checked(bad: Callable[[], dict[str, Any]], message: str) -> None:
    authn = JWTAuthenticator(EC.public_key(), algorithms=["ES256"], issuer="iss", audience="api")
    with pytest.raises(Unauthenticated, match=message):
        await authn.authenticate(request(jwt.encode(bad(), EC, algorithm="ES256")))


async def test_jwt_attacks_are_refused() -> None:
    public_pem = RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    authn = JWTAuthenticator(public_pem, algorithms=["RS256", "HS256"])
    unsigned = jwt.encode(claims(), None, algorithm="none")
    forged = jwt.encode(claims(), RSA, algorithm="RS256")[:-4] + "AAAA"
    for token in [unsigned, forged, "not-a-jwt", "a.b.c"]:
        with pytest.raises(Unauthenticated):
            await authn.authenticate(request(token))

    # The RS256 -> HS256 confusion: the public key used as an HMAC secret.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = hmac_mod.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthenticated):
        await authn.authenticate(request(f"{head}.{body}.{b64(sig)}"))
    with pytest.raises(ValueError):
        JWTAuthenticator(b"k", algorithms=["none"])


async def test_jwt_kid_selection_and_jwks() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    authn = JWTAuthenticator({"a": EC.public_key(), "b": other.public_key()}, algorithms=["ES256"])
    by_a = jwt.encode(claims(), EC, algorithm="ES256", headers={"kid": "a"})
    wrong = jwt.encode(claims(), other, algorithm="ES256", headers={"kid": "a"})
    no_kid = jwt.encode(claims(), EC, algorithm="ES256")
    assert (await authn.authenticate(request(by_a))) is not None
    with pytest.raises(Unauthenticated):
        await authn.authenticate(request(wrong))
    with pytest.raises(Unauthenticated, match="signing key"):
        await authn.authenticate(request(no_kid))  # two keys: the token must say which
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(EC.public_key(), as_dict=True)
    jwks = JWTAuthenticator.from_jwks({"keys": [{**jwk, "kid": "a"}]}, algorithms=["ES256"])
    assert jwks.key_ids == ["a"]
    assert (await jwks.authenticate(request(by_a))) is not None


PEERCERT = {
    "subject": ((("organizationName", "netkit"),), (("commonName", "billing"),)),
    "issuer": ((("commonName", "Test CA"),),),
    "subjectAltName": (("DNS", "billing.svc"), ("email", "ops@x"), ("IP Address", "10.0.0.1")),
    "serialNumber": "0A",
    "notAfter": "Jan  1 00:00:00 2030 GMT",
}


async def test_mutual_tls_identity_and_mapping() -> None:
    peer = PeerIdentity.from_peercert(PEERCERT)
    assert (peer.common_name, peer.name, peer.dns, peer.ips) == (
        "billing",
        "billing.svc",
        ("billing.svc",),
        ("10.0.0.1",),
    )
    assert peer.subject["organizationName"] == "netkit" and peer.issuer["commonName"] == "Test CA"
    mtls = MutualTLS(scopes={"billing.svc": ["orders:read"]}, allowed=["billing.svc"])
    principal = await mtls.authenticate(request(peer=peer))
    assert principal is not None and principal.scopes == {"orders:read"}
    assert await mtls.authenticate(request()) is None
    stranger = PeerIdentity(subject={"commonName": "x"})
    with pytest.raises(Unauthenticated):
        await mtls.authenticate(request(peer=stranger))
    mapped = MutualTLS(map=lambda p: Principal("svc:" + p.name) if p.dns else None)
    assert (await mapped.authenticate(request(peer=peer))) == Principal("svc:billing.svc")
    with pytest.raises(Unauthenticated):
        await mapped.authenticate(request(peer=stranger))


async def test_any_of_stops_at_a_refusal() -> None:
    combined = AnyOf(BearerTokens({"t": "alice"}), MutualTLS())
    peer = PeerIdentity.from_peercert(PEERCERT)
    assert (await combined.authenticate(request(peer=peer))).id == "billing.svc"  # type: ignore[union-attr]
    with pytest.raises(Unauthenticated):
        await combined.authenticate(request("forged", peer=peer))  # no fallback to the cert
    assert await combined.authenticate(request()) is None
    assert combined.schemes() == ["Bearer"]
