"""The proxy's HTTP/1.1 upstream (netkit.wire.h1_client) and its ``auto`` protocol.

``auto`` (the default) sends REST over HTTP/1.1 keep-alive connections and gRPC over
HTTP/2; the backends here are netkit servers, and the clients httpx, curl, grpcio-free
netkit channels and netkit's HTTP/2 client for trailers.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

import netkit
from netkit.balance import Backend, Balancer, ProxyConfig, ReverseProxy, StaticBackends, _pool
from netkit.grpc import open_channel
from netkit.http import H2ClientConnection, ServerConfig
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from tests.balance.backends import fleet
from tests.helpers import running_server


@pytest.mark.parametrize(("protocol", "upstream"), [("auto", "1.1"), ("h2", "2"), ("h1", "1.1")])
async def test_rest_goes_upstream_as_configured(protocol: str, upstream: str) -> None:
    async with (
        fleet(1, protocol=protocol) as f,
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        for _ in range(3):
            r = await client.get(f"{f.url}/who")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
    assert f.behaviours[0].versions == [upstream] * 3


async def test_auto_sends_grpc_over_http2() -> None:
    async with fleet(1) as f, open_channel("127.0.0.1", f.port) as channel:
        stub = EchoStub(channel)
        for word in (b"a", b"b"):
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=word), timeout=5)
            assert reply.payload == word
        async with stub.Bidi.open(timeout=5) as call:
            await call.send_message(echo_pb2.EchoRequest(payload=b"c"))
            assert (await call.recv_message()).payload == b"c"
            await call.end()
            assert await call.recv_message() is None


async def _proxy_to(
    port: int, config: ProxyConfig | None = None, **backend: object
) -> ReverseProxy:
    backends = StaticBackends([Backend("127.0.0.1", port, **backend)])  # type: ignore[arg-type]
    return ReverseProxy(Balancer(backends), config)


async def test_a_connection_the_backend_closed_while_idle_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backend closes keep-alive connections after 0.2 s: a request after a pause
    must get a fresh connection, not a 502 (there is no other backend to retry on)."""
    monkeypatch.setattr(_pool, "_FRESH", 0.05)
    config = ServerConfig(keep_alive_timeout=0.2)
    async with (
        running_server(config=config) as backend,
        trio.open_nursery() as nursery,
    ):
        proxy = await _proxy_to(backend.port)
        await nursery.start(proxy.run)
        async with running_server(proxy) as front, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{front.port}/hello"
            assert (await client.get(url)).status_code == 200
            await trio.sleep(0.5)  # the backend closes its side meanwhile
            for _ in range(2):
                r = await client.get(url)
                assert r.status_code == 200, r.text
        nursery.cancel_scope.cancel()


async def _chunked_with_trailers(stream: netkit.HTTPStream) -> None:
    await stream.send_headers(200, [("content-type", "text/plain"), ("trailer", "x-sum")])
    for piece in (b"ab", b"cd", b"ef"):
        await stream.send_data(piece)
    await stream.send_trailers([("x-sum", "6")])


@pytest.mark.parametrize("te", [True, False])
async def test_chunked_responses_and_their_trailers_are_relayed(te: bool) -> None:
    async with (
        running_server(_chunked_with_trailers) as backend,
        trio.open_nursery() as nursery,
    ):
        proxy = await _proxy_to(backend.port)
        await nursery.start(proxy.run)
        async with (
            running_server(proxy) as front,
            H2ClientConnection.connect("127.0.0.1", front.port) as conn,
        ):
            headers = [("te", "trailers")] if te else []
            async with conn.stream("GET", "/", headers, end_stream=True) as up:
                status, _ = await up.receive_headers()
                assert status == 200
                assert await up.read_body() == b"abcdef"
                trailers = up.trailers
        assert (dict(trailers.raw()) if trailers is not None else None) == (
            {b"x-sum": b"6"} if te else None
        )
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _behind_proxy(
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    config: ProxyConfig | None = None,
) -> AsyncIterator[str]:
    """A raw TCP backend running ``handle`` per connection, an HTTP/1.1-only proxy in
    front of it: the URL of ``/x`` on the proxy."""
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        proxy = await _proxy_to(listeners[0].socket.getsockname()[1], config, protocol="h1")
        await nursery.start(proxy.run)
        async with running_server(proxy) as front:
            yield f"http://127.0.0.1:{front.port}/x"
        nursery.cancel_scope.cancel()


async def test_a_backend_breaking_http1_framing_gets_502_and_others_are_unaffected() -> None:
    """Conflicting Content-Length values: the proxy refuses the response (502) and the
    connection, and the next request works."""
    calls = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal calls
        calls += 1
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        if calls == 1:
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"
            )
        else:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await stream.aclose()

    async with _behind_proxy(handle) as url, httpx.AsyncClient() as client:
        r = await client.post(url, content=b"body")
        assert r.status_code == 502
        assert "content-length" in r.json()["detail"]
        r = await client.post(url, content=b"body")
        assert (r.status_code, r.content) == (200, b"ok")


@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("POST", 502)])
async def test_the_keep_alive_race_is_retried_on_a_new_connection_when_repeatable(
    method: str, status: int
) -> None:
    """A backend that closes a kept-alive connection as the next request arrives (the
    request is read, nothing is answered): an idempotent request is sent once more on a
    new connection; a POST, which may have been processed, gets a 502."""
    connections = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        data = b""
        for n in range(2):
            while data.count(b"\r\n\r\n") <= n:
                received = await stream.receive_some(65536)
                if not received:
                    return
                data += received
            if n == 1:
                break  # the second request on this connection: close without a word
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await stream.aclose()

    async with _behind_proxy(handle) as url, httpx.AsyncClient() as client:
        assert (await client.request(method, url)).status_code == 200
        r = await client.request(method, url)
        assert r.status_code == status
    assert connections == (2 if status == 200 else 1)


async def test_a_backend_that_does_not_answer_a_reused_connection_is_not_retried() -> None:
    """The response timeout on a kept-alive connection is a 504, not the keep-alive race:
    nothing is sent again, even for a GET (the backend may be working on it)."""
    connections = 0
    second = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        data = b""
        while data.count(b"\r\n\r\n") < 1:
            data += await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        while data.count(b"\r\n\r\n") < 2:
            data += await stream.receive_some(65536)
        second.set()
        await trio.sleep_forever()  # read, never answered

    config = ProxyConfig(response_timeout=0.3, max_retries=0)
    async with _behind_proxy(handle, config) as url, httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(url)).status_code == 200
        r = await client.get(url)
        assert second.is_set()
        assert r.status_code == 504 and "in time" in r.json()["detail"]
    assert connections == 1
