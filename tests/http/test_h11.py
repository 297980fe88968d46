"""HTTP/1.1 driver: limits, timeouts and error paths, in memory with a MockClock."""

from __future__ import annotations

import trio
import trio.testing

from netkit import App, HTTPStatusError, HTTPStream, ServerConfig
from netkit.examples.hello import app as hello_app
from tests.helpers import memory_connection, read_until_closed

GET = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n"


async def roundtrip(request: bytes, config: ServerConfig | None = None, handler=hello_app) -> bytes:
    async with memory_connection(handler, config) as client:
        await client.send_all(request)
        with trio.fail_after(30):
            return await read_until_closed(client)


async def test_keep_alive_serves_pipelined_requests_then_idles_out(autojump_clock) -> None:
    config = ServerConfig(keep_alive_timeout=5)
    start = trio.current_time()
    data = await roundtrip(GET * 3, config)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    # closed by the idle timeout, not before it
    assert trio.current_time() - start >= 5


async def test_malformed_request_gets_400_and_close(autojump_clock) -> None:
    data = await roundtrip(b"GET /hello HTTP/1.1\r\nbad header\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in data.lower()


async def test_oversized_head_gets_431(autojump_clock) -> None:
    config = ServerConfig(max_header_size=1024)
    big = b"GET /hello HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2000 + b"\r\n\r\n"
    data = await roundtrip(big, config)
    assert data.startswith(b"HTTP/1.1 431 ")


async def test_declared_body_over_limit_gets_413_without_reading(autojump_clock) -> None:
    config = ServerConfig(max_request_body_size=10)
    request = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\n"
    data = await roundtrip(request, config)
    assert data.startswith(b"HTTP/1.1 413 ")


async def test_streamed_chunked_body_over_limit_gets_413(autojump_clock) -> None:
    config = ServerConfig(max_request_body_size=10)
    seen: list[int] = []

    async def count(stream: HTTPStream) -> None:
        async for chunk in stream:
            seen.append(len(chunk))
        await stream.respond(200)

    request = (
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"
    )
    data = await roundtrip(request, config, count)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert seen == [8]


async def test_slow_request_head_is_cut_off(autojump_clock) -> None:
    config = ServerConfig(request_head_timeout=3, keep_alive_timeout=100)
    async with memory_connection(hello_app, config) as client:
        start = trio.current_time()
        await client.send_all(b"GET /hello HTTP/1.1\r\n")  # ... and never the rest
        with trio.fail_after(60):
            data = await read_until_closed(client)
        assert data == b""
        assert 3 <= trio.current_time() - start < 4


async def test_handler_error_gives_500_and_connection_survives(autojump_clock) -> None:
    app = App()

    @app.route("GET", "/boom")
    async def boom(stream: HTTPStream) -> None:
        raise RuntimeError("handler bug")

    app.route("GET", "/hello", hello_app)
    data = await roundtrip(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n" + GET, handler=app)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"HTTP/1.1 200 OK" in data


async def test_http_status_error_from_handler(autojump_clock) -> None:
    async def teapot(stream: HTTPStream) -> None:
        raise HTTPStatusError(422, "nope")

    data = await roundtrip(GET, handler=teapot)
    assert data.startswith(b"HTTP/1.1 422 ")
    assert b'"detail": "nope"' in data


async def test_expect_100_continue(autojump_clock) -> None:
    async def upload(stream: HTTPStream) -> None:
        body = await stream.read_body()
        await stream.respond(200, [], body)

    async with memory_connection(upload) as client:
        await client.send_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
        )
        with trio.fail_after(5):
            interim = await client.receive_some(1000)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send_all(b"abc")
        with trio.fail_after(5):
            rest = await client.receive_some(1000)
        assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"abc")


async def test_chunked_response_with_trailers_when_asked(autojump_clock) -> None:
    async def stream_it(stream: HTTPStream) -> None:
        await stream.send_headers(200, [("content-type", "text/plain")])
        await stream.send_data(b"part1")
        await stream.send_trailers([("x-checksum", "abc")])

    data = await roundtrip(b"GET / HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n", handler=stream_it)
    assert b"transfer-encoding: chunked" in data.lower()
    assert data.endswith(b"5\r\npart1\r\n0\r\nx-checksum: abc\r\n\r\n")
