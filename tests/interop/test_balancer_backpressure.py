"""Backpressure through the proxy: a client that does not read a large response stops
the backend's sends (its HTTP/2 window stays closed), and what the proxy holds -- the
bytes the backend sent minus those the client took -- stays bounded by the windows and
one chunk, over HTTP/2 (the client holds its window shut) and HTTP/1.1 (the client
does not read its socket)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

import netkit
from netkit.balance import Backend, Balancer, ReverseProxy, StaticBackends
from tests.helpers import RawH2, running_server

pytestmark = pytest.mark.interop

CHUNK = 64 * 1024


@attrs.define
class Progress:
    total: int
    sent: int = 0
    finished: bool = False


def big_app(progress: Progress) -> netkit.App:
    app = netkit.App()

    async def big(stream: netkit.HTTPStream) -> None:
        await stream.send_headers(200, [("content-type", "application/octet-stream")])
        while progress.sent < progress.total:
            await stream.send_data(b"x" * CHUNK)  # blocks while the proxy's window is shut
            progress.sent += CHUNK
        await stream.send_data(b"", end_stream=True)
        progress.finished = True

    app.route("GET", "/big", big)
    return app


@asynccontextmanager
async def proxied(progress: Progress) -> AsyncIterator[netkit.Server]:
    async with running_server(big_app(progress)) as backend, trio.open_nursery() as nursery:
        proxy = ReverseProxy(Balancer(StaticBackends([Backend("127.0.0.1", backend.port)])))
        await nursery.start(proxy.run)
        async with running_server(proxy) as front:
            yield front
        nursery.cancel_scope.cancel()


async def stalled(progress: Progress) -> int:
    """Wait until the backend's sends stop advancing (blocked); how far it got."""
    last = -1
    with trio.fail_after(10):
        while progress.sent != last:
            last = progress.sent
            await trio.sleep(0.3)
    return progress.sent


async def test_http2_client_holding_its_window_shut_stops_the_backend() -> None:
    progress = Progress(total=16 * 1024 * 1024)
    async with proxied(progress) as front, RawH2.connect(front) as client:
        client.auto_ack = False  # the client's 64 KiB stream window is never reopened
        sid = client.request("/big")
        await client.flush()
        sent = await stalled(progress)
        # Held by the proxy at most: its 1 MiB upstream stream window, the client's
        # 64 KiB window and a chunk or two in transit; nowhere near the 16 MiB.
        assert 0 < sent <= 1024 * 1024 + 4 * CHUNK, sent
        assert not progress.finished
        # The client reads (and acknowledges) again: the rest flows, all of it.
        status, body = await client.response(sid)
        assert status == 200 and len(body) == progress.total and progress.finished


async def test_http1_client_not_reading_stops_the_backend() -> None:
    progress = Progress(total=32 * 1024 * 1024)
    async with proxied(progress) as front:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        await sock.connect(("127.0.0.1", front.port))
        stream = trio.SocketStream(sock)
        await stream.send_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        sent = await stalled(progress)
        # Socket buffers on both sides of the proxy plus the 1 MiB upstream window:
        # bounded, and far below the response.
        assert 0 < sent <= 16 * 1024 * 1024, sent
        assert not progress.finished
        received = 0
        with trio.fail_after(20):
            while not progress.finished or received < progress.total:
                data = await stream.receive_some(1024 * 1024)
                assert data
                received += len(data)
                if b"\r\n\r\n" in data[:512] and received == len(data):
                    received -= data.index(b"\r\n\r\n") + 4  # the response head
        assert progress.finished
        await stream.aclose()
