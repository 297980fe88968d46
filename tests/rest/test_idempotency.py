"""Idempotency keys: the ledger against a model of the rules (hypothesis state machine),
and the in-memory store on trio's clock."""

from __future__ import annotations

import trio
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from netkit.rest._idempotency import (
    IdempotencyLedger,
    InFlight,
    MemoryIdempotencyStore,
    Mismatch,
    Proceed,
    Replay,
    StoredResponse,
    fingerprint,
)

TTL = 10.0
MAX_KEYS = 3
KEYS = st.sampled_from(["k1", "k2", "k3", "k4"])
BODIES = st.sampled_from([b"", b'{"a":1}', b'{"a":2}'])


class LedgerMachine(RuleBasedStateMachine):
    """Requests with keys arrive, run (in flight), finish or fail, while time passes.

    The model: ``running`` maps a key to the request that claimed it; ``done`` keeps, in
    the order they were stored, (key, fingerprint, response, expiry).
    """

    claimed = Bundle("claimed")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = IdempotencyLedger(TTL, MAX_KEYS)
        self.now = 0.0
        self.running: dict[str, str] = {}
        self.done: list[tuple[str, str, StoredResponse, float]] = []
        self.serial = 0

    def _expire(self) -> None:
        self.done = [entry for entry in self.done if entry[3] > self.now]

    @rule(target=claimed, key=KEYS, body=BODIES)
    def claim(self, key: str, body: bytes) -> tuple[str, str]:
        fp = fingerprint("POST", "/v1/orders", body)
        got = self.ledger.claim(key, fp, self.now)
        self._expire()
        stored = next((e for e in self.done if e[0] == key), None)
        if key in self.running:
            assert got == (InFlight() if self.running[key] == fp else Mismatch())
        elif stored is not None:
            assert got == (Replay(stored[2]) if stored[1] == fp else Mismatch())
        else:
            assert got == Proceed()
            self.running[key] = fp
            return key, fp
        return "", ""  # nothing claimed: completing it must change nothing

    @rule(claim=consumes(claimed), status=st.sampled_from([200, 201, 404, 422]))
    def complete(self, claim: tuple[str, str], status: int) -> None:
        key, fp = claim
        self.serial += 1
        response = StoredResponse(
            status, (("content-type", "application/json"),), b"%d" % self.serial
        )
        self.ledger.complete(key, fp, response, self.now)
        if key and self.running.get(key) == fp:
            del self.running[key]
            self._expire()
            while self.done and len(self.done) >= MAX_KEYS:
                self.done.pop(0)
            self.done.append((key, fp, response, self.now + TTL))

    @rule(claim=consumes(claimed))
    def fail(self, claim: tuple[str, str]) -> None:
        key, fp = claim
        self.ledger.release(key, fp)
        if key and self.running.get(key) == fp:
            del self.running[key]

    @rule(seconds=st.sampled_from([0.5, 3.0, TTL]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def sizes_agree(self) -> None:
        self._expire()
        ledger_done = {key for key in self.ledger._done if self.ledger._done[key][2] > self.now}
        assert ledger_done == {e[0] for e in self.done}
        assert self.ledger._running == self.running
        assert len(self.ledger._done) <= MAX_KEYS


TestLedger = LedgerMachine.TestCase


def test_fingerprint_separates_its_parts() -> None:
    assert fingerprint("POST", "/a", b"b") != fingerprint("POST", "/ab", b"")
    assert fingerprint("POST", "/a", b"x") == fingerprint("POST", "/a", b"x")
    assert fingerprint("PATCH", "/a", b"x") != fingerprint("POST", "/a", b"x")


async def test_memory_store_expires_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryIdempotencyStore(ttl=60.0, max_keys=10)
    fp = fingerprint("POST", "/x", b"{}")
    assert await store.claim("key", fp) == Proceed()
    response = StoredResponse(201, (), b"{}")
    await store.complete("key", fp, response)
    await trio.sleep(59.0)
    assert await store.claim("key", fp) == Replay(response)
    await trio.sleep(2.0)
    assert await store.claim("key", fp) == Proceed()  # expired: runs again
