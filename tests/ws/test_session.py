"""WebSocket sessions over in-memory streams: heartbeats under MockClock, backpressure
that stays responsive, arbitrary fragmentation, limits and the send queue's policies."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import netkit
from netkit.ws import Overflow, WebSocket, WebSocketConfig
from tests.helpers import memory_connection
from tests.ws.apps import echo
from tests.ws.wsclient import FrameClient


def app_with(handler: Any, config: WebSocketConfig) -> netkit.App:
    app = netkit.App()
    app.ws.endpoint("/echo", handler, config=config)
    app.ws.pubsub("/events", config=config)
    return app


async def test_heartbeat_keeps_a_live_peer_and_closes_a_dead_one(autojump_clock: Any) -> None:
    config = WebSocketConfig(ping_interval=10, ping_timeout=5)
    app = app_with(echo, config)
    async with memory_connection(app) as stream:
        client = FrameClient(stream)
        await client.handshake("/events")
        await client.send(client.frame('{"v":1,"type":"subscribe","id":1,"topic":"t"}'))
        await client.until(lambda: client.messages)
        assert app.ws.hub.subscriber_count == 1
        start = trio.current_time()
        # A live peer answers pings: still open after 100 s of mock time.
        with trio.move_on_after(100):
            await client.run_until_eof()
        assert client.close_code is None
        assert len(client.pings) >= 9
        # Now it stops answering: closed with 1011 within interval + timeout (+ close_timeout).
        client.answer_pings = False
        silent_at = trio.current_time()
        with trio.fail_after(60):
            await client.until(lambda: client.close_code is not None)
        assert client.close_code == 1011
        assert trio.current_time() - silent_at <= 10 + 5 + 0.1
        assert trio.current_time() - start > 100
        with trio.fail_after(10):
            await client.run_until_eof()
        assert app.ws.hub.subscriber_count == 0  # its subscriptions are gone


async def test_slow_handler_does_not_make_the_connection_deaf(autojump_clock: Any) -> None:
    release = trio.Event()
    received: list[Any] = []

    async def slow(ws: WebSocket) -> None:
        await release.wait()
        async for message in ws:
            received.append(message)

    config = WebSocketConfig(receive_queue_size=4, ping_interval=2, ping_timeout=1)
    async with memory_connection(app_with(slow, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        # Three messages wait for the handler; the reader still answers our ping.
        for n in range(3):
            await client.send(client.frame(f"m{n}"))
        await client.send(bytes(client.proto.ping(b"hello?")))
        with trio.fail_after(1):
            await client.until(lambda: client.pongs)
        assert client.pongs == [b"hello?"]
        # Overfill: the reader pauses (bounded memory) but the heartbeat does not blame
        # the peer for pongs that our own backpressure left unread.
        for n in range(3, 40):
            await client.send(client.frame(f"m{n}"))
        with trio.move_on_after(30):
            await client.run_until_eof()
        assert client.close_code is None
        release.set()
        with trio.fail_after(5):
            while len(received) < 40:  # noqa: ASYNC110 - the handler owns the list
                await trio.sleep(0.1)
        assert received == [f"m{n}" for n in range(40)]


@pytest.mark.parametrize(
    ("overflow", "code"), [(Overflow.CLOSE, 1013), (Overflow.DROP_OLDEST, None)]
)
async def test_send_queue_policies(overflow: Overflow, code: int | None) -> None:
    state: dict[str, Any] = {}

    async def burst(ws: WebSocket) -> None:
        results = [ws.send_nowait(f"n{n}", overflow) for n in range(8)]
        state["results"], state["dropped"] = results, ws.dropped
        async for _ in ws:
            pass

    config = WebSocketConfig(send_queue_size=5, ping_interval=None)
    async with memory_connection(app_with(burst, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        with trio.fail_after(5):
            if code is None:
                await client.until(lambda: len(client.messages) == 5)
                assert client.messages == [f"n{n}" for n in range(3, 8)]
                assert state["dropped"] == 3
            else:
                await client.until(lambda: client.close_code is not None)
                assert client.close_code == code
                assert state["results"] == [True] * 5 + [False] * 3


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (lambda c: c.frame("x" * 2000), 1009),  # over max_message_size
        (lambda c: c.frame("x" * 600, fin=False) + c.frame("y" * 600), 1009),  # in fragments
        (lambda c: b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # invalid UTF-8
        (lambda c: b"\x81\x05hello", 1002),  # unmasked client frame
        (lambda c: b"\x80\x80\x00\x00\x00\x00", 1002),  # continuation with nothing to continue
    ],
)
async def test_bad_frames_close_with_their_code(frames: Any, code: int) -> None:
    config = WebSocketConfig(max_message_size=1000, max_frame_size=1000, ping_interval=None)
    async with memory_connection(app_with(echo, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        await client.send(frames(client))
        with trio.fail_after(5):
            await client.until(lambda: client.close_code is not None)
        assert client.close_code == code


async def test_frame_size_is_checked_on_the_header() -> None:
    config = WebSocketConfig(max_message_size=10_000_000, max_frame_size=1000, ping_interval=None)
    async with memory_connection(app_with(echo, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        # Only the header of a 5 MB frame: refused before any payload arrives.
        header = client.frame(b"x" * 5_000_000)[:14]
        await client.send(header)
        with trio.fail_after(5):
            await client.until(lambda: client.close_code is not None)
        assert client.close_code == 1009


messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=6
)


@given(
    messages=messages, cuts=st.lists(st.integers(1, 50), min_size=1, max_size=20), data=st.data()
)
async def test_arbitrary_fragmentation_gives_the_same_messages(
    messages: list[str | bytes], cuts: list[int], data: st.DataObject
) -> None:
    config = WebSocketConfig(ping_interval=None)
    async with memory_connection(app_with(echo, config)) as stream:
        client = FrameClient(stream)
        await client.handshake()
        wire = bytearray()
        for message in messages:
            # Split each message into frames at arbitrary points (text on whole characters).
            n = data.draw(st.integers(1, 4))
            points = sorted(
                data.draw(st.lists(st.integers(0, len(message)), min_size=n - 1, max_size=n - 1))
            )
            pieces = [
                message[a:b] for a, b in zip([0, *points], [*points, len(message)], strict=True)
            ]
            for i, piece in enumerate(pieces):
                wire += client.frame(piece, fin=i == len(pieces) - 1)
        # ... and deliver the bytes in arbitrary chunks.
        position = 0
        for cut in cuts * (len(wire) // max(1, sum(cuts)) + 1):
            if position >= len(wire):
                break
            await client.send(bytes(wire[position : position + cut]))
            position += cut
        with trio.fail_after(5):
            await client.until(lambda: len(client.messages) >= len(messages))
        assert client.messages == messages
