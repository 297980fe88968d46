"""A handler's invalid response header is that stream's problem, not the connection's."""

from __future__ import annotations

import trio

from netkit import App, H2ClientConnection, HTTPStream
from tests.helpers import running_server


def make_app() -> App:
    app = App()

    @app.route("GET", "/bad-head")
    async def bad_head(stream: HTTPStream) -> None:
        # "te: gzip" is forbidden in HTTP/2; the header before it would have entered
        # h2's HPACK table if h2 had been left to find the problem while encoding.
        await stream.respond(200, [("x-request-tag", "abc123"), ("te", "gzip")], b"")

    @app.route("GET", "/bad-trailers")
    async def bad_trailers(stream: HTTPStream) -> None:
        await stream.send_headers(200, [("x-request-tag", "abc123")])
        await stream.send_data(b"partial")
        await stream.send_trailers([("x-after", "1"), ("te", "gzip")])

    @app.route("GET", "/good")
    async def good(stream: HTTPStream) -> None:
        await stream.respond(200, [("x-request-tag", "abc123")], b"good")

    return app


async def test_invalid_response_header_gets_500_and_the_connection_lives() -> None:
    async with (
        running_server(make_app()) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            status, _, _ = await conn.request("GET", "/bad-head")
            assert status == 500
            for _ in range(3):
                status, headers, body = await conn.request("GET", "/good")
                assert (status, body) == (200, b"good")
                assert headers.get("x-request-tag") == "abc123"


async def test_invalid_trailers_reset_the_stream_and_the_connection_lives() -> None:
    async with (
        running_server(make_app()) as server,
        H2ClientConnection.connect("127.0.0.1", server.port) as conn,
    ):
        with trio.fail_after(5):
            async with conn.stream("GET", "/bad-trailers", end_stream=True) as stream:
                status, _ = await stream.receive_headers()
                assert status == 200
                try:
                    await stream.read_body()
                except Exception as exc:  # the reset surfaces as the client's StreamReset
                    assert type(exc).__name__ == "StreamReset"
                else:
                    raise AssertionError("a response with invalid trailers ended normally")
            status, _, body = await conn.request("GET", "/good")
            assert (status, body) == (200, b"good")
