"""HTTP/2 abuse: each attack from a raw client, and a well-behaved bystander still served.

Every attack test keeps a second connection (the *bystander*) with a request in flight
while the attack runs; once the attacker is gone, that request completes with 200 and a
new one on the same connection does too. The attacks use small budgets so they trigger
quickly, and assert the exact answer (GOAWAY / RST_STREAM error code).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager

import h2.events
import h2.settings
import hpack
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from netkit import App, HTTPStream, Server, ServerConfig
from netkit.examples.hello import app as hello_app
from netkit.http import _h2
from netkit.http._h2 import H2Connection
from netkit.http._stream import Handler
from tests.helpers import PREFACE, RawH2, memory_connection, running_server

HELLO = b'{"message":"hello, world"}'
CALM = ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No attack may make the server log an error (a crashed connection or handler)."""
    caplog.set_level(logging.ERROR, logger="netkit.server")
    yield
    errors = [
        f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
        for r in caplog.get_records("call")
        if r.name == "netkit.server" and r.levelno >= logging.ERROR
    ]
    assert not errors, f"server logged errors: {errors}"


# -- the application -----------------------------------------------------------------


class Gate:
    """The bystander's in-flight request: ``entered`` once its handler runs."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()


class Gauge:
    """Counts handlers running at once, and the most that ever did."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._idle = trio.Event()
        self._idle.set()

    def enter(self) -> None:
        if not self.current:
            self._idle = trio.Event()
        self.current += 1
        self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        self.current -= 1
        if not self.current:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def held_handler(gate: Gate) -> Handler:
    async def held(stream: HTTPStream) -> None:
        gate.entered.set()
        await gate.release.wait()
        await stream.respond(200, [], b"held")

    return held


def make_app(gate: Gate, gauge: Gauge | None = None) -> App:
    gauge = gauge or Gauge()
    app = App()
    app.route("GET", "/hello", hello_app)
    app.route("POST", "/echo", hello_app)
    app.route("GET", "/held", held_handler(gate))

    @app.route("GET", "/slow")
    async def slow(stream: HTTPStream) -> None:
        # Expensive work before answering: what rapid reset tries to multiply.
        gauge.enter()
        try:
            await trio.sleep(10)
            await stream.respond(200, [], b"slow")
        finally:
            gauge.leave()

    @app.route("POST", "/upload")
    async def upload(stream: HTTPStream) -> None:
        body = await stream.read_body()
        await stream.respond(200, [], str(len(body)).encode())

    return app


# -- clients -------------------------------------------------------------------------


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame built byte by byte, for frames hyperframe refuses to build."""
    return (
        struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id) + payload
    )


def request_headers(path: str = "/hello", method: str = "GET") -> list[tuple[str, str]]:
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]


class FrameClient:
    """Writes exactly the frames it is given; no state machine stands in the way.

    It keeps its own HPACK encoder (so every header block on the connection must come
    from ``headers()`` or ``self.encoder``) and parses what the server sends frame by frame.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.frames: list[Frame] = []
        self.statuses: dict[int, int] = {}
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.closed = False
        self._buffer = b""

    @classmethod
    @asynccontextmanager
    async def connect(cls, server: Server) -> AsyncIterator[FrameClient]:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        client = cls(stream)
        try:
            # Handshake done before the attack starts: no frame of ours (such as a
            # SETTINGS ACK) may land in the middle of what the test sends later.
            await client.send(PREFACE, SettingsFrame(0))
            with trio.fail_after(2):
                await client.until(lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags)
            await client.send(SettingsFrame(0, flags=["ACK"]))
            yield client
        finally:
            await trio.aclose_forcefully(stream)

    def headers(
        self,
        stream_id: int,
        path: str = "/hello",
        method: str = "GET",
        *,
        end_stream: bool = True,
        extra: Iterable[tuple[str, str]] = (),
    ) -> HeadersFrame:
        flags = ["END_HEADERS", "END_STREAM"] if end_stream else ["END_HEADERS"]
        frame = HeadersFrame(stream_id, flags=flags)
        frame.data = self.encoder.encode([*request_headers(path, method), *extra])
        return frame

    async def send(self, *items: Frame | bytes) -> bool:
        """Write the frames in one ``send_all``; False once the server has hung up."""
        data = b"".join(item if isinstance(item, bytes) else item.serialize() for item in items)
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def receive(self) -> list[Frame]:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return []
        buf = self._buffer + data
        new: list[Frame] = []
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            new.append(frame)
            buf = buf[9 + length :]
        self._buffer = buf
        for frame in new:
            self.frames.append(frame)
            sid = frame.stream_id
            if isinstance(frame, HeadersFrame):
                fields = dict(self.decoder.decode(frame.data, raw=True))
                if b":status" in fields:
                    self.statuses[sid] = int(fields[b":status"])
            elif isinstance(frame, DataFrame):
                self.bodies.setdefault(sid, bytearray()).extend(frame.data)
            if isinstance(frame, HeadersFrame | DataFrame) and "END_STREAM" in frame.flags:
                self.ended.add(sid)
        return new

    async def until(self, predicate: Callable[[Frame], bool]) -> Frame:
        """Read until a frame satisfying ``predicate`` arrives (callers bound the wait)."""
        frame = await self.until_or_closed(predicate)
        if frame is None:
            raise AssertionError(f"connection closed; frames: {self.frames}")
        return frame

    async def until_or_closed(self, predicate: Callable[[Frame], bool]) -> Frame | None:
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            if self.closed:
                return None
            await self.receive()

    async def read_until_closed(self) -> None:
        while not self.closed:
            await self.receive()

    async def response(self, stream_id: int) -> tuple[int, bytes]:
        await self.until(
            lambda f: (
                f.stream_id == stream_id
                and (
                    isinstance(f, RstStreamFrame)
                    or (isinstance(f, HeadersFrame | DataFrame) and "END_STREAM" in f.flags)
                )
            )
        )
        assert not self.rst_codes(stream_id), f"stream {stream_id} reset"
        return self.statuses.get(stream_id, 0), bytes(self.bodies.get(stream_id, b""))

    async def ping_round_trip(self, opaque: bytes = b"sync0000") -> None:
        """Everything sent before this has been processed by the server."""
        await self.send(PingFrame(0, opaque_data=opaque))
        await self.until(
            lambda f: isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == opaque
        )

    def rst_codes(self, stream_id: int) -> list[int]:
        return [
            f.error_code
            for f in self.frames
            if isinstance(f, RstStreamFrame) and f.stream_id == stream_id
        ]

    def goaway(self) -> GoAwayFrame | None:
        for frame in self.frames:
            if isinstance(frame, GoAwayFrame):
                return frame
        return None


@asynccontextmanager
async def bystander(server: Server, gate: Gate) -> AsyncIterator[RawH2]:
    """A well-behaved client with a request in flight for the whole block.

    On leaving the block, that request must complete (200) and a new request on the same
    connection must be answered (200): the attack next door changed nothing for it.
    """
    async with RawH2.connect(server) as client:
        with trio.fail_after(2):
            held = client.request("/held")
            await client.flush()
            await gate.entered.wait()
        yield client
        with trio.fail_after(2):
            gate.release.set()
            assert await client.response(held) == (200, b"held")
            assert await client.get("/hello") == (200, HELLO)
        assert client.goaway() is None


async def assert_prompt_hello(client: RawH2, within: float = 2.0) -> None:
    with trio.fail_after(within):
        assert await client.get("/hello") == (200, HELLO)


def assert_goaway(client: FrameClient, *codes: int) -> GoAwayFrame:
    goaway = client.goaway()
    assert goaway is not None, "no GOAWAY before the connection closed"
    assert goaway.error_code in codes, f"GOAWAY {goaway.error_code}, expected one of {codes}"
    assert client.closed
    return goaway


# -- rapid reset and stream limits ---------------------------------------------------


@pytest.mark.parametrize("batch", [1, 50], ids=["one-per-write", "50-per-write"])
async def test_rapid_reset_ends_in_enhance_your_calm_without_piling_up_handlers(
    batch: int,
) -> None:
    # CVE-2023-44487: HEADERS then RST_STREAM, over and over, against a handler that
    # works 10 s before answering. Whether the pairs arrive one per write or many per
    # read, no more than max_concurrent_streams handlers may ever run at once.
    gate, gauge = Gate(), Gauge()
    config = ServerConfig(max_concurrent_streams=4, h2_reset_burst=50, h2_reset_rate=1.0)
    async with (
        running_server(make_app(gate, gauge), config) as server,
        bystander(server, gate) as other,
        RawH2.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            for _ in range(500 // batch):
                for _ in range(batch):
                    sid = attacker.request("/slow")
                    attacker.conn.reset_stream(sid, ErrorCodes.CANCEL)
                try:
                    await attacker.flush()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            await attacker.read_until_closed()
            goaway = attacker.goaway()
            assert goaway is not None and goaway.error_code == CALM
            await assert_prompt_hello(other)
            # Nothing the attacker started outlives its connection.
            await gauge.wait_idle()
        assert gauge.peak <= config.max_concurrent_streams, (
            f"{gauge.peak} handlers ran at once (limit {config.max_concurrent_streams})"
        )


async def test_reset_in_the_same_packet_as_its_headers_cancels_the_handler() -> None:
    # The RST_STREAM reaches the server before the stream's task has started: the
    # handler must still be cancelled (or never run), not sleep out its 10 seconds.
    gate, gauge = Gate(), Gauge()
    async with (
        running_server(make_app(gate, gauge)) as server,
        bystander(server, gate),
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(2):
            rst = RstStreamFrame(1)
            rst.error_code = ErrorCodes.CANCEL
            await attacker.send(attacker.headers(1, "/slow"), rst)
            await attacker.ping_round_trip()
            with trio.move_on_after(1):
                await gauge.wait_idle()
            assert gauge.current == 0, "handler of a reset stream still running"
            assert attacker.statuses.get(1) is None
            await attacker.send(attacker.headers(3, "/hello"))
            assert await attacker.response(3) == (200, HELLO)


async def test_streams_over_the_limit_are_refused_and_the_connection_lives_on() -> None:
    gate, release = Gate(), trio.Event()
    entered = 0
    app = make_app(gate)

    @app.route("GET", "/wait")
    async def wait(stream: HTTPStream) -> None:
        nonlocal entered
        entered += 1
        await release.wait()
        await stream.respond(200, [], b"waited")

    config = ServerConfig(max_concurrent_streams=4, h2_reset_burst=50)
    async with (
        running_server(app, config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as client,
    ):
        with trio.fail_after(2):
            # Six streams at once, ignoring the advertised limit of 4.
            sids = [1, 3, 5, 7, 9, 11]
            await client.send(*(client.headers(sid, "/wait") for sid in sids))
            for sid in (9, 11):
                await client.until(
                    lambda f, sid=sid: isinstance(f, RstStreamFrame) and f.stream_id == sid
                )
                assert client.rst_codes(sid) == [ErrorCodes.REFUSED_STREAM]
            await client.ping_round_trip()
            assert entered == 4
            await assert_prompt_hello(other)
            release.set()
            for sid in sids[:4]:
                assert await client.response(sid) == (200, b"waited")
                assert client.rst_codes(sid) == []
            # The connection is still usable for new streams.
            await client.send(client.headers(13, "/hello"))
            assert await client.response(13) == (200, HELLO)
            assert client.goaway() is None


# -- header blocks ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16384], ids=["empty", "full"])
async def test_continuation_flood_ends_the_connection(size: int) -> None:
    gate = Gate()
    config = ServerConfig(max_header_size=4096)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            head = HeadersFrame(1)  # no END_HEADERS: a header block that never ends
            head.data = attacker.encoder.encode(request_headers())
            await attacker.send(head)
            for _ in range(200):
                cont = ContinuationFrame(1)
                cont.data = b"\x00" * size
                if not await attacker.send(cont):
                    break
            await assert_prompt_hello(other)
            await attacker.read_until_closed()
        assert_goaway(attacker, ErrorCodes.PROTOCOL_ERROR, CALM)


async def test_unfinished_header_block_is_cut_off_at_max_header_size() -> None:
    # max_header_size bounds the *encoded* block: a block still growing past it must
    # end the connection as it grows, not once 64 CONTINUATION frames (here ~1 MiB of
    # buffered header bytes, up to 64 x h2_max_frame_size) have piled up.
    gate = Gate()
    config = ServerConfig(max_header_size=4096)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            head = HeadersFrame(1)
            head.data = attacker.encoder.encode(request_headers())
            conts = []
            for _ in range(60):  # under h2's cap of 64 frames, 240x max_header_size
                cont = ContinuationFrame(1)
                cont.data = b"\x00" * 16384
                conts.append(cont)
            await attacker.send(head, *conts)
            with trio.move_on_after(1):
                await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert attacker.closed, "server still buffering a 960 KiB header block"
        assert_goaway(attacker, ErrorCodes.PROTOCOL_ERROR, CALM)


async def test_oversized_header_block_ends_the_connection() -> None:
    gate = Gate()
    config = ServerConfig(max_header_size=4096)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(2):
            # One literal header of 8000 bytes: the encoded block alone exceeds the limit.
            await attacker.send(attacker.headers(1, extra=[("x-big", "v" * 8000)]))
            await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, CALM)
        assert 1 not in attacker.statuses


async def test_static_table_bomb_ends_the_connection() -> None:
    # 400 one-byte references to the static entry "accept-encoding: gzip, deflate": a
    # 400-byte block that decodes to a 24 KB header list.
    gate = Gate()
    config = ServerConfig(max_header_size=4096)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(2):
            frame = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
            frame.data = attacker.encoder.encode(request_headers()) + b"\x90" * 400
            await attacker.send(frame)
            await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, CALM, ErrorCodes.COMPRESSION_ERROR)
        assert 1 not in attacker.statuses


async def test_hpack_bomb_through_the_dynamic_table_ends_the_connection() -> None:
    gate = Gate()
    async with (
        running_server(make_app(gate)) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(2):
            # A legitimate request puts a 3900-byte value into the dynamic table (it and
            # the pseudo-headers' entries all fit in the 4096-byte table) ...
            bomb = ("x-bomb", "b" * 3900)
            await attacker.send(attacker.headers(1, extra=[bomb]))
            assert await attacker.response(1) == (200, HELLO)
            # ... and the next one refers to it 2000 times: ~2 KB encoded, 8 MB decoded.
            frame = attacker.headers(3, extra=[bomb] * 2000)
            assert len(frame.data) < 4096
            await attacker.send(frame)
            await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, CALM, ErrorCodes.COMPRESSION_ERROR)
        assert 3 not in attacker.statuses


# -- control-frame floods ----------------------------------------------------------------

FLOOD_CONFIG = ServerConfig(h2_control_burst=50, h2_control_rate=1.0)


async def _control_flood(frames: Callable[[FrameClient], list[Frame | bytes]]) -> FrameClient:
    gate = Gate()
    async with (
        running_server(make_app(gate), FLOOD_CONFIG) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            await attacker.send(*frames(attacker))
            await assert_prompt_hello(other)
            await attacker.read_until_closed()
    return attacker


async def test_ping_flood_ends_in_enhance_your_calm() -> None:
    attacker = await _control_flood(
        lambda c: [PingFrame(0, opaque_data=i.to_bytes(8, "big")) for i in range(200)]
    )
    assert_goaway(attacker, CALM)
    acks = [f for f in attacker.frames if isinstance(f, PingFrame) and "ACK" in f.flags]
    assert 50 <= len(acks) <= 200


async def test_settings_flood_ends_in_enhance_your_calm() -> None:
    attacker = await _control_flood(
        lambda c: [SettingsFrame(0, settings={SettingsFrame.ENABLE_PUSH: 0}) for _ in range(200)]
    )
    assert_goaway(attacker, CALM)


async def test_priority_flood_ends_in_enhance_your_calm() -> None:
    attacker = await _control_flood(
        lambda c: [PriorityFrame(2 * i + 1, depends_on=0, stream_weight=15) for i in range(200)]
    )
    assert_goaway(attacker, CALM)


async def test_empty_data_flood_ends_in_enhance_your_calm() -> None:
    attacker = await _control_flood(
        lambda c: (
            [c.headers(1, "/upload", "POST", end_stream=False)] + [DataFrame(1) for _ in range(200)]
        )
    )
    assert_goaway(attacker, CALM)
    assert 1 not in attacker.statuses


async def test_priority_frames_sent_along_with_a_request_are_still_charged() -> None:
    # A PRIORITY frame for the stream whose HEADERS arrived in the same read is free
    # (h2 reports HEADERS' own priority flag that way). It must not make *separate*
    # PRIORITY frames free: 20 requests each carrying 500 of them is a 10,000-frame
    # PRIORITY flood against a budget of 50.
    gate = Gate()
    async with (
        running_server(make_app(gate), FLOOD_CONFIG) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            await attacker.ping_round_trip()
            for n in range(20):
                sid = 2 * n + 1
                priorities = [PriorityFrame(sid, depends_on=0, stream_weight=15)] * 500
                if not await attacker.send(attacker.headers(sid), *priorities):
                    break
                await attacker.until_or_closed(
                    lambda f, sid=sid: (
                        isinstance(f, GoAwayFrame)
                        or (isinstance(f, DataFrame) and f.stream_id == sid)
                    )
                )
                if attacker.goaway() or attacker.closed:
                    break
            with trio.move_on_after(0.5):
                await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, CALM)


async def test_flood_in_the_same_read_as_a_new_request_still_ends_cleanly() -> None:
    # The budget runs out in the very batch that also opened a stream. That stream's
    # handler must not trip over the closed connection (an error, logged and fatal to
    # the connection task), and the GOAWAY must still go out.
    attacker = await _control_flood(
        lambda c: (
            [c.headers(1, "/hello")]
            + [PingFrame(0, opaque_data=i.to_bytes(8, "big")) for i in range(60)]
        )
    )
    assert_goaway(attacker, CALM)


async def test_ping_flood_without_reading_the_acks_does_not_starve_others() -> None:
    # A budget big enough that the flood is never cut off: the server has to cope with
    # 100k PINGs from a client that reads none of the ACKs.
    gate = Gate()
    config = ServerConfig(h2_control_burst=10**9, h2_control_rate=1e9)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        ping = PingFrame(0, opaque_data=b"flooding").serialize()
        peak_outbuf = 0

        async def flood() -> None:
            for _ in range(20):
                if not await attacker.send(ping * 5000):
                    return

        async def watch() -> None:
            nonlocal peak_outbuf
            while True:
                for conn in list(server._connections):
                    if isinstance(conn, H2Connection):
                        peak_outbuf = max(peak_outbuf, len(conn._outbuf))
                await trio.sleep(0.005)

        with trio.move_on_after(1.5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                nursery.start_soon(watch)
                await trio.sleep(0.1)
                for _ in range(5):  # served promptly all along
                    await assert_prompt_hello(other, within=1.0)
                    await trio.sleep(0.1)
        assert peak_outbuf <= _h2._OUT_HIGH_WATER + _h2._READ_SIZE
        await assert_prompt_hello(other)


async def test_unread_ping_acks_stop_the_server_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Lockstep streams have no buffers: the server's writes block as soon as the client
    # stops reading, so this shows the output bound itself, then write_timeout.
    config = ServerConfig(
        h2_control_burst=10**9, h2_control_rate=1e9, write_timeout=5, keep_alive_timeout=60
    )
    client_side, server_side = trio.testing.lockstep_stream_pair()
    conn = H2Connection(server_side, hello_app, config, scheme="http")
    done = trio.Event()
    pings_sent = 0

    async def run_server() -> None:
        try:
            await conn.run()
        finally:
            await trio.aclose_forcefully(server_side)
            done.set()

    async def flood() -> None:
        nonlocal pings_sent
        ping = PingFrame(0, opaque_data=b"flooding").serialize()
        try:
            await client_side.send_all(PREFACE + SettingsFrame(0).serialize())
            for _ in range(100):
                await client_side.send_all(ping * 1000)
                pings_sent += 1000
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with (
        memory_connection(hello_app, config, protocol="h2") as other_stream,
        trio.open_nursery() as nursery,
    ):
        other = RawH2(other_stream)
        other.conn.initiate_connection()
        await other.flush()
        nursery.start_soon(run_server)
        nursery.start_soon(flood)
        start = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        # Everyone is stuck: the server stopped reading once its output hit the mark.
        assert pings_sent < 100_000
        assert len(conn._outbuf) <= _h2._OUT_HIGH_WATER + _h2._READ_SIZE
        assert not conn.dead
        # Another connection is served at once (no virtual time passes).
        assert await other.get("/hello") == (200, HELLO)
        assert trio.current_time() == start
        # The flooder is dropped when its write has been stuck for write_timeout.
        with trio.fail_after(config.write_timeout + 1):
            await done.wait()
        assert conn.dead
        assert config.write_timeout <= trio.current_time() - start
        assert await other.get("/hello") == (200, HELLO)
        nursery.cancel_scope.cancel()


# -- flow control ------------------------------------------------------------------------


def big_app(ended: trio.Event, size: int = 1 << 20) -> App:
    app = App()
    app.route("GET", "/hello", hello_app)

    @app.route("GET", "/big")
    async def big(stream: HTTPStream) -> None:
        try:
            await stream.respond(200, [], b"x" * size)
        finally:
            ended.set()

    return app


async def test_zero_window_stall_resets_the_stream_after_write_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ended = trio.Event()
    config = ServerConfig(write_timeout=7)
    async with memory_connection(big_app(ended), config, protocol="h2") as stream:
        client = RawH2(stream)
        client.conn.initiate_connection()
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        await client.flush()
        with trio.fail_after(60):
            await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            start = trio.current_time()
            sid = client.request("/big")
            await client.flush()
            await client.until(
                lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
            )
            # Another stream on the same connection, given a window, is answered at once.
            other = client.request("/hello")
            client.conn.increment_flow_control_window(1000, stream_id=other)
            await client.flush()
            assert await client.response(other) == (200, HELLO)
            assert trio.current_time() == start
            assert not ended.is_set()
            reset = await client.until(
                lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid
            )
            assert reset.error_code == ErrorCodes.CANCEL
            elapsed = trio.current_time() - start
            assert config.write_timeout <= elapsed < config.write_timeout + 1
            await trio.testing.wait_all_tasks_blocked()
            assert ended.is_set(), "the stalled handler is still running"
            assert not any(
                isinstance(e, h2.events.DataReceived) and e.stream_id == sid for e in client.events
            )
            assert client.goaway() is None


async def test_zero_window_stall_over_tcp_frees_the_stream() -> None:
    ended, gate = trio.Event(), Gate()
    app = big_app(ended)
    app.route("GET", "/held", held_handler(gate))
    config = ServerConfig(write_timeout=0.5)
    async with (
        running_server(app, config) as server,
        bystander(server, gate) as other,
        RawH2.connect(server) as client,
    ):
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        await client.flush()
        with trio.fail_after(3):
            await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            sid = client.request("/big")
            await client.flush()
            await client.until(
                lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid
            )
            assert client.rst_codes(sid) == [ErrorCodes.CANCEL]
            await ended.wait()
            await assert_prompt_hello(other)


# -- malformed frames ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (raw_frame(0x0, 0, 0, b"data"), ErrorCodes.PROTOCOL_ERROR),  # DATA on stream 0
        (raw_frame(0x0, 0, 1, b"x" * 16385), ErrorCodes.FRAME_SIZE_ERROR),  # > max frame
        (raw_frame(0x6, 0, 0, b"1234567"), ErrorCodes.FRAME_SIZE_ERROR),  # 7-byte PING
        (raw_frame(0x8, 0, 0, b"\0\0\0\0"), ErrorCodes.PROTOCOL_ERROR),  # WINDOW_UPDATE 0
        (raw_frame(0x3, 0, 0, b"\0\0\0\x08"), ErrorCodes.PROTOCOL_ERROR),  # RST on stream 0
    ],
    ids=["data-on-stream-0", "oversized-frame", "short-ping", "zero-window-update", "rst-0"],
)
async def test_malformed_frame_ends_the_connection(frame: bytes, code: int) -> None:
    gate = Gate()
    async with (
        running_server(make_app(gate)) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(2):
            await attacker.ping_round_trip()
            await attacker.send(frame)
            await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, code)


# -- request bodies ------------------------------------------------------------------


async def test_declared_body_over_the_limit_gets_413_and_the_connection_lives_on() -> None:
    gate = Gate()
    config = ServerConfig(max_request_body_size=1000)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate),
        RawH2.connect(server) as client,
    ):
        with trio.fail_after(2):
            sid = client.request("/upload", "POST", end_stream=False, **{"content-length": "5000"})
            await client.flush()
            status, _ = await client.response(sid)
            assert status == 413
            assert await client.get("/hello") == (200, HELLO)
            # A body within the limit is still accepted on this connection.
            sid = client.request("/upload", "POST", end_stream=False)
            client.conn.send_data(sid, b"y" * 1000, end_stream=True)
            await client.flush()
            assert await client.response(sid) == (200, b"1000")
            assert client.goaway() is None


async def test_streamed_body_over_the_limit_gets_413_and_the_connection_lives_on() -> None:
    gate = Gate()
    config = ServerConfig(max_request_body_size=1000)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate),
        RawH2.connect(server) as client,
    ):
        with trio.fail_after(2):
            sid = client.request("/upload", "POST", end_stream=False)
            for _ in range(6):
                client.conn.send_data(sid, b"z" * 500)
            client.conn.end_stream(sid)
            await client.flush()
            status, _ = await client.response(sid)
            assert status == 413
            assert await client.get("/hello") == (200, HELLO)
            assert client.goaway() is None


# -- malformed request heads ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [[("connection", "keep-alive")], [("te", "gzip")], [("x-bad", " padded")], [("host", "a.b")]],
    ids=["connection-header", "te-gzip", "surrounding-space", "host-mismatch"],
)
async def test_malformed_request_resets_only_its_stream(extra: list[tuple[str, str]]) -> None:
    # RFC 9113 §8.1.1: a malformed request is a stream error. h2 would end the whole
    # connection; netkit checks heads itself and resets just that stream.
    gate = Gate()
    async with (
        running_server(make_app(gate)) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as client,
    ):
        with trio.fail_after(2):
            await client.send(client.headers(1, extra=extra))
            reset = await client.until(lambda f: isinstance(f, RstStreamFrame))
            assert (reset.stream_id, reset.error_code) == (1, ErrorCodes.PROTOCOL_ERROR)
            await client.send(client.headers(3))
            await client.until(lambda f: f.stream_id == 3 and "END_STREAM" in f.flags)
            assert (client.statuses[3], bytes(client.bodies[3])) == (200, HELLO)
            await assert_prompt_hello(other)


async def test_flood_of_malformed_requests_ends_in_enhance_your_calm() -> None:
    gate = Gate()
    config = ServerConfig(h2_reset_burst=20, h2_reset_rate=1.0)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate) as other,
        FrameClient.connect(server) as attacker,
    ):
        with trio.fail_after(3):
            frames = [attacker.headers(sid, extra=[("te", "gzip")]) for sid in range(1, 200, 2)]
            await attacker.send(*frames)
            await attacker.read_until_closed()
            await assert_prompt_hello(other)
        assert_goaway(attacker, CALM)


async def test_bodies_read_whole_give_their_window_back() -> None:
    """A body that arrived whole is taken in one step (``read_body``'s fast path); its
    flow-control window must still be handed back, or a connection would stall after
    64 KiB of such bodies (the connection window with these settings). 40 bodies of
    8 KiB (5x that window), one by one."""
    gate = Gate()
    config = ServerConfig(max_concurrent_streams=2, h2_initial_window_size=16384)
    async with (
        running_server(make_app(gate), config) as server,
        bystander(server, gate),
        RawH2.connect(server) as client,
    ):
        with trio.fail_after(5):
            for i in range(40):
                sid = client.request("/upload", "POST", end_stream=False)
                client.conn.send_data(sid, bytes([i]) * 8192, end_stream=True)
                await client.flush()
                assert await client.response(sid) == (200, b"8192")
