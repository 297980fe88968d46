"""Server shutdown says goodbye to WebSocket peers: close 1001 (Going Away), a closing
handshake that finishes, and ``serve`` returning long before ``shutdown_grace`` runs out.
Peers: websockets (its trio client) and trio-websocket over HTTP/1.1, h2 over RFC 8441."""

from __future__ import annotations

import time

import h2.events
import pytest
import trio
import trio_websocket
import websockets.exceptions
import wsproto.frame_protocol as fp
from websockets.trio.client import connect

import netkit
from netkit.ws import WebSocket
from tests.helpers import RawH2
from tests.interop.test_ws_peers import _connect_headers
from tests.ws.apps import make_app

pytestmark = pytest.mark.interop

GRACE = 20.0  # far longer than any of these shutdowns may take


async def start(nursery: trio.Nursery, app: netkit.App) -> tuple[netkit.Server, trio.Event]:
    done = trio.Event()
    config = netkit.ServerConfig(shutdown_grace=GRACE)

    async def run(task_status: trio.TaskStatus[netkit.Server]) -> None:
        try:
            await netkit.serve(app, "127.0.0.1", 0, config=config, task_status=task_status)
        finally:
            done.set()

    server: netkit.Server = await nursery.start(run)
    return server, done


async def test_websockets_client_sees_going_away_and_serve_returns() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server, done = await start(nursery, make_app())
            async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                await ws.send("before")
                assert await ws.recv() == "before"
                started = time.monotonic()
                server.shutdown()
                with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                    await ws.recv()
                assert ws.close_code == 1001
            await done.wait()
            assert time.monotonic() - started < GRACE / 4


async def test_trio_websocket_client_and_a_busy_handler() -> None:
    """A handler that never receives still ends: the session closes around it."""
    ended = trio.Event()

    async def sleeper(ws: WebSocket) -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.set()

    app = make_app()
    app.ws.endpoint("/sleep", sleeper)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server, done = await start(nursery, app)
            url = f"ws://127.0.0.1:{server.port}/sleep"
            async with trio_websocket.open_websocket_url(url) as ws:
                server.shutdown()
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1001
            await done.wait()
            assert ended.is_set()


async def test_rfc8441_session_gets_going_away_over_h2() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server, done = await start(nursery, make_app())
            async with RawH2.connect(server) as client:
                await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, _connect_headers())
                await client.flush()
                await client.until(
                    lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                )
                proto = fp.FrameProtocol(client=True, extensions=[])
                server.shutdown()
                frames: list[fp.Frame] = []
                seen = 0
                while not any(f.opcode is fp.Opcode.CLOSE for f in frames):
                    for event in client.events[seen:]:
                        if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                            proto.receive_bytes(event.data)
                            frames += proto.received_frames()
                    seen = len(client.events)
                    await client.receive()
                close = next(f for f in frames if f.opcode is fp.Opcode.CLOSE)
                assert close.payload[0] == 1001
                client.conn.send_data(sid, bytes(proto.close(1001)))
                await client.flush()
                await client.until(
                    lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sid
                )
            await done.wait()
