"""The HTTP/1.1 side of ``BackendPool`` as a state machine, against a model.

Connections are fakes (what the pool asks of one: reusable, idle_since, still_open,
aclose); requests take them, finish cleanly or break them; the backend may close idle
ones; mock time passes. Whatever the order:

* the pool counts exactly the connections it opened and has not closed;
* a connection is never handed to two requests at once, and a broken or closed one is
  never handed out again;
* a connection the backend closed while it was idle for ``_FRESH`` or more is never
  handed out (the check before reuse), and ``fresh=True`` never reuses one;
* at most ``max_idle`` wait idle, and never more than ``max_connections`` exist.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from netkit.balance import Backend, PoolLimits, _pool
from netkit.balance._pool import BackendPool
from netkit.testing import TrioStateMachine

_ids = itertools.count()


class FakeConnection:
    """What the pool uses of an H1ClientConnection."""

    def __init__(self, transport: object) -> None:
        self.id = next(_ids)
        self.broken = False
        self.closed = False
        self.reusable_flag = True
        #: The backend closed its side (seen only by still_open()).
        self.peer_closed = False
        self.idle_since = 0.0

    @property
    def reusable(self) -> bool:
        return not self.broken and not self.closed and self.reusable_flag

    def still_open(self) -> bool:
        return not self.peer_closed

    async def aclose(self) -> None:
        self.closed = True
        self.broken = True
        await trio.lowlevel.checkpoint()


class PoolMachine(TrioStateMachine):
    @initialize(
        max_connections=st.integers(1, 4),
        max_idle=st.integers(0, 4),
    )
    async def boot(self, max_connections: int, max_idle: int) -> None:
        self.limits = PoolLimits(max_connections=max_connections, max_idle=max_idle)
        self.pool = BackendPool(self.nursery, Backend("127.0.0.1", 9), self.limits)
        self.opened: list[FakeConnection] = []
        self.in_use: list[FakeConnection] = []

    async def _take(self, fresh: bool) -> None:
        idle_before = list(self.pool._idle)
        conn: Any = await self.pool.h1(fresh=fresh)
        assert conn not in self.in_use, "handed to two requests at once"
        assert not conn.closed and not conn.broken
        if conn in self.opened and conn in idle_before:
            assert not fresh, "fresh=True reused an idle connection"
            stale = trio.current_time() - conn.idle_since >= _pool._FRESH
            assert not (stale and conn.peer_closed), "a connection the backend closed"
        elif conn not in self.opened:
            self.opened.append(conn)
        self.in_use.append(conn)

    @precondition(lambda self: len(self.in_use) < self.limits.max_connections)
    @rule(fresh=st.booleans())
    async def take(self, fresh: bool) -> None:
        await self._take(fresh)

    @precondition(lambda self: bool(self.in_use))
    @rule(data=st.data(), outcome=st.sampled_from(["clean", "broken", "last"]))
    async def finish(self, data: st.DataObject, outcome: str) -> None:
        conn = data.draw(st.sampled_from(self.in_use))
        self.in_use.remove(conn)
        if outcome == "broken":
            conn.broken = True
        elif outcome == "last":  # e.g. Connection: close on the response
            conn.reusable_flag = False
        self.pool.release_h1(conn)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()

    @precondition(lambda self: bool(self.pool._idle))
    @rule(data=st.data())
    async def backend_closes_an_idle_one(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.pool._idle))
        conn.peer_closed = True  # type: ignore[attr-defined]

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.0]))
    async def time_passes(self, seconds: float) -> None:
        await trio.sleep(seconds)

    @invariant()
    async def counted(self) -> None:
        if not hasattr(self, "pool"):
            return
        open_ = [c for c in self.opened if not c.closed]
        assert self.pool.connections == len(open_)
        assert self.pool.connections <= self.limits.max_connections
        assert len(self.pool._idle) <= self.limits.max_idle
        assert all(c.reusable for c in self.pool._idle)
        assert not set(map(id, self.pool._idle)) & set(map(id, self.in_use))


@pytest.fixture(autouse=True)
def _fake_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_open_tcp(*args: object) -> object:
        await trio.lowlevel.checkpoint()
        return object()

    monkeypatch.setattr(_pool, "open_tcp", fake_open_tcp)
    monkeypatch.setattr(_pool, "H1ClientConnection", FakeConnection)


def test_pool_machine() -> None:
    PoolMachine.TestCase().runTest()
