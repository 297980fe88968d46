"""HTTP/2 driver: flow control, per-stream independence, errors and graceful shutdown."""

from __future__ import annotations

import h2.errors
import h2.events
import h2.settings
import trio
from hyperframe.frame import HeadersFrame

from netkit import App, HTTPStream, ServerConfig
from netkit.examples.hello import app as hello_app
from tests.helpers import RawH2, running_server

WINDOW = 65535


def blocking_app(started: trio.Event, release: trio.Event) -> App:
    app = App()

    @app.route("POST", "/stuck")
    async def stuck(stream: HTTPStream) -> None:
        # Never reads its body: its window must stay shut, and nothing else may stall.
        started.set()
        await release.wait()
        await stream.respond(200, [], b"released")

    app.route("POST", "/echo", hello_app)
    app.route("GET", "/hello", hello_app)
    return app


async def test_unread_body_holds_its_window_but_not_other_streams() -> None:
    started, release = trio.Event(), trio.Event()
    config = ServerConfig(h2_initial_window_size=WINDOW)
    app = blocking_app(started, release)
    async with running_server(app, config) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            stuck = client.request("/stuck", "POST", end_stream=False)
            await client.flush()
            await started.wait()
            # Fill the stuck stream's whole window.
            for offset in range(0, WINDOW, 16384):
                client.conn.send_data(stuck, b"x" * min(16384, WINDOW - offset))
            await client.flush()
            # A second stream on the same connection moves 300 KB both ways.
            payload = bytes(range(256)) * 1200
            echo = client.request("/echo", "POST", end_stream=False)
            sent = 0
            while sent < len(payload):
                window = min(
                    client.conn.local_flow_control_window(echo),
                    client.conn.max_outbound_frame_size,
                )
                if window == 0:
                    await client.receive()
                    continue
                chunk = payload[sent : sent + window]
                client.conn.send_data(echo, chunk, end_stream=sent + len(chunk) == len(payload))
                sent += len(chunk)
                await client.flush()
            status, body = await client.response(echo)
            assert (status, body) == (200, payload)
            # The stuck stream never got its window back while unread.
            assert client.conn.local_flow_control_window(stuck) == 0
            assert not any(
                isinstance(e, h2.events.WindowUpdated) and e.stream_id == stuck
                for e in client.events
            )
            release.set()
            status, body = await client.response(stuck)
            assert (status, body) == (200, b"released")


async def test_sender_waits_for_the_peers_window() -> None:
    big = b"z" * 100_000
    app = App()

    @app.route("GET", "/big")
    async def send_big(stream: HTTPStream) -> None:
        await stream.respond(200, [], big)

    async with running_server(app) as server, RawH2.connect(server) as client:
        client.auto_ack = False
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
        await client.flush()
        with trio.fail_after(10):
            await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            sid = client.request("/big")
            await client.flush()
            received = 0
            while received < 1000:
                for event in await client.receive():
                    if isinstance(event, h2.events.DataReceived):
                        received += len(event.data)
            # The server stops at the window: nothing more arrives until we open it.
            with trio.move_on_after(0.3):
                while True:
                    for event in await client.receive():
                        assert not isinstance(event, h2.events.DataReceived)
            assert received == 1000
            client.conn.acknowledge_received_data(1000, sid)
            client.conn.increment_flow_control_window(200_000, stream_id=sid)
            await client.flush()
            status, body = await client.response(sid)
            assert status == 200 and body == big


async def test_handler_error_before_and_after_headers() -> None:
    app = App()

    @app.route("GET", "/early")
    async def early(stream: HTTPStream) -> None:
        raise ValueError("bug before responding")

    @app.route("GET", "/late")
    async def late(stream: HTTPStream) -> None:
        await stream.send_headers(200)
        await stream.send_data(b"partial")
        raise ValueError("bug mid-response")

    app.route("GET", "/hello", hello_app)
    async with running_server(app) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            status, _ = await client.get("/early")
            assert status == 500
            sid = client.request("/late")
            await client.flush()
            reset = await client.until(
                lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid
            )
            assert reset.error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
            assert await client.get("/hello") == (200, b'{"message":"hello, world"}')


async def test_graceful_shutdown_finishes_in_flight_streams() -> None:
    started, release = trio.Event(), trio.Event()
    app = App()

    @app.route("GET", "/slow")
    async def slow(stream: HTTPStream) -> None:
        started.set()
        await release.wait()
        await stream.respond(200, [], b"done" * 10_000)

    async with running_server(app) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            sid = client.request("/slow")
            await client.flush()
            await started.wait()
            server.shutdown()
            goaway = await client.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
            assert goaway.last_stream_id == sid
            # A stream opened after the GOAWAY is refused, the in-flight one completes.
            # (h2's client refuses to open streams after GOAWAY: frame it by hand)
            late = sid + 2
            frame = HeadersFrame(late, flags=["END_STREAM", "END_HEADERS"])
            frame.data = client.conn.encoder.encode(
                [(":method", "GET"), (":path", "/slow"), (":scheme", "http"), (":authority", "x")]
            )
            await client.send_raw(frame.serialize())
            while not client.rst_codes(late):
                await client.receive()
            assert client.rst_codes(late) == [h2.errors.ErrorCodes.REFUSED_STREAM]
            release.set()
            status, body = await client.response(sid)
            assert status == 200 and body == b"done" * 10_000
            await client.read_until_closed()


async def test_client_reset_cancels_the_handler() -> None:
    cancelled = trio.Event()
    started = trio.Event()
    app = App()

    @app.route("GET", "/wait")
    async def wait(stream: HTTPStream) -> None:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    app.route("GET", "/hello", hello_app)
    async with running_server(app) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            sid = client.request("/wait")
            await client.flush()
            await started.wait()
            client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            await client.flush()
            await cancelled.wait()
            assert await client.get("/hello") == (200, b'{"message":"hello, world"}')


async def test_idle_connection_gets_goaway_after_keep_alive_timeout() -> None:
    config = ServerConfig(keep_alive_timeout=0.3)
    async with running_server(hello_app, config) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            assert (await client.get("/hello"))[0] == 200
            start = trio.current_time()
            await client.read_until_closed()
            assert trio.current_time() - start >= 0.25
            goaway = client.goaway()
            assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
