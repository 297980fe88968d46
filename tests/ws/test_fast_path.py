"""The session's fast path (plain frames decoded outside wsproto, the handler reading for
itself, descriptor I/O on plain TCP) against every way a frame can be split or go wrong.

Each test runs over an in-memory stream (the cancel-scope path) and over a real loopback
TCP connection (the descriptor path of ``ConnectionTunnel``), since the fast path is
exactly where a split frame or an interrupted read would go wrong.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import netkit
from netkit.ws import WebSocket, WebSocketClosed, WebSocketConfig
from tests.helpers import memory_connection, running_server
from tests.ws.apps import echo
from tests.ws.wsclient import FrameClient

TRANSPORTS = ["memory", "tcp"]


def app_with(handler: Any, config: WebSocketConfig | None = None) -> netkit.App:
    app = netkit.App()
    app.ws.endpoint("/echo", handler, config=config or WebSocketConfig(ping_interval=None))
    return app


@asynccontextmanager
async def connection(transport: str, app: netkit.App) -> AsyncIterator[trio.abc.Stream]:
    if transport == "memory":
        async with memory_connection(app) as stream:
            yield stream
        return
    async with running_server(app) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            yield stream


# A message, and how to cut it into frames: (message, cut points, pings after which frames).
pieces = st.tuples(
    st.one_of(st.text(max_size=200), st.binary(max_size=200)),
    st.lists(st.integers(0, 200), max_size=3),
    st.lists(st.booleans(), max_size=4),
)


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=25)
@given(
    messages=st.lists(pieces, min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 60), min_size=1, max_size=12),
)
async def test_frames_in_any_chunks_with_pings_between_fragments(
    transport: str, messages: list[tuple[str | bytes, list[int], list[bool]]], cuts: list[int]
) -> None:
    """Plain frames (fast path), fragments and pings (wsproto) interleaved, cut anywhere."""
    async with connection(transport, app_with(echo)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        wire = bytearray()
        pings = 0
        for message, points, ping_after in messages:
            bounds = sorted({min(p, len(message)) for p in points} - {0, len(message)})
            ends = zip([0, *bounds], [*bounds, len(message)], strict=True)
            parts = [message[a:b] for a, b in ends]
            for i, part in enumerate(parts):
                wire += client.frame(part, fin=i == len(parts) - 1)
                if i < len(ping_after) and ping_after[i]:
                    wire += bytes(client.proto.ping(b"p%d" % pings))
                    pings += 1
        position = 0
        for cut in cuts * (len(wire) // sum(cuts) + 1):
            if position >= len(wire):
                break
            await client.send(bytes(wire[position : position + cut]))
            position += cut
            if transport == "tcp":
                await trio.sleep(0.0005)  # let the server see this chunk on its own
        expected = [m for m, _, _ in messages]
        with trio.fail_after(5):
            await client.until(lambda: len(client.messages) >= len(expected))
            await client.until(lambda: len(client.pongs) >= pings)
        assert client.messages == expected
        assert client.pongs == [b"p%d" % n for n in range(pings)]


def good(c: FrameClient) -> bytes:
    return c.frame("fine") + c.frame(b"also fine")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda c: b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # invalid UTF-8
        (lambda c: b"\x81\xfe\x00\x05\x00\x00\x00\x00hello", 1002),  # non-minimal length
        (lambda c: b"\xc1\x80\x00\x00\x00\x00", 1002),  # RSV1 with no extension
        (lambda c: b"\x89\xfe\x00\x7e" + b"\x00" * 130, 1002),  # 126-byte ping
        (lambda c: b"\x82\x02ab", 1002),  # unmasked
        (lambda c: b"\x83\x80\x00\x00\x00\x00", 1002),  # reserved opcode
        # A new message while a fragmented one is open (a plain frame, but not now).
        (lambda c: c.frame("a", fin=False) + b"\x81\x81\x00\x00\x00\x00b", 1002),
        (lambda c: c.frame("x" * 2000), 1009),  # over max_message_size
        (lambda c: c.frame(b"y" * 600, fin=False) + c.frame(b"y" * 600), 1009),
    ],
)
async def test_bad_frame_after_good_ones_in_the_same_chunk(
    transport: str, bad: Callable[[FrameClient], bytes], code: int
) -> None:
    """The good messages reach the handler, the bad frame closes, nothing after it counts."""
    received: list[str | bytes] = []

    async def record(ws: WebSocket) -> None:
        async for message in ws:
            received.append(message)

    config = WebSocketConfig(max_message_size=1000, max_frame_size=1000, ping_interval=None)
    async with connection(transport, app_with(record, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        await client.send(good(client) + bad(client) + client.frame("never seen"))
        with trio.fail_after(5):
            await client.until(lambda: client.close_code is not None)
            while len(received) < 2:  # noqa: ASYNC110 - the handler owns the list
                await trio.sleep(0.01)
        assert client.close_code == code
        await trio.sleep(0.05)
        assert received == ["fine", b"also fine"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handler_waiting_in_receive_sees_our_close_at_once(transport: str) -> None:
    """The handler reads for itself; a close sent by another task must still reach it."""
    seen: list[BaseException] = []
    raised = trio.Event()

    async def handler(ws: WebSocket) -> None:
        await ws.receive()

        async def wait_for_more() -> None:
            try:
                await ws.receive()
            except WebSocketClosed as exc:
                seen.append(exc)
                raised.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_more)
            await trio.sleep(0.05)  # it is now blocked in its own read
            await ws.close(4001, "bye")

    config = WebSocketConfig(ping_interval=None, close_timeout=30)
    async with connection(transport, app_with(handler, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        await client.send(client.frame("go"))
        with trio.fail_after(5):
            await client.until(lambda: client.close_code is not None)
            # The peer has not answered the close yet: the waiting receive already ended.
            await raised.wait()
        assert isinstance(seen[0], WebSocketClosed) and seen[0].code == 4001
        await client.send(bytes(client.proto.close(4001)))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pings_are_answered_while_the_handler_is_busy(transport: str) -> None:
    """Once the handler stays out of receive(), the reader task reads for it."""
    release = trio.Event()
    got: list[str | bytes] = []

    async def busy(ws: WebSocket) -> None:
        got.append(await ws.receive())
        await release.wait()  # busy elsewhere, not receiving
        got.extend([await ws.receive(), await ws.receive()])

    async with connection(transport, app_with(busy)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        await client.send(client.frame("one"))
        await client.send(client.frame("two") + bytes(client.proto.ping(b"still there?")))
        with trio.fail_after(5):
            await client.until(lambda: client.pongs)
        assert client.pongs == [b"still there?"]
        await client.send(client.frame("three"))
        release.set()
        with trio.fail_after(5):
            while len(got) < 3:  # noqa: ASYNC110 - the handler owns the list
                await trio.sleep(0.01)
        assert got == ["one", "two", "three"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_limits_below_a_small_frame_still_apply(transport: str) -> None:
    config = WebSocketConfig(max_message_size=10, ping_interval=None)
    async with connection(transport, app_with(echo, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        await client.send(client.frame("0123456789"))
        with trio.fail_after(5):
            await client.until(lambda: client.messages == ["0123456789"])
        await client.send(client.frame("0123456789!"))  # 11 bytes: a "small" frame
        with trio.fail_after(5):
            await client.until(lambda: client.close_code is not None)
        assert client.close_code == 1009
