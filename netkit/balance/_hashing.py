"""Consistent hashing: a weighted hash ring and a Maglev table (sans-I/O).

Both map a request key (a client address, a header value) to a backend so that the
same key keeps going to the same backend, and removing one of N backends moves only
about 1/N of the keys. The ring or table is built over the full membership in
``rebuild`` (membership changes are rare); at pick time a key whose backend is not a
candidate (unhealthy, ejected, excluded for a retry) moves on along the ring or table
to the next candidate, so only that backend's keys move, and they spread out.

Hashes are 64-bit BLAKE2b: stable across processes and Python versions (``hash()``
is salted per process), so several proxies agree on where a key goes.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence

from ._backend import BackendState
from ._strategies import Strategy


def hash64(data: bytes) -> int:
    """A stable 64-bit hash of ``data``."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def key_hash(key: str | bytes) -> int:
    """The hash a request key is looked up by (what ``pick(key=...)`` takes)."""
    return hash64(key.encode() if isinstance(key, str) else key)


class RingHash(Strategy):
    """A weighted consistent-hash ring (Ketama-style; Envoy's ring hash).

    Each unit of a backend's weight gets ``min_ring_size`` points (default 1,024, as
    Envoy's minimum ring) on a 64-bit ring, so the ring always has at least that many;
    a key goes to the first point clockwise from its hash. Unlike a ring of fixed size
    shared out by weight, the surviving backends keep their points when one leaves.
    """

    name = "ring_hash"
    uses_key = True

    def __init__(self, rng: random.Random | None = None, *, min_ring_size: int = 1024) -> None:
        super().__init__(rng)
        if min_ring_size < 1:
            raise ValueError("min_ring_size must be positive")
        self.min_ring_size = min_ring_size
        self._hashes: list[int] = []
        self._owners: list[BackendState] = []

    def rebuild(self, members: Sequence[BackendState]) -> None:
        total = sum(m.weight for m in members)
        if not total:
            self._hashes, self._owners = [], []
            return
        # A fixed number of points per unit of weight (not a share of a fixed-size
        # ring): a backend joining or leaving then leaves the others' points where they
        # are, and exactly the leaving backend's keys move.
        per_weight = self.min_ring_size
        points: list[tuple[int, BackendState]] = []
        for member in members:
            count = per_weight * member.weight
            name = member.backend.address.encode()
            points.extend((hash64(name + b"_" + str(i).encode()), member) for i in range(count))
        points.sort(key=lambda point: point[0])
        self._hashes = [h for h, _ in points]
        self._owners = [m for _, m in points]

    @property
    def ring_size(self) -> int:
        return len(self._hashes)

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        if key is None or not self._hashes:
            return self.rng.choice(candidates)
        start = bisect.bisect_left(self._hashes, key)
        return _walk(self._owners, start, candidates, self.rng)


#: Maglev's default table size: a prime, about 100 x a large backend count (Envoy's).
MAGLEV_TABLE_SIZE = 65537


class Maglev(Strategy):
    """Google's Maglev hashing: a lookup table of ``table_size`` (a prime) entries.

    Every backend has a permutation of the table (an offset and a skip derived from
    two hashes of its address); backends take turns claiming their next free entry, a
    backend of weight w taking w / max-weight turns per round, until the table is full.
    Lookups are one index; the balance between backends is near perfect and removing
    one of N moves about 1/N of the keys (slightly more than a ring).
    """

    name = "maglev"
    uses_key = True

    def __init__(
        self, rng: random.Random | None = None, *, table_size: int = MAGLEV_TABLE_SIZE
    ) -> None:
        super().__init__(rng)
        if table_size < 2 or any(table_size % d == 0 for d in range(2, int(table_size**0.5) + 1)):
            raise ValueError("the Maglev table size must be a prime")
        self.table_size = table_size
        self._table: list[BackendState] = []

    def rebuild(self, members: Sequence[BackendState]) -> None:
        size = self.table_size
        if not members:
            self._table = []
            return
        ordered = sorted(members, key=lambda m: m.backend.address)
        offsets = []
        skips = []
        for member in ordered:
            name = member.backend.address.encode()
            offsets.append(hash64(b"offset:" + name) % size)
            skips.append(hash64(b"skip:" + name) % (size - 1) + 1)
        max_weight = max(m.weight for m in ordered)
        table: list[int] = [-1] * size
        following = [0] * len(ordered)
        credit = [0.0] * len(ordered)
        filled = 0
        while filled < size:
            for i, member in enumerate(ordered):
                credit[i] += member.weight / max_weight
                if credit[i] < 1.0:
                    continue
                credit[i] -= 1.0
                offset, skip, j = offsets[i], skips[i], following[i]
                slot = (offset + j * skip) % size
                while table[slot] >= 0:
                    j += 1
                    slot = (offset + j * skip) % size
                table[slot] = i
                following[i] = j + 1
                filled += 1
                if filled == size:
                    break
        self._table = [ordered[i] for i in table]

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        if key is None or not self._table:
            return self.rng.choice(candidates)
        return _walk(self._table, key % len(self._table), candidates, self.rng)


def _walk(
    owners: Sequence[BackendState],
    start: int,
    candidates: Sequence[BackendState],
    rng: random.Random,
) -> BackendState:
    """The first candidate from ``owners[start]`` on, wrapping round (ring or table).

    A random candidate when none is there (the ring or table is not rebuilt yet).
    """
    allowed = {id(c) for c in candidates}
    n = len(owners)
    for step in range(n):
        owner = owners[(start + step) % n]
        if id(owner) in allowed:
            return owner
    return rng.choice(candidates)
