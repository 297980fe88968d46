"""The HTTP/2 driver's short cuts: one-step responses with trailers, and batched small writes.

Both exist for speed (a unary gRPC reply in one write; no scheduling round per small
message), so these tests pin down that the short cuts keep the semantics: trailers are
checked before anything is sent, a body larger than the window still arrives whole, a
task sending in a tight loop neither starves other streams nor misses its cancellation.
"""

from __future__ import annotations

import httpx
import trio
from h2.errors import ErrorCodes

from netkit import App, H2ClientConnection, HTTPStream, StreamReset
from tests.helpers import running_server, url

BIG = 300 * 1024  # beyond the default 64 KiB stream window of a fresh client


def make_app(loops: dict[str, object]) -> App:
    app = App()
    ended = trio.Event()
    loops["ended_event"] = ended

    @app.route("GET", "/small")
    async def small(stream: HTTPStream) -> None:
        await stream.respond_with_trailers(
            200, [("content-type", "text/plain")], b"body", [("x-checksum", "abc")]
        )

    @app.route("GET", "/big")
    async def big(stream: HTTPStream) -> None:
        await stream.respond_with_trailers(200, [], b"b" * BIG, [("x-size", str(BIG))])

    @app.route("GET", "/bad-trailers")
    async def bad_trailers(stream: HTTPStream) -> None:
        await stream.respond_with_trailers(200, [], b"never sent", [("te", "gzip")])

    @app.route("GET", "/spin")
    async def spin(stream: HTTPStream) -> None:
        # Small writes in a tight loop: they only fill the stream's buffer, so the
        # driver must still yield and still see cancellation.
        await stream.send_headers(200, [])
        loops["started"] = True
        try:
            while True:
                await stream.send_data(b"x")
        finally:
            ended.set()

    @app.route("GET", "/hello")
    async def hello(stream: HTTPStream) -> None:
        await stream.respond(200, [], b"hi")

    return app


async def test_respond_with_trailers_over_http2() -> None:
    async with (
        running_server(make_app({})) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            for path, body, trailer in [
                ("/small", b"body", ("x-checksum", "abc")),
                ("/big", b"b" * BIG, ("x-size", str(BIG))),
            ]:
                async with conn.stream("GET", path, end_stream=True) as stream:
                    status, headers = await stream.receive_headers()
                    assert status == 200
                    assert "content-length" not in headers  # trailers follow the body
                    assert await stream.read_body() == body
                    assert stream.trailers is not None
                    assert stream.trailers.get(trailer[0]) == trailer[1]


async def test_invalid_trailers_are_refused_before_anything_is_sent() -> None:
    async with (
        running_server(make_app({})) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            status, _, body = await conn.request("GET", "/bad-trailers")
            assert status == 500 and b"never sent" not in body
            assert (await conn.request("GET", "/hello"))[::2] == (200, b"hi")


async def test_respond_with_trailers_over_http11() -> None:
    async with running_server(make_app({})) as server, httpx.AsyncClient() as client:
        with trio.fail_after(5):
            response = await client.get(url(server, "/small"))
            assert (response.status_code, response.content) == (200, b"body")


async def test_tight_send_loop_leaves_room_for_others_and_sees_its_reset() -> None:
    loops: dict[str, object] = {}
    async with (
        running_server(make_app(loops)) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            async with conn.stream("GET", "/spin", end_stream=True) as spinner:
                await spinner.receive_headers()
                await spinner.receive_data()
                # The spinning handler shares the connection (and the server's only
                # thread): other requests are still answered promptly.
                for _ in range(5):
                    with trio.fail_after(1):
                        assert (await conn.request("GET", "/hello"))[::2] == (200, b"hi")
                await spinner.reset(ErrorCodes.CANCEL)
            ended = loops["ended_event"]
            assert isinstance(ended, trio.Event)
            await ended.wait()  # the handler saw the reset and stopped
            assert loops.get("started") is True


async def test_reset_reaches_a_handler_blocked_on_a_closed_window() -> None:
    # The other half of "small writes do not yield": once the buffer is full the
    # sender waits for the window, and a reset must still end that wait.
    app = App()
    ended = trio.Event()

    @app.route("GET", "/flood")
    async def flood(stream: HTTPStream) -> None:
        await stream.send_headers(200, [])
        try:
            while True:
                await stream.send_data(b"y" * 1024)
        except StreamReset:
            ended.set()
            raise
        finally:
            ended.set()

    async with (
        running_server(app) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            async with conn.stream("GET", "/flood", end_stream=True) as stream:
                await stream.receive_headers()
                await trio.sleep(0.1)  # never read: the window closes
                await stream.reset(ErrorCodes.CANCEL)
            await ended.wait()
