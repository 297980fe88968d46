"""A stateful model of one HTTP/2 connection, run against netkit's server.

Hypothesis drives a client through random sequences of: open a stream (``GET /hello``
or ``POST /echo``), send body DATA, end the request, reset a stream, open windows, PING,
and read. The model tracks every stream and, after each step, checks that

* the connection is never ended (no GOAWAY; every budget is far above what a run uses);
* every completed GET got 200 and the hello body; every completed echo returned exactly
  the bytes sent, and only after the request was ended;
* a stream the client reset produces nothing once the server has seen the reset;
* the server resets no stream on its own and logs no error.

The machine is a ``netkit.testing.TrioStateMachine``: its rules are ``async`` and run in
the example's trio loop (guest mode, no thread; the invariant only reads the model and
the frames received, so it stays synchronous). The connection lives in an in-memory pair
(``memory_connection``) held open across rules with ``self.hold``. The clock is
``MockClock(autojump_threshold=0)``, frozen between rules by the runner; every timeout is
3,600 s and each step is bounded at 60 mock seconds, so no server timeout fires. Every
step ends with ``wait_all_tasks_blocked()`` (inside the step, and again by the runner):
the server has processed everything the client sent, which keeps runs deterministic.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import h2.connection
import h2.events
import trio
import trio.testing
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from netkit import ServerConfig
from netkit.examples.hello import app as hello_app
from netkit.http._h2 import H2Connection
from netkit.testing import Held, TrioStateMachine
from tests.helpers import RawH2, memory_connection

HELLO = b'{"message":"hello, world"}'
PATTERN = random.Random(20231010).randbytes(1 << 20)
CONFIG = ServerConfig(
    max_concurrent_streams=1000,
    h2_initial_window_size=65535,  # small, so request bodies run into flow control
    h2_reset_burst=10**6,
    h2_control_burst=10**6,
    request_head_timeout=3600,
    keep_alive_timeout=3600,
    write_timeout=3600,
)


class StreamModel:
    def __init__(self, sid: int, kind: str, client_ended: bool) -> None:
        self.sid = sid
        self.kind = kind  # "get" or "echo"
        self.sent = bytearray()
        #: Body bytes the client means to send but had no window for yet.
        self.backlog = 0
        self.client_ended = client_ended
        self.reset_marker: bytes | None = None
        self.status: int | None = None
        self.body = bytearray()
        self.done = False

    @property
    def reset(self) -> bool:
        return self.reset_marker is not None


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = f": {record.exc_info[1]!r}" if record.exc_info else ""
        self.records.append(record.getMessage() + exc)


async def settle() -> None:
    """Wait until the server (and everyone else) has done all it can."""
    await trio.testing.wait_all_tasks_blocked()


class H2ConnectionMachine(TrioStateMachine):
    #: A step that waits this long has hung (every server timeout is 3,600 s).
    step_timeout = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.errors = _Errors()
        logging.getLogger("netkit.server").addHandler(self.errors)
        self.streams: dict[int, StreamModel] = {}
        self.seen_events = 0
        self.pings = 0
        #: Index in ``client.frames`` of each PING ACK (by opaque data), of the last
        #: HEADERS/DATA frame of each stream, and of the first frame not checked yet.
        self.ping_acks: dict[bytes, int] = {}
        self.last_frame: dict[int, int] = {}
        self.seen_frames = 0
        self.connection: Held[trio.testing.MemoryStapledStream] | None = None
        self.client: RawH2
        try:
            self.run(self._connect)
        except BaseException:
            self.teardown()
            raise

    async def _connect(self) -> None:
        self.connection = await self.hold(memory_connection(hello_app, CONFIG, protocol="h2"))
        self.client = RawH2(self.connection.value)
        self.client.conn.initiate_connection()
        await self.client.flush()
        await self._read()

    async def cleanup(self) -> None:
        if self.connection is None:
            return
        try:
            if not self.client.closed:
                await self._finish()
        finally:
            await self.connection.close()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            logging.getLogger("netkit.server").removeHandler(self.errors)

    # -- model queries -------------------------------------------------------------------
    def _sendable(self) -> list[int]:
        return sorted(
            s.sid
            for s in self.streams.values()
            if s.kind == "echo" and not s.client_ended and not s.reset
        )

    def _resettable(self) -> list[int]:
        return sorted(s.sid for s in self.streams.values() if not s.reset and not s.done)

    # -- async steps, run in the example's trio loop -----------------------------------------
    async def _flush_and_settle(self) -> None:
        await self.client.flush()
        await settle()

    async def _open(self, kind: str, reset_at_once: bool) -> None:
        if kind == "get":
            sid = self.client.request("/hello")
        else:
            sid = self.client.request("/echo", "POST", end_stream=False)
        self.streams[sid] = StreamModel(sid, kind, client_ended=kind == "get")
        if reset_at_once:
            # HEADERS and RST_STREAM in one read: the handler must produce nothing.
            self._reset(sid)
        await self._flush_and_settle()

    def _reset(self, sid: int) -> None:
        # The PING right before the RST_STREAM marks the point in the server's output
        # after which nothing may appear on this stream (the server is idle when we
        # send: all it sent before the ACK was produced before it saw the reset).
        self.pings += 1
        marker = b"rst" + self.pings.to_bytes(5, "big")
        self.client.conn.ping(marker)
        self.client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        self.streams[sid].reset_marker = marker

    async def _send_data(self, sid: int, size: int) -> None:
        self.streams[sid].backlog += size
        self._pump(sid)
        await self._flush_and_settle()

    def _pump(self, sid: int) -> int:
        """Send as much of the stream's backlog as the windows allow; returns bytes sent."""
        stream = self.streams[sid]
        conn = self.client.conn
        sent = 0
        while stream.backlog:
            window = conn.local_flow_control_window(sid)
            chunk = min(stream.backlog, window, conn.max_outbound_frame_size)
            if chunk <= 0:
                break
            start = (sid * 7919 + len(stream.sent)) % (len(PATTERN) - 70_000)
            data = PATTERN[start : start + chunk]
            conn.send_data(sid, data)
            stream.sent += data
            stream.backlog -= chunk
            sent += chunk
        return sent

    async def _end(self, sid: int) -> None:
        self.client.conn.end_stream(sid)
        self.streams[sid].client_ended = True
        await self._flush_and_settle()

    async def _reset_now(self, sid: int) -> None:
        await settle()
        self._reset(sid)
        await self._flush_and_settle()

    async def _window_update(self, sid: int | None, increment: int) -> None:
        self.client.conn.increment_flow_control_window(increment, stream_id=sid)
        await self._flush_and_settle()

    async def _ping(self) -> None:
        self.pings += 1
        self.client.conn.ping(b"png" + self.pings.to_bytes(5, "big"))
        await self._flush_and_settle()

    async def _read(self) -> None:
        """Read (and acknowledge) everything the server has sent, and whatever that frees."""

        async def reader() -> None:
            while not self.client.closed:
                await self.client.receive()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await settle()
            nursery.cancel_scope.cancel()
        self._absorb()

    def _absorb(self) -> None:
        for event in self.client.events[self.seen_events :]:
            sid = getattr(event, "stream_id", None)
            stream = self.streams.get(sid) if sid else None
            if isinstance(event, h2.events.ConnectionTerminated):
                raise AssertionError(f"connection ended: {event}")
            if isinstance(event, h2.events.StreamReset):
                raise AssertionError(f"server reset stream {sid} on its own: {event}")
            if stream is None:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                stream.status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                stream.body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                stream.done = True
                if stream.kind == "get":
                    assert (stream.status, bytes(stream.body)) == (200, HELLO), sid
                else:
                    assert stream.client_ended, f"echo {sid} answered before its request ended"
                    assert stream.status == 200, (sid, stream.status)
                    assert bytes(stream.body) == bytes(stream.sent), (
                        f"echo {sid}: sent {len(stream.sent)} bytes, got {len(stream.body)}"
                    )
        self.seen_events = len(self.client.events)

    async def _finish(self) -> None:
        """Send every backlog and end every request, then read every response.

        Each round reads (which acknowledges data and lets the server reopen windows),
        so every round must make progress, or flow control has stalled.
        """
        while True:
            before = (len(self.client.events), sum(len(s.sent) for s in self.streams.values()))
            for sid in self._sendable():
                self._pump(sid)
                if not self.streams[sid].backlog:
                    self.client.conn.end_stream(sid)
                    self.streams[sid].client_ended = True
            await self._flush_and_settle()
            await self._read()
            self._check()
            pending = [s.sid for s in self.streams.values() if not s.reset and not s.done]
            if not pending:
                return
            after = (len(self.client.events), sum(len(s.sent) for s in self.streams.values()))
            assert after != before, f"streams {pending} stalled"

    def _check(self) -> None:
        assert not self.client.closed, "server closed the connection"
        assert not self.errors.records, f"server logged errors: {self.errors.records}"
        reset_by_us = {s.sid for s in self.streams.values() if s.reset}
        frames = self.client.frames
        for index in range(self.seen_frames, len(frames)):
            frame = frames[index]
            assert not isinstance(frame, GoAwayFrame), f"server sent {frame}"
            if isinstance(frame, RstStreamFrame):
                assert frame.stream_id in reset_by_us, (
                    f"server reset stream {frame.stream_id} (code {frame.error_code})"
                )
            elif isinstance(frame, PingFrame) and "ACK" in frame.flags:
                self.ping_acks[frame.opaque_data] = index
            elif isinstance(frame, HeadersFrame | DataFrame):
                self.last_frame[frame.stream_id] = index
        self.seen_frames = len(frames)
        for stream in self.streams.values():
            ack = self.ping_acks.get(stream.reset_marker) if stream.reset_marker else None
            if ack is not None:
                assert self.last_frame.get(stream.sid, -1) < ack, (
                    f"stream {stream.sid} answered after its reset"
                )

    # -- rules -------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(["get", "echo"]), reset_at_once=st.sampled_from([False] * 3 + [True])
    )
    async def open_stream(self, kind: str, reset_at_once: bool) -> None:
        await self._open(kind, reset_at_once)

    @precondition(lambda self: self._sendable())
    @rule(
        data=st.data(),
        size=st.sampled_from([1, 16384, 16385, 65535, 65536, 200_000]) | st.integers(1, 200_000),
    )
    async def send_data(self, data: st.DataObject, size: int) -> None:
        sid = data.draw(st.sampled_from(self._sendable()), label="stream")
        await self._send_data(sid, size)

    @precondition(lambda self: self._sendable())
    @rule(data=st.data())
    async def end_request(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self._sendable()), label="stream")
        await self._end(sid)

    @precondition(lambda self: self._resettable())
    @rule(data=st.data())
    async def reset_stream(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self._resettable()), label="stream")
        await self._reset_now(sid)

    @rule(data=st.data(), increment=st.integers(1, 65535), on_stream=st.booleans())
    async def window_update(self, data: st.DataObject, increment: int, on_stream: bool) -> None:
        sid = None
        if on_stream and self._resettable():
            sid = data.draw(st.sampled_from(self._resettable()), label="stream")
        await self._window_update(sid, increment)

    @rule()
    async def ping(self) -> None:
        await self._ping()

    @rule()
    async def read(self) -> None:
        await self._read()

    @invariant()
    def connection_is_healthy(self) -> None:
        self._check()


H2ConnectionMachine.TestCase.settings = settings(stateful_step_count=100)
TestH2ConnectionMachine = H2ConnectionMachine.TestCase


# -- connection lifecycle sequences the machine does not generate, as plain tests -----


async def _open_client(stream: trio.abc.Stream) -> RawH2:
    client = RawH2(stream)
    client.conn.initiate_connection()
    await client.flush()
    return client


async def test_reset_of_a_stream_the_server_just_finished_is_harmless() -> None:
    # RFC 9113 5.1: RST_STREAM "can be received in this state [closed] for a short
    # period after a DATA or HEADERS frame containing an END_STREAM flag is sent".
    # The client resets stream 1 before reading its (already sent) response, after
    # opening stream 3, which makes h2 drop stream 1 from its table. (The machine can
    # produce this too; kept as a fixed case since it depends on h2's bookkeeping.)
    async with memory_connection(hello_app, CONFIG, protocol="h2") as stream:
        client = await _open_client(stream)
        with trio.fail_after(5):
            first = client.request("/hello")
            await client.flush()
            await settle()
            second = client.request("/hello")
            await client.flush()
            await settle()
            client.conn.reset_stream(first, ErrorCodes.CANCEL)
            await client.flush()
            await settle()
            assert await client.response(second) == (200, HELLO)
            assert client.goaway() is None
            assert await client.get("/hello") == (200, HELLO)


async def test_client_goaway_lets_in_flight_streams_finish() -> None:
    # A client's graceful GOAWAY (NO_ERROR) only says it will open no more streams: the
    # server must still answer the ones in flight (RFC 9113 6.8).
    started, release = trio.Event(), trio.Event()

    async def slow(stream: Any) -> None:
        started.set()
        await release.wait()
        await stream.respond(200, [], b"finished")

    errors = _Errors()
    logging.getLogger("netkit.server").addHandler(errors)
    try:
        async with memory_connection(slow, CONFIG, protocol="h2") as stream:
            client = await _open_client(stream)
            with trio.fail_after(5):
                sid = client.request("/slow")
                await client.flush()
                await started.wait()
                client.conn.close_connection(error_code=ErrorCodes.NO_ERROR)
                await client.flush()
                await settle()
                # h2's client state machine is closed now; read on regardless.
                client.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                release.set()
                assert await client.response(sid) == (200, b"finished")
    finally:
        logging.getLogger("netkit.server").removeHandler(errors)
    assert not errors.records, errors.records


class GatedSendStream(trio.abc.SendStream):
    """A send side that holds each write until ``gate`` opens, like a full TCP window.

    A write cancelled while held never reaches the peer, as with a real socket.
    """

    def __init__(self, inner: trio.abc.SendStream) -> None:
        self.inner = inner
        self.gate = trio.Event()
        self.gate.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.gate.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.gate.wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_last_response_before_the_connection_ends_is_not_cut_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Graceful drain: the last response is handed to the writer, whose write waits for
    # a client that reads half a second later (its TCP window is full). The connection
    # gives the last writes up to 1 s; it must not cancel the one already in progress.
    started, release = trio.Event(), trio.Event()

    async def slow(stream: Any) -> None:
        started.set()
        await release.wait()
        await stream.send_headers(204, end_stream=True)

    to_server, server_reads = trio.testing.memory_stream_one_way_pair()
    server_writes, from_server = trio.testing.memory_stream_one_way_pair()
    gated = GatedSendStream(server_writes)
    server_side = trio.StapledStream(gated, server_reads)
    conn = H2Connection(server_side, slow, CONFIG, scheme="http")
    client = RawH2(trio.StapledStream(to_server, from_server))
    done = trio.Event()

    async def run_server() -> None:
        try:
            await conn.run()
        finally:
            await trio.aclose_forcefully(server_side)
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_server)
        client.conn.initiate_connection()
        await client.flush()
        with trio.fail_after(5):
            sid = client.request("/slow")
            await client.flush()
            await started.wait()
            conn.start_drain()
            goaway = await client.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert goaway.error_code == ErrorCodes.NO_ERROR
            gated.gate = trio.Event()  # the client's window fills up ...
            release.set()
            await trio.sleep(0.5)
            gated.gate.set()  # ... and it reads again half a second later
            await client.read_until_closed()
            await done.wait()
        statuses = [
            dict(e.headers)[b":status"]
            for e in client.events
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
        ]
        assert statuses == [b"204"], "the last response was cut off"
