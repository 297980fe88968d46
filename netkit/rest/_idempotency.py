"""Idempotency keys, server side: an unsafe request carrying ``Idempotency-Key`` runs once.

The rules (after the IETF httpapi draft "The Idempotency-Key HTTP Header Field" and
what Stripe-style APIs do):

- the first request with a key *claims* it and runs; its response is stored under the
  key together with a fingerprint of the request (method, target, body);
- a later request with the same key and the same fingerprint gets the stored response
  again (a *replay*), without running the handler;
- the same key with a different fingerprint is a client bug: 422;
- the same key while the first request is still running: 409, the client may retry later;
- a request whose handler failed (an exception, or a 5xx) releases the key, so that a
  retry runs again;
- stored responses expire ``ttl`` seconds after they were stored; at most ``max_keys``
  are kept, and the oldest stored response is dropped first when there is no room.

:class:`IdempotencyLedger` holds these rules as plain synchronous code taking the time
as an argument (tested with hypothesis against a model, no trio needed);
:class:`MemoryIdempotencyStore` drives it on trio's clock. Several instances behind a
balancer need one shared store: implement :class:`IdempotencyStore` over it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol

import attrs
import trio


@attrs.frozen
class StoredResponse:
    """What a replay sends: the first response's status, headers and (identity) body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@attrs.frozen
class Proceed:
    """The key is now claimed by this request: run it, then ``complete`` or ``release``."""


@attrs.frozen
class Replay:
    response: StoredResponse


@attrs.frozen
class InFlight:
    """The first request with this key is still running (409)."""


@attrs.frozen
class Mismatch:
    """The key was used for a different request (422)."""


Claim = Proceed | Replay | InFlight | Mismatch


def fingerprint(method: str, target: str, body: bytes) -> str:
    """What makes two requests "the same" for an idempotency key."""
    digest = hashlib.sha256()
    for part in (method.encode(), target.encode("latin-1", "replace"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyStore(Protocol):
    """Where keys live. All methods must be safe to call from concurrent tasks."""

    async def claim(self, key: str, fingerprint: str) -> Claim: ...

    async def complete(self, key: str, fingerprint: str, response: StoredResponse) -> None: ...

    async def release(self, key: str, fingerprint: str) -> None: ...


class IdempotencyLedger:
    """The rules above as a synchronous state machine; ``now`` is any monotonic clock."""

    def __init__(self, ttl: float, max_keys: int) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._running: dict[str, str] = {}
        #: key -> (fingerprint, response, expires at); ordered by expiry (ttl is constant).
        self._done: OrderedDict[str, tuple[str, StoredResponse, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._running) + len(self._done)

    def _expire(self, now: float) -> None:
        done = self._done
        while done:
            key, (_, _, expires) = next(iter(done.items()))
            if expires > now:
                break
            del done[key]

    def claim(self, key: str, fp: str, now: float) -> Claim:
        self._expire(now)
        running = self._running.get(key)
        if running is not None:
            return InFlight() if running == fp else Mismatch()
        stored = self._done.get(key)
        if stored is not None:
            return Replay(stored[1]) if stored[0] == fp else Mismatch()
        self._running[key] = fp
        return Proceed()

    def complete(self, key: str, fp: str, response: StoredResponse, now: float) -> None:
        if self._running.get(key) != fp:
            return  # not ours (released already): nothing to store
        del self._running[key]
        self._expire(now)
        while self._done and len(self._done) >= self.max_keys:
            self._done.popitem(last=False)
        self._done[key] = (fp, response, now + self.ttl)

    def release(self, key: str, fp: str) -> None:
        if self._running.get(key) == fp:
            del self._running[key]


class MemoryIdempotencyStore:
    """The default store: one process's memory, time from trio's clock."""

    def __init__(self, ttl: float = 24 * 3600.0, max_keys: int = 10_000) -> None:
        self.ledger = IdempotencyLedger(ttl, max_keys)

    async def claim(self, key: str, fingerprint: str) -> Claim:
        return self.ledger.claim(key, fingerprint, trio.current_time())

    async def complete(self, key: str, fingerprint: str, response: StoredResponse) -> None:
        self.ledger.complete(key, fingerprint, response, trio.current_time())

    async def release(self, key: str, fingerprint: str) -> None:
        self.ledger.release(key, fingerprint)
