"""HMAC request signing: round trips, and every way a request can be refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.security import HMACSigner, HMACVerifier, Unauthenticated
from netkit.security._hmac import canonical


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pair(window: float = 300.0, max_nonces: int = 100) -> tuple[HMACSigner, HMACVerifier, Clock]:
    clock = Clock()
    signer = HMACSigner("k1", b"secret", clock=clock)
    verifier = HMACVerifier({"k1": b"secret"}, window=window, clock=clock, max_nonces=max_nonces)
    return signer, verifier, clock


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])
targets = st.from_regex(r"/[a-z0-9/]{0,20}(\?[a-z0-9=&]{0,10})?", fullmatch=True)


@given(methods, targets, st.binary(max_size=200))
def test_signed_requests_verify(method: str, target: str, body: bytes) -> None:
    signer, verifier, _ = pair()
    assert verifier.verify(method, target, body, signer.sign(method, target, body)) == "k1"


@given(methods, targets, st.binary(max_size=64), st.data())
def test_any_tampering_is_refused(
    method: str, target: str, body: bytes, data: st.DataObject
) -> None:
    signer, verifier, _ = pair()
    header = signer.sign(method, target, body)
    what = data.draw(st.sampled_from(["method", "target", "body", "sig", "ts", "nonce"]))
    if what == "method":
        method = "PATCH"
    elif what == "target":
        target += "x"
    elif what == "body":
        body += b"!"
    else:
        fields = dict(part.split("=", 1) for part in header[3:].split(","))
        fields[what] = fields[what][:-1] + ("A" if fields[what][-1] != "A" else "B")
        header = "v1 " + ",".join(f"{k}={v}" for k, v in fields.items())
    with pytest.raises(Unauthenticated):
        verifier.verify(method, target, body, header)


def test_replay_stale_future_and_malformed() -> None:
    signer, verifier, clock = pair(window=60)
    header = signer.sign("POST", "/hook", b"{}")
    verifier.verify("POST", "/hook", b"{}", header)
    with pytest.raises(Unauthenticated, match="replayed"):
        verifier.verify("POST", "/hook", b"{}", header)
    stale = signer.sign("POST", "/hook", b"{}")
    clock.now += 61
    with pytest.raises(Unauthenticated, match="stale"):
        verifier.verify("POST", "/hook", b"{}", stale)
    clock.now += 120
    future = signer.sign("POST", "/hook", b"{}")
    clock.now -= 61
    with pytest.raises(Unauthenticated, match="stale"):
        verifier.verify("POST", "/hook", b"{}", future)
    for bad in [None, "", "v2 key=k1", "v1 key=k1,ts=1", "v1 key=k1,ts=x,nonce=n,sig=s"]:
        with pytest.raises(Unauthenticated):
            verifier.verify("POST", "/hook", b"{}", bad)
    other = HMACSigner("k2", b"secret", clock=clock)
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.verify("POST", "/hook", b"{}", other.sign("POST", "/hook", b"{}"))
    wrong_secret = HMACSigner("k1", b"guess", clock=clock)
    with pytest.raises(Unauthenticated, match="does not match"):
        verifier.verify("POST", "/hook", b"{}", wrong_secret.sign("POST", "/hook", b"{}"))


def test_nonces_are_forgotten_after_the_window_and_bounded() -> None:
    signer, verifier, clock = pair(window=10, max_nonces=3)
    for _ in range(3):
        verifier.verify("GET", "/", b"", signer.sign("GET", "/", b""))
    with pytest.raises(Unauthenticated, match="too many"):
        verifier.verify("GET", "/", b"", signer.sign("GET", "/", b""))
    clock.now += 21  # every remembered nonce is past its timestamp's window
    verifier.verify("GET", "/", b"", signer.sign("GET", "/", b""))
    assert len(verifier._seen) == 1


def test_canonical_string_separates_fields() -> None:
    assert canonical("k", "post", "/a", 1, "n", b"") == (
        b"netkit-hmac-v1\nk\nPOST\n/a\n1\nn\n"
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    with pytest.raises(ValueError):
        HMACSigner("a,b", b"x")
