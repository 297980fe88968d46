"""The server: protocol detection, connection limits, isolation between connections."""

from __future__ import annotations

import h2.events
import httpx
import trio

from netkit import App, HTTPStream, ServerConfig
from netkit.examples.hello import app as hello_app
from tests.helpers import PREFACE, RawH2, read_until_closed, running_server, url

GET = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_preface_split_into_single_bytes_is_still_http2() -> None:
    async with running_server() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            for byte in PREFACE:
                await stream.send_all(bytes([byte]))
            client = RawH2(stream)
            client.conn.initiate_connection()
            client.conn.data_to_send()  # the preface went out by hand already
            settings = client.conn.data_to_send()
            await stream.send_all(settings)
            with trio.fail_after(5):
                assert await client.get("/hello") == (200, b'{"message":"hello, world"}')


async def test_http2_connection_that_never_sends_a_request_is_closed() -> None:
    config = ServerConfig(request_head_timeout=0.3)
    async with running_server(hello_app, config) as server, RawH2.connect(server) as client:
        with trio.fail_after(5):
            await client.read_until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == 0


async def test_max_connections_makes_new_clients_wait_not_fail() -> None:
    config = ServerConfig(max_connections=2, request_head_timeout=30, keep_alive_timeout=30)
    async with running_server(hello_app, config) as server:
        first = await trio.open_tcp_stream("127.0.0.1", server.port)
        second = await trio.open_tcp_stream("127.0.0.1", server.port)
        # Both are being served...
        for conn in (first, second):
            await conn.send_all(GET)
            with trio.fail_after(5):
                assert (await conn.receive_some(1000)).startswith(b"HTTP/1.1 200")
        assert server.connection_count == 2
        # ...so a third waits in the backlog: connected by the kernel, not answered.
        third = await trio.open_tcp_stream("127.0.0.1", server.port)
        await third.send_all(GET)
        with trio.move_on_after(0.3):
            await third.receive_some(1000)
            raise AssertionError("third connection was served above max_connections")
        await first.aclose()
        with trio.fail_after(5):
            assert (await third.receive_some(1000)).startswith(b"HTTP/1.1 200")
        await second.aclose()
        await third.aclose()


async def test_bad_client_does_not_disturb_in_flight_requests() -> None:
    started, release = trio.Event(), trio.Event()
    app = App()

    @app.route("GET", "/slow")
    async def slow(stream: HTTPStream) -> None:
        started.set()
        await release.wait()
        await stream.respond(200, [], b"ok")

    async with running_server(app) as server, trio.open_nursery() as nursery:
        results: dict[str, int] = {}

        async def fetch(name: str, **kw: bool) -> None:
            async with httpx.AsyncClient(**kw) as client:
                results[name] = (await client.get(url(server, "/slow"))).status_code

        nursery.start_soon(fetch, "h1")
        nursery.start_soon(lambda: fetch("h2", http1=False, http2=True))
        with trio.fail_after(5):
            await started.wait()
            # Garbage on HTTP/1.1 and a protocol error on HTTP/2, from two other clients.
            bad = await trio.open_tcp_stream("127.0.0.1", server.port)
            await bad.send_all(b"\x00\x01 nonsense \r\n\r\n")
            assert (await read_until_closed(bad)).startswith(b"HTTP/1.1 400")
            async with RawH2.connect(server) as evil:
                await evil.send_raw(
                    b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"12345678"
                )  # PING on stream 1
                await evil.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
                assert evil.goaway().error_code == 1  # PROTOCOL_ERROR
            release.set()
    assert results == {"h1": 200, "h2": 200}
