"""Handshake limits of a WebSocket upgrade, with the websockets client and h2 (RFC 8441):
a long target gets 414, too many header fields 431 (the endpoint's limits), a head over
the HTTP layer's ``max_header_size`` 431 from the HTTP layer; the server keeps serving."""

from __future__ import annotations

import h2.events
import pytest
import trio
import websockets.exceptions
from websockets.trio.client import connect

import netkit
from netkit.ws import WebSocketConfig
from tests.helpers import RawH2, running_server
from tests.interop.test_ws_peers import _connect_headers
from tests.ws.apps import echo

pytestmark = pytest.mark.interop

CONFIG = WebSocketConfig(max_target_size=1000, max_header_count=30, ping_interval=None)


def app() -> netkit.App:
    application = netkit.App()
    application.ws.endpoint("/echo", echo, config=CONFIG)
    return application


async def status_of(url: str, headers: list[tuple[str, str]] | None = None) -> int:
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with connect(url, additional_headers=headers):
            pass
    return info.value.response.status_code


@pytest.mark.parametrize(
    ("query", "extra", "status"),
    [
        ("a" * 1100, 0, 414),  # target over max_target_size, head well under 16 KiB
        ("", 40, 431),  # more header fields than max_header_count
        ("a" * 20_000, 0, 431),  # the whole head over the HTTP layer's max_header_size
        ("", 400, 431),  # idem, by many fields
    ],
)
async def test_handshake_limits_over_http11(query: str, extra: int, status: int) -> None:
    config = netkit.ServerConfig(max_header_size=16 * 1024)
    async with running_server(app(), config=config) as server:
        base = f"ws://127.0.0.1:{server.port}/echo"
        headers = [(f"x-filler-{n}", "v" * 30) for n in range(extra)]
        with trio.fail_after(10):
            assert await status_of(f"{base}?q={query}", headers) == status
            # Just under the endpoint's limits is fine, and the server still serves.
            async with connect(f"{base}?q={'a' * 900}", additional_headers=headers[:15]) as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"


async def test_handshake_limits_over_h2() -> None:
    async with running_server(app()) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            cases = [
                (_connect_headers("/echo?q=" + "a" * 1100), b"414"),
                (_connect_headers("/echo", **{f"x-f{n}": "v" for n in range(40)}), b"431"),
                (_connect_headers("/echo"), b"200"),
            ]
            for headers, status in cases:
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, headers)
                await client.flush()
                response = await client.until(
                    lambda e, sid=sid: (
                        isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                    )
                )
                assert dict(response.headers)[b":status"] == status
