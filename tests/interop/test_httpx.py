"""httpx (h11 and h2 on the client side, via httpcore) agrees with the server.

HTTP/2 runs with prior knowledge on cleartext (``http1=False, http2=True``) and through
ALPN under TLS.
"""

from __future__ import annotations

import logging
import random
import ssl

import httpx
import pytest
import trio

from netkit import App, HTTPStream, Server, ServerConfig
from netkit.examples.hello import hello
from tests.helpers import running_server, url
from tests.interop.peers import HELLO, assert_same_bytes

pytestmark = pytest.mark.interop

PROTOCOLS = pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])


def client(http2: bool) -> httpx.AsyncClient:
    """HTTP/1.1 only, or HTTP/2 only (prior knowledge on cleartext)."""
    return httpx.AsyncClient(http1=not http2, http2=http2, timeout=5.0)


def version(http2: bool) -> str:
    return "HTTP/2" if http2 else "HTTP/1.1"


@PROTOCOLS
async def test_get_hello(http2: bool) -> None:
    async with running_server() as server, client(http2) as c:
        with trio.fail_after(5):
            resp = await c.get(url(server))
        assert resp.http_version == version(http2)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["content-length"] == str(len(HELLO))
        assert resp.content == HELLO


@pytest.mark.parametrize(
    ("http2", "config"),
    [
        (False, None),
        (True, None),
        # Windows far below the body size: both directions must wait for WINDOW_UPDATEs.
        (True, ServerConfig(h2_initial_window_size=16_384)),
    ],
    ids=["http1.1", "h2", "h2-small-window"],
)
async def test_echo_one_mib_comes_back_byte_exact(http2: bool, config: ServerConfig) -> None:
    body = random.Random(1).randbytes(1 << 20)
    headers = {"content-type": "application/octet-stream"}
    async with running_server(config=config) as server, client(http2) as c:
        if config is not None:
            # httpcore treats only a zero send window as "wait": if our SETTINGS (a
            # window below the 64 KiB default) reach it after it has sent on the default
            # window, its window goes negative and it raises instead of waiting. One
            # request first, so it knows our SETTINGS before the big body.
            assert (await c.get(url(server, "/hello"))).status_code == 200
        with trio.move_on_after(4) as deadline:
            resp = await c.post(url(server, "/echo"), content=body, headers=headers)
        if deadline.cancelled_caught:
            pytest.fail(f"POST /echo of 1 MiB over {version(http2)} got no response within 4 s")
        assert resp.http_version == version(http2)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert_same_bytes(resp.content, body)


async def test_fifty_concurrent_requests_multiplex_over_one_h2_connection() -> None:
    """All 50 handlers run at once (a barrier proves it) on a single TCP connection."""
    n = 50
    app = App()
    arrived = 0
    all_arrived = trio.Event()
    connections_seen: set[int] = set()
    holder: list[Server] = []

    @app.route("GET", "/barrier")
    async def barrier(stream: HTTPStream) -> None:
        nonlocal arrived
        arrived += 1
        connections_seen.add(holder[0].connection_count)
        if arrived == n:
            all_arrived.set()
        await all_arrived.wait()
        await stream.respond(200, [("content-type", "text/plain")], b"%d" % stream.stream_id)

    async with running_server(app) as server, client(http2=True) as c:
        holder.append(server)
        responses: list[httpx.Response] = []

        async def one() -> None:
            responses.append(await c.get(url(server, "/barrier")))

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(one)
        streams = {id(r.extensions["network_stream"]) for r in responses}
        local_addresses = {
            r.extensions["network_stream"].get_extra_info("client_addr") for r in responses
        }

    assert len(responses) == n
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in responses)
    server_ids = {int(r.content) for r in responses}
    client_ids = {r.extensions["stream_id"] for r in responses}
    assert server_ids == client_ids
    assert len(server_ids) == n and all(sid % 2 == 1 for sid in server_ids)
    assert connections_seen == {1}
    assert len(streams) == 1 and len(local_addresses) == 1


async def test_http11_keep_alive_reuses_one_connection() -> None:
    async with running_server() as server, client(http2=False) as c:
        addresses = set()
        with trio.fail_after(5):
            for _ in range(5):
                resp = await c.get(url(server))
                assert resp.status_code == 200 and resp.content == HELLO
                assert "close" not in resp.headers.get("connection", "")
                addresses.add(resp.extensions["network_stream"].get_extra_info("client_addr"))
        assert len(addresses) == 1
        assert server.connection_count == 1


@PROTOCOLS
async def test_unknown_path_404_and_wrong_method_405(http2: bool) -> None:
    async with running_server() as server, client(http2) as c:
        with trio.fail_after(5):
            missing = await c.get(url(server, "/nope"))
            wrong = await c.delete(url(server, "/hello"))
            after = await c.get(url(server))
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET"
        assert wrong.json()["status"] == 405
        assert after.status_code == 200 and after.content == HELLO


def failing_app() -> App:
    app = App()
    app.route("GET", "/hello", hello)

    @app.route("GET", "/boom")
    async def boom(stream: HTTPStream) -> None:
        raise RuntimeError("handler bug")

    @app.route("GET", "/boom-later")
    async def boom_later(stream: HTTPStream) -> None:
        await stream.send_headers(200, [("content-type", "text/plain")])
        await stream.send_data(b"partial ")
        raise RuntimeError("handler bug after the response started")

    return app


@PROTOCOLS
async def test_handler_error_gives_500_and_server_keeps_serving(
    http2: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="netkit.server")
    async with running_server(failing_app()) as server:
        async with client(http2) as c:
            with trio.fail_after(5):
                resp = await c.get(url(server, "/boom"))
                again = await c.get(url(server))
        assert resp.status_code == 500
        assert resp.json() == {"status": 500, "detail": "internal server error"}
        assert again.status_code == 200 and again.content == HELLO
        assert any("handler failed: GET /boom" in r.getMessage() for r in caplog.records)
        async with client(http2) as fresh:
            with trio.fail_after(5):
                resp = await fresh.get(url(server))
        assert resp.status_code == 200 and resp.content == HELLO


@PROTOCOLS
async def test_handler_error_after_headers_cuts_only_that_response(http2: bool) -> None:
    """Once the 200 is out the server cannot send 500: the client sees a broken response
    (RST_STREAM on HTTP/2, a closed connection mid-body on HTTP/1.1), never a complete one."""
    async with running_server(failing_app()) as server, client(http2) as c:
        with trio.fail_after(5):
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get(url(server, "/boom-later"))
            resp = await c.get(url(server))
        assert resp.status_code == 200 and resp.content == HELLO


@PROTOCOLS
async def test_tls_alpn_picks_the_protocol(
    http2: bool, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    body = random.Random(2).randbytes(300_000)
    async with running_server(ssl_context=server_ssl_context) as server:
        # http1=True on both: the protocol is decided by ALPN alone.
        async with httpx.AsyncClient(
            http1=True, http2=http2, verify=client_ssl_context, timeout=5.0
        ) as c:
            with trio.fail_after(5):
                resp = await c.get(url(server, scheme="https"))
                echoed = await c.post(url(server, "/echo", scheme="https"), content=body)
        assert resp.http_version == version(http2)
        assert resp.status_code == 200 and resp.content == HELLO
        assert echoed.http_version == version(http2)
        assert_same_bytes(echoed.content, body)
