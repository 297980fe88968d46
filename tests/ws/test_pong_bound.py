"""The pong queue is bounded: a peer that pings and never reads stops being read once
``_MAX_PENDING_PONGS`` pongs wait for the writer, and gets every pong once it reads."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import netkit
from netkit import ServerConfig
from netkit.http._h11 import H11Connection
from netkit.ws import WebSocket, WebSocketConfig, _session
from tests.ws.wsclient import FrameClient

PINGS = 10_000  # 100 kB of pings: more than one read takes


class _Recording(deque[Any]):
    """A deque that remembers the longest it has been."""

    peak = 0

    def append(self, item: Any) -> None:
        super().append(item)
        self.peak = max(self.peak, len(self))


@asynccontextmanager
async def lockstep_connection(app: netkit.App) -> AsyncIterator[trio.abc.Stream]:
    """One server connection whose writes wait until the client reads (unlike
    ``memory_stream_pair``, whose buffers are unbounded)."""
    client, server_side = trio.testing.lockstep_stream_pair()
    conn = H11Connection(server_side, app, ServerConfig(), scheme="http")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("reads", ["handler", "reader task"])
async def test_pings_without_reading_do_not_grow_the_pong_queue(
    reads: str, autojump_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_session, "deque", _Recording)
    sessions: list[WebSocket] = []
    release = trio.Event()

    async def handler(ws: WebSocket) -> None:
        sessions.append(ws)
        if reads == "reader task":
            await release.wait()  # out of receive(): the reader task reads for it
        async for message in ws:
            await ws.send(message)

    app = netkit.App()
    app.ws.endpoint("/echo", handler, config=WebSocketConfig(ping_interval=None))
    async with lockstep_connection(app) as stream, trio.open_nursery() as nursery:
        client = FrameClient(stream)
        await client.handshake()
        payloads = [n.to_bytes(4, "big") for n in range(PINGS)]
        wire = b"".join(bytes(client.proto.ping(p)) for p in payloads)
        sent = trio.Event()

        async def send_pings() -> None:
            await client.send(wire)
            sent.set()

        nursery.start_soon(send_pings)
        await trio.sleep(10)  # the peer does not read: everything stalls
        (ws,) = sessions
        control = ws._control
        assert isinstance(control, _Recording)
        assert 0 < control.peak <= _session._MAX_PENDING_PONGS
        assert not sent.is_set()  # the server stopped reading: backpressure on the peer
        # Once the peer reads, every ping gets its own pong, in order.
        with trio.fail_after(30):
            await client.until(lambda: len(client.pongs) == PINGS)
        assert client.pongs == payloads
        await sent.wait()
        release.set()
        await client.send(client.frame("still here"))
        with trio.fail_after(5):
            await client.until(lambda: client.messages)
        assert client.messages == ["still here"]
        assert control.peak <= _session._MAX_PENDING_PONGS
        nursery.cancel_scope.cancel()
