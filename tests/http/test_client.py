"""The HTTP/2 client connection: against netkit's own server on loopback, and against a
hand-driven h2 server over in-memory streams for what our server never does (malformed
responses, GOAWAY below an in-flight stream, silence, a dropped connection)."""

from __future__ import annotations

import functools
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing
import trustme
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, RstStreamFrame

from netkit import (
    App,
    ClientConfig,
    ConnectionClosed,
    H2ClientConnection,
    HTTPStream,
    LocalProtocolError,
    RemoteProtocolError,
    ServerConfig,
    StreamReset,
)
from netkit.examples.hello import app as hello_app
from tests.helpers import memory_connection, running_server

HELLO = b'{"message":"hello, world"}'
MiB = 1024 * 1024


def connect(server: Any, **config: Any) -> Any:
    return H2ClientConnection.connect(
        "127.0.0.1", server.port, config=ClientConfig(**config) if config else None
    )


def pattern(size: int) -> bytes:
    """Bytes whose every position is distinguishable from its neighbours' (catches reordering)."""
    block = bytes(range(251))  # a prime length: chunk boundaries never line up with it
    return (block * (size // len(block) + 1))[:size]


# -- a hand-driven server over memory streams ---------------------------------------------


class FakeServer:
    """An h2 server that does exactly what the test says, on the far end of a memory stream."""

    def __init__(self, stream: trio.abc.Stream, **config: Any) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None, **config)
        )
        self.events: list[h2.events.Event] = []
        self.frames: list[Frame] = []
        self._raw = b""
        self.closed = False

    async def start(self) -> None:
        self.conn.initiate_connection()
        await self.flush()

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def receive(self) -> list[h2.events.Event]:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return []
        self._log_frames(data)
        events = self.conn.receive_data(data)
        self.events.extend(events)
        await self.flush()
        return events

    def _log_frames(self, data: bytes) -> None:
        buf = self._raw + data
        if buf.startswith(b"PRI * HTTP/2.0"):
            buf = buf[24:]
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            self.frames.append(frame)
            buf = buf[9 + length :]
        self._raw = buf

    async def until(self, predicate: Any) -> h2.events.Event:
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            await self.receive()
            if self.closed:
                raise AssertionError(f"client went away; events: {self.events}")

    async def request(self, stream_id: int) -> h2.events.RequestReceived:
        event = await self.until(
            lambda e: isinstance(e, h2.events.RequestReceived) and e.stream_id == stream_id
        )
        assert isinstance(event, h2.events.RequestReceived)
        return event

    async def respond(self, stream_id: int, body: bytes = b"ok", **headers: str) -> None:
        pairs = [(":status", "200"), *headers.items()]
        self.conn.send_headers(stream_id, pairs)
        self.conn.send_data(stream_id, body, end_stream=True)
        await self.flush()

    def rst_codes(self, stream_id: int) -> list[int]:
        return [
            f.error_code
            for f in self.frames
            if isinstance(f, RstStreamFrame) and f.stream_id == stream_id
        ]


@asynccontextmanager
async def fake_pair(
    config: ClientConfig | None = None, **server_config: Any
) -> AsyncIterator[tuple[H2ClientConnection, FakeServer]]:
    """A client connection whose server is a FakeServer; its SETTINGS are already on the way."""
    client_side, server_side = trio.testing.memory_stream_pair()
    server = FakeServer(server_side, **server_config)
    await server.start()
    async with H2ClientConnection.over(client_side, authority="fake", config=config) as conn:
        yield conn, server


# -- against netkit's server --------------------------------------------------------------


async def test_simple_get() -> None:
    with trio.fail_after(5):
        async with running_server() as server, connect(server) as conn:
            assert conn.is_usable
            status, headers, body = await conn.request("GET", "/hello")
            assert (status, body) == (200, HELLO)
            assert headers.get("content-type") == "application/json"
            status, _, _ = await conn.request("GET", "/missing")
            assert status == 404
            assert server.connection_count == 1
    assert not conn.is_usable
    assert conn.open_stream_count == 0


async def test_post_and_trailers_both_ways() -> None:
    app = App()

    @app.route("POST", "/trailers")
    async def trailers(stream: HTTPStream) -> None:
        body = await stream.read_body()
        got = stream.trailers.get("x-sum") if stream.trailers else None  # type: ignore[attr-defined]
        await stream.send_headers(200, [("content-type", "text/plain")])
        await stream.send_data(body[::-1])
        await stream.send_trailers([("x-sum", str(len(body))), ("x-got", str(got))])

    with trio.fail_after(5):
        async with (
            running_server(app) as server,
            connect(server) as conn,
            conn.stream("POST", "/trailers") as stream,
        ):
            await stream.send_data(b"abc")
            await stream.send_trailers([("x-sum", "3")])
            status, _ = await stream.receive_headers()
            assert status == 200
            assert await stream.read_body() == b"cba"
            assert stream.trailers is not None
            assert stream.trailers.get("x-sum") == "3"
            assert stream.trailers.get("x-got") == "3"


async def test_hundred_concurrent_streams_on_one_connection() -> None:
    arrived = 0
    all_in = trio.Event()
    app = App()

    @app.route("GET", "/gather")
    async def gather(stream: HTTPStream) -> None:
        # Nobody answers before all 100 are in: proves the streams really are concurrent.
        nonlocal arrived
        arrived += 1
        if arrived == 100:
            all_in.set()
        await all_in.wait()
        await stream.respond(200, [], str(stream.stream_id).encode())

    results: dict[int, tuple[int, bytes]] = {}
    with trio.fail_after(10):
        async with running_server(app) as server, connect(server) as conn:

            async def one(i: int) -> None:
                status, _, body = await conn.request("GET", "/gather")
                results[i] = (status, body)

            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(one, i)
            assert server.connection_count == 1
    assert len(results) == 100
    assert {status for status, _ in results.values()} == {200}
    assert len({body for _, body in results.values()}) == 100  # 100 distinct stream ids


async def test_large_upload_and_download_with_small_windows_are_byte_exact() -> None:
    payload = os.urandom(4 * MiB)
    window = 16 * 1024
    received = bytearray()
    most_buffered = 0
    server_config = ServerConfig(h2_initial_window_size=window)
    with trio.fail_after(15):
        async with (
            running_server(hello_app, server_config) as server,
            connect(server, initial_window_size=window) as conn,
            conn.stream("POST", "/echo") as stream,
        ):

            async def upload() -> None:
                # One call: send_data must split by window and frame size by itself.
                await stream.send_data(payload, end_stream=True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(upload)
                status, _ = await stream.receive_headers()
                assert status == 200
                async for chunk in stream:
                    received += chunk
                    buffered = sum(len(data) for data, _ in stream._chunks)
                    most_buffered = max(most_buffered, buffered)
    assert len(received) == len(payload)
    assert bytes(received) == payload
    # Never more buffered than the stream's window: the window is the memory bound.
    assert most_buffered <= window


async def test_send_data_waits_for_the_servers_window_instead_of_buffering() -> None:
    started = trio.Event()
    app = App()

    @app.route("POST", "/sink")
    async def sink(stream: HTTPStream) -> None:
        started.set()
        await trio.sleep_forever()  # never reads: the window stays shut

    window = 16 * 1024
    with trio.fail_after(5):
        async with (
            running_server(app, ServerConfig(h2_initial_window_size=window)) as server,
            connect(server) as conn,
            conn.stream("POST", "/sink") as stream,
        ):
            await started.wait()
            with trio.move_on_after(0.3) as waited:
                await stream.send_data(b"x" * MiB)
            assert waited.cancelled_caught  # still waiting for WINDOW_UPDATE
            assert conn._h2.local_flow_control_window(stream.stream_id) == 0


async def test_waits_for_servers_max_concurrent_streams() -> None:
    active = 0
    most = 0
    app = App()

    @app.route("GET", "/slow")
    async def slow(stream: HTTPStream) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        try:
            await trio.sleep(0.05)
            await stream.respond(200, [], b"done")
        finally:
            active -= 1

    statuses: list[int] = []
    with trio.fail_after(10):
        async with (
            running_server(app, ServerConfig(max_concurrent_streams=2)) as server,
            connect(server) as conn,
        ):

            async def one() -> None:
                status, _, body = await conn.request("GET", "/slow")
                assert body == b"done"
                statuses.append(status)

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(one)
                await trio.sleep(0.01)
                assert conn.open_stream_count <= 2
            # A caller cancelled while waiting for a slot leaves no trace.
            async with (
                conn.stream("GET", "/slow", end_stream=True),
                conn.stream("GET", "/slow", end_stream=True),
            ):
                with trio.move_on_after(0.02) as waited:
                    await conn.open_stream("GET", "/slow", end_stream=True)
                assert waited.cancelled_caught
            assert conn.open_stream_count == 0
            assert (await conn.request("GET", "/slow"))[0] == 200
    assert statuses == [200] * 10
    assert most <= 2


async def test_unread_stream_does_not_block_the_others() -> None:
    big = pattern(3 * MiB)
    app = App()

    @app.route("GET", "/big")
    async def send_big(stream: HTTPStream) -> None:
        await stream.send_headers(200, [])
        for offset in range(0, len(big), 64 * 1024):
            await stream.send_data(big[offset : offset + 64 * 1024])
        await stream.send_data(b"", end_stream=True)

    app.route("GET", "/hello", hello_app)
    window = 64 * 1024
    with trio.fail_after(10):
        async with (
            running_server(app) as server,
            connect(server, initial_window_size=window, max_concurrent_streams=4) as conn,
            conn.stream("GET", "/big", end_stream=True) as unread,
        ):
            assert (await unread.receive_headers())[0] == 200
            # Many more bytes move on other streams than the connection window holds.
            for _ in range(3):
                status, _, body = await conn.request("GET", "/big")
                assert status == 200
                assert body == big
            assert (await conn.request("GET", "/hello"))[2] == HELLO
            buffered = sum(len(data) for data, _ in unread._chunks)
            assert 0 < buffered <= window
            assert await unread.read_body() == big


async def test_server_reset_raises_stream_reset_and_the_connection_lives_on() -> None:
    app = App()

    @app.route("GET", "/reset")
    async def reset(stream: HTTPStream) -> None:
        await stream.send_headers(200, [])
        await stream.send_data(b"partial")
        await stream.abort()  # RST_STREAM(INTERNAL_ERROR)

    app.route("GET", "/hello", hello_app)
    with trio.fail_after(5):
        async with running_server(app) as server, connect(server) as conn:
            async with conn.stream("GET", "/reset", end_stream=True) as stream:
                with pytest.raises(StreamReset) as info:
                    await stream.receive_headers()
                    await stream.read_body()
                assert info.value.error_code == ErrorCodes.INTERNAL_ERROR
                with pytest.raises(StreamReset):
                    await stream.receive_data()  # every later call too
            assert conn.is_usable
            assert (await conn.request("GET", "/hello"))[2] == HELLO


async def test_graceful_shutdown_finishes_in_flight_stream_and_refuses_new_ones() -> None:
    entered, release = trio.Event(), trio.Event()
    app = App()

    @app.route("GET", "/hold")
    async def hold(stream: HTTPStream) -> None:
        entered.set()
        await release.wait()
        await stream.respond(200, [], b"finished")

    with trio.fail_after(5):
        async with (
            running_server(app) as server,
            connect(server) as conn,
            conn.stream("GET", "/hold", end_stream=True) as stream,
        ):
            await entered.wait()
            server.shutdown()  # GOAWAY(NO_ERROR)
            while conn.goaway_received is None:  # noqa: ASYNC110 - no event to wait on
                await trio.sleep(0.005)
            assert conn.goaway_received.error_code == ErrorCodes.NO_ERROR
            assert conn.goaway_received.last_stream_id >= stream.stream_id
            assert not conn.is_usable
            with pytest.raises(ConnectionClosed, match="GOAWAY"):
                await conn.open_stream("GET", "/hold", end_stream=True)
            release.set()
            assert (await stream.receive_headers())[0] == 200
            assert await stream.read_body() == b"finished"


@pytest.mark.parametrize("how", ["exit", "cancel"])
async def test_leaving_stream_block_early_resets_the_stream(how: str) -> None:
    started, cancelled = trio.Event(), trio.Event()
    app = App()

    @app.route("POST", "/wait")
    async def wait(stream: HTTPStream) -> None:
        started.set()
        try:
            await stream.read_body()  # the client never ends its body
        except (trio.Cancelled, StreamReset):
            # On RST_STREAM the server cancels the handler, or its pending read raises.
            cancelled.set()
            raise

    app.route("GET", "/hello", hello_app)
    with trio.fail_after(5):
        async with running_server(app) as server, connect(server) as conn:
            if how == "exit":
                async with conn.stream("POST", "/wait") as stream:
                    await stream.send_data(b"some")
                    await started.wait()
            else:
                with trio.CancelScope() as scope:
                    async with conn.stream("POST", "/wait") as stream:
                        await stream.send_data(b"some")
                        await started.wait()
                        scope.cancel()
                        await trio.sleep_forever()
            await cancelled.wait()
            assert conn.open_stream_count == 0
            with pytest.raises(StreamReset):
                await stream.send_data(b"more")
            assert (await conn.request("GET", "/hello"))[2] == HELLO


async def test_tls_with_alpn_h2() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    app = App()

    @app.route("GET", "/scheme")
    async def scheme(stream: HTTPStream) -> None:
        req = stream.request
        body = f"{req.http_version} {req.scheme} {req.authority}".encode()
        await stream.respond(200, [], body)

    with trio.fail_after(5):
        async with (
            running_server(app, ssl_context=server_context) as server,
            H2ClientConnection.connect(
                "127.0.0.1", server.port, ssl_context=client_context, server_hostname="localhost"
            ) as conn,
        ):
            status, _, body = await conn.request("GET", "/scheme")
    assert status == 200
    assert body == f"2 https 127.0.0.1:{server.port}".encode()


async def test_tls_server_without_h2_fails_clearly() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server_context.set_alpn_protocols(["http/1.1"])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            await stream.do_handshake()
            await stream.receive_some(1)
        except trio.BrokenResourceError:
            pass

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            serve = functools.partial(
                trio.serve_ssl_over_tcp, handler, 0, server_context, host="127.0.0.1"
            )
            listeners = await nursery.start(serve)
            port = listeners[0].transport_listener.socket.getsockname()[1]
            with pytest.raises(RemoteProtocolError, match="ALPN"):
                async with H2ClientConnection.connect(
                    "127.0.0.1", port, ssl_context=client_context
                ):
                    pass  # pragma: no cover
            nursery.cancel_scope.cancel()


async def test_connect_errors_are_connection_closed() -> None:
    # A port nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(5), pytest.raises(ConnectionClosed, match="could not connect"):
        async with H2ClientConnection.connect("127.0.0.1", port):
            pass  # pragma: no cover

    # A cleartext HTTP/1.1-only peer answers the preface with garbage.
    async def http11(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, http11, 0)
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(ConnectionClosed, match=r"broke HTTP/2|closed"):
                async with H2ClientConnection.connect("127.0.0.1", port):
                    pass  # pragma: no cover
            nursery.cancel_scope.cancel()


async def test_callers_exception_leaves_the_block_unwrapped() -> None:
    with trio.fail_after(5):
        async with running_server() as server:
            with pytest.raises(KeyError, match="mine"):
                async with connect(server) as conn:
                    await conn.request("GET", "/hello")
                    raise KeyError("mine")
            assert not conn.is_usable


# -- against the hand-driven server --------------------------------------------------------


async def test_connection_drop_fails_pending_calls_and_block_exits() -> None:
    outcome: list[BaseException] = []
    with trio.fail_after(5):
        async with fake_pair() as (conn, server):
            stream = await conn.open_stream("GET", "/", end_stream=True)
            await server.request(stream.stream_id)

            async def pending() -> None:
                try:
                    await stream.receive_headers()
                except ConnectionClosed as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pending)
                await trio.testing.wait_all_tasks_blocked()
                await server.stream.aclose()  # the server vanishes
            assert not conn.is_usable
            with pytest.raises(ConnectionClosed):
                await conn.open_stream("GET", "/")
            with pytest.raises(ConnectionClosed):
                await stream.receive_data()
    assert len(outcome) == 1
    assert conn._run_done.is_set()  # the connection's tasks are all gone


async def test_goaway_below_an_in_flight_stream_refuses_it() -> None:
    with trio.fail_after(5):
        async with fake_pair() as (conn, server):
            first = await conn.open_stream("GET", "/1", end_stream=True)
            second = await conn.open_stream("GET", "/2", end_stream=True)
            await server.request(second.stream_id)
            server.conn.close_connection(last_stream_id=first.stream_id)
            await server.flush()
            # h2 closed its own state machine on sending GOAWAY; answer stream 1 anyway.
            server.conn.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
            await server.respond(first.stream_id, b"first")
            with pytest.raises(StreamReset) as info:
                await second.receive_headers()
            assert info.value.error_code == ErrorCodes.REFUSED_STREAM
            assert (await first.receive_headers())[0] == 200
            assert await first.read_body() == b"first"
            assert conn.goaway_received is not None
            assert conn.goaway_received.last_stream_id == first.stream_id
            with pytest.raises(ConnectionClosed):
                await conn.open_stream("GET", "/3")


async def test_goaway_with_error_fails_everything() -> None:
    with trio.fail_after(5):
        async with fake_pair() as (conn, server):
            stream = await conn.open_stream("GET", "/", end_stream=True)
            await server.request(stream.stream_id)
            server.conn.close_connection(
                error_code=ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"calm"
            )
            await server.flush()
            with pytest.raises(ConnectionClosed, match="ENHANCE_YOUR_CALM"):
                await stream.receive_headers()
            assert not conn.is_usable


async def test_malformed_response_fails_only_its_stream() -> None:
    with trio.fail_after(5):
        async with fake_pair(validate_outbound_headers=False, normalize_outbound_headers=False) as (
            conn,
            server,
        ):
            bad = await conn.open_stream("GET", "/bad", end_stream=True)
            short = await conn.open_stream("GET", "/short", end_stream=True)
            good = await conn.open_stream("GET", "/good", end_stream=True)
            await server.request(good.stream_id)
            # "connection" is forbidden in HTTP/2 (RFC 9113 §8.2.2).
            server.conn.send_headers(bad.stream_id, [(":status", "200"), ("connection", "close")])
            # A body shorter than its content-length.
            server.conn.send_headers(
                short.stream_id, [(":status", "200"), ("content-length", "10")]
            )
            server.conn.send_data(short.stream_id, b"abc", end_stream=True)
            await server.respond(good.stream_id, b"fine")
            with pytest.raises(RemoteProtocolError, match="malformed"):
                await bad.receive_headers()
            with pytest.raises(RemoteProtocolError, match="malformed"):
                await short.receive_headers()
                await short.read_body()
            assert (await good.receive_headers())[0] == 200
            assert await good.read_body() == b"fine"
            assert conn.is_usable
            await server.until(lambda e: isinstance(e, h2.events.StreamReset))
            assert server.rst_codes(bad.stream_id) == [ErrorCodes.PROTOCOL_ERROR]
            assert server.rst_codes(short.stream_id) == [ErrorCodes.PROTOCOL_ERROR]


async def test_informational_responses_are_skipped() -> None:
    with trio.fail_after(5):
        async with fake_pair() as (conn, server):
            stream = await conn.open_stream("GET", "/", end_stream=True)
            await server.request(stream.stream_id)
            server.conn.send_headers(stream.stream_id, [(":status", "103"), ("link", "</a>")])
            await server.respond(stream.stream_id, b"after 103")
            assert (await stream.receive_headers())[0] == 200
            assert await stream.read_body() == b"after 103"


async def test_keepalive_closes_a_silent_connection(autojump_clock: trio.abc.Clock) -> None:
    config = ClientConfig(keepalive_interval=5, keepalive_timeout=2)
    with trio.fail_after(60):
        async with fake_pair(config) as (conn, server):
            stream = await conn.open_stream("GET", "/", end_stream=True)
            await server.receive()  # then never read again: no PING ever gets its ACK
            start = trio.current_time()
            with pytest.raises(ConnectionClosed, match="PING"):
                await stream.receive_headers()
            assert 6.5 <= trio.current_time() - start <= 8
            assert not conn.is_usable


async def test_keepalive_keeps_a_live_connection(autojump_clock: trio.abc.Clock) -> None:
    client_config = ClientConfig(keepalive_interval=5, keepalive_timeout=2)
    server_config = ServerConfig(keep_alive_timeout=1000)
    with trio.fail_after(120):
        async with (
            memory_connection(hello_app, server_config, protocol="h2") as transport,
            H2ClientConnection.over(transport, authority="mem", config=client_config) as conn,
        ):
            assert (await conn.request("GET", "/hello"))[2] == HELLO
            await trio.sleep(60)  # a dozen PINGs, each answered
            assert conn.is_usable
            assert (await conn.request("GET", "/hello"))[2] == HELLO


def test_config_is_frozen_and_validated() -> None:
    config = ClientConfig()
    assert config.initial_window_size == MiB
    assert config.keepalive_interval is None
    with pytest.raises((ValueError, TypeError)):
        ClientConfig(initial_window_size=0)
    with pytest.raises((ValueError, TypeError)):
        ClientConfig(max_frame_size=100)
    with pytest.raises((ValueError, TypeError)):
        ClientConfig(keepalive_interval=-1)
    with pytest.raises((ValueError, TypeError)):
        ClientConfig(connect_timeout=0)


async def test_server_that_stops_reading_hits_write_timeout(autojump_clock: trio.abc.Clock) -> None:
    # lockstep streams have no buffer: a send waits until the other side receives.
    client_side, server_side = trio.testing.lockstep_stream_pair()
    server = FakeServer(server_side)

    async def handshake_then_stop_reading() -> None:
        await server.start()
        await server.receive()  # the client's preface; after this, nothing is read
        await trio.sleep_forever()

    config = ClientConfig(write_timeout=3)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handshake_then_stop_reading)
            async with H2ClientConnection.over(client_side, authority="x", config=config) as conn:
                stream = await conn.open_stream("POST", "/")
                start = trio.current_time()
                with pytest.raises(ConnectionClosed, match="did not read"):
                    await stream.send_data(b"x" * MiB)
                assert trio.current_time() - start == pytest.approx(3, abs=0.5)
                assert not conn.is_usable
            nursery.cancel_scope.cancel()


async def test_server_that_never_sends_settings_times_out(autojump_clock: trio.abc.Clock) -> None:
    client_side, _server_side = trio.testing.memory_stream_pair()
    config = ClientConfig(connect_timeout=4)
    with trio.fail_after(30), pytest.raises(ConnectionClosed, match="SETTINGS"):
        async with H2ClientConnection.over(client_side, authority="x", config=config):
            pass  # pragma: no cover
    assert trio.current_time() == pytest.approx(4, abs=0.5)


async def test_oversized_response_head_ends_the_connection() -> None:
    with trio.fail_after(5):
        async with fake_pair(ClientConfig(max_header_list_size=1024)) as (conn, server):
            stream = await conn.open_stream("GET", "/", end_stream=True)
            await server.request(stream.stream_id)
            await server.respond(stream.stream_id, b"", **{"x-big": "v" * 4096})
            with pytest.raises(ConnectionClosed, match="broke HTTP/2"):
                await stream.receive_headers()
            assert not conn.is_usable


async def test_invalid_request_head_or_trailers_is_a_local_error_and_costs_nothing() -> None:
    app = App()

    @app.route("POST", "/tag")
    async def tag(stream: HTTPStream) -> None:
        await stream.read_body()
        await stream.respond(200, [], (stream.request.headers.get("x-first") or "").encode())

    # h2 validates while HPACK-encoding: without checking first, "x-first" would enter
    # the encoder's table although nothing is sent, and the next request that reuses it
    # would break the whole connection (COMPRESSION_ERROR).
    bad = [("x-first", "indexed"), ("te", "gzip")]
    with trio.fail_after(5):
        async with running_server(app) as server, connect(server) as conn:
            with pytest.raises(LocalProtocolError, match="TE"):
                await conn.open_stream("POST", "/tag", bad)
            async with conn.stream("POST", "/tag") as stream:
                with pytest.raises(LocalProtocolError, match="TE"):
                    await stream.send_trailers(bad)
                await stream.end()
                assert await stream.read_body() == b""
            for _ in range(2):
                status, _, body = await conn.request("POST", "/tag", [("x-first", "indexed")])
                assert (status, body) == (200, b"indexed")
            assert conn.open_stream_count == 0
            assert conn.is_usable


async def test_early_response_to_an_unread_upload() -> None:
    # POST to a GET-only route: the server answers 405 without reading the body, then
    # RST_STREAM(NO_ERROR) stops the upload; the response must still be delivered.
    with trio.fail_after(5):
        async with running_server() as server, connect(server) as conn:
            status, _, body = await conn.request("POST", "/hello", body=b"x" * (4 * MiB))
            assert status == 405
            assert b"not allowed" in body
            assert conn.is_usable
