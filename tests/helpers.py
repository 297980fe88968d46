"""Test machinery: a loopback server in a nursery, a raw HTTP/2 client, in-memory drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio
import trio.testing
from hyperframe.frame import Frame, RstStreamFrame

from netkit import App, HTTPStream, Server, ServerConfig, serve
from netkit.examples.hello import app as hello_app
from netkit.http._h2 import PREFACE, H2Connection
from netkit.http._h11 import H11Connection
from netkit.http._stream import Handler


@asynccontextmanager
async def running_server(
    handler: Handler | None = None, config: ServerConfig | None = None, **kwargs: Any
) -> AsyncIterator[Server]:
    """Serve ``handler`` (default: the hello app) on 127.0.0.1:0 for the block's duration."""
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            lambda task_status: serve(
                handler or hello_app,
                "127.0.0.1",
                0,
                config=config,
                task_status=task_status,
                **kwargs,
            )
        )
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def url(server: Server, path: str = "/hello", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


class RawH2:
    """A hand-driven HTTP/2 client over a trio stream, for attacks and edge cases.

    It does what we tell it and nothing more (no automatic flow-control updates), so a
    test can hold windows shut, reset streams, or write raw frames with ``send_raw``.
    """

    def __init__(self, stream: trio.abc.Stream, **config: Any) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None, **config)
        )
        self.events: list[h2.events.Event] = []
        self.closed = False
        #: Every frame received, parsed independently of h2's state machine, so tests can
        #: see frames h2 would swallow (e.g. RST_STREAM for a stream it never opened).
        self.frames: list[Frame] = []
        self._frame_buffer = b""
        #: Hand received DATA's window back as soon as it arrives (like a real client).
        #: Set False to hold windows shut and acknowledge by hand.
        self.auto_ack = True

    @classmethod
    @asynccontextmanager
    async def connect(cls, server: Server, **config: Any) -> AsyncIterator[RawH2]:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        client = cls(stream, **config)
        try:
            client.conn.initiate_connection()
            await client.flush()
            yield client
        finally:
            await trio.aclose_forcefully(stream)

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> list[h2.events.Event]:
        """Read once; returns the new events ([] and ``closed`` set on EOF).

        Callers bound waits with ``trio.fail_after`` / ``move_on_after``.
        """
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
        if any(isinstance(e, h2.events.ConnectionTerminated) and not e.error_code for e in events):
            # h2's state machine closes on any GOAWAY, even a graceful one, and would then
            # reject the in-flight streams' frames. Keep reading, as nghttp2 clients do.
            self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        if self.auto_ack:
            for event in events:
                if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
        await self.flush()
        return events

    def _log_frames(self, data: bytes) -> None:
        buf = self._frame_buffer + data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            self.frames.append(frame)
            buf = buf[9 + length :]
        self._frame_buffer = buf

    def rst_codes(self, stream_id: int) -> list[int]:
        """Error codes of every RST_STREAM received for ``stream_id``."""
        return [
            f.error_code
            for f in self.frames
            if isinstance(f, RstStreamFrame) and f.stream_id == stream_id
        ]

    async def until(self, predicate: Any) -> h2.events.Event:
        """Read until an event satisfying ``predicate`` arrives (AssertionError on EOF)."""
        for event in self.events:
            if predicate(event):
                return event
        while True:
            for event in await self.receive():
                if predicate(event):
                    return event
            if self.closed:
                raise AssertionError(f"connection closed; events: {self.events}")

    async def read_until_closed(self) -> None:
        """Read (and process) everything until the server closes the connection."""
        while not self.closed:
            await self.receive()

    def request(
        self, path: str = "/hello", method: str = "GET", end_stream: bool = True, **extra: str
    ) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", "localhost"),
            *extra.items(),
        ]
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        return sid

    async def get(self, path: str = "/hello") -> tuple[int, bytes]:
        """A complete GET: returns (status, body); bounded by a 5 s trio deadline."""
        sid = self.request(path)
        await self.flush()
        return await self.response(sid)

    async def response(self, sid: int) -> tuple[int, bytes]:
        """Collect stream ``sid``'s response (status, body), acknowledging its data."""
        status = 0
        body = bytearray()
        with trio.fail_after(5):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if getattr(event, "stream_id", None) != sid:
                        continue
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        if not self.auto_ack:
                            self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    elif isinstance(event, h2.events.StreamEnded):
                        await self.flush()
                        return status, bytes(body)
                    elif isinstance(event, h2.events.StreamReset):
                        raise AssertionError(f"stream {sid} reset: {event.error_code}")
                seen = len(self.events)
                await self.flush()  # the acknowledgements above, before waiting for more
                await self.receive()
                if self.closed:
                    raise AssertionError(f"connection closed before stream {sid} ended")

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None


@asynccontextmanager
async def memory_connection(
    handler: Handler, config: ServerConfig | None = None, protocol: str = "h1"
) -> AsyncIterator[trio.testing.MemoryStapledStream]:
    """Run one server connection over an in-memory stream pair; yields the client side.

    With ``autojump_clock`` these drive timeouts deterministically (no real sockets).
    """
    client, server_side = trio.testing.memory_stream_pair()
    config = config or ServerConfig()
    async with trio.open_nursery() as nursery:
        if protocol == "h2":
            conn: Any = H2Connection(server_side, handler, config, scheme="http")
        else:
            conn = H11Connection(server_side, handler, config, scheme="http")

        async def run() -> None:
            try:
                await conn.run()
            finally:
                await trio.aclose_forcefully(server_side)

        nursery.start_soon(run)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()


async def read_until_closed(stream: trio.abc.ReceiveStream, limit: int = 1 << 20) -> bytes:
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


__all__ = [
    "PREFACE",
    "App",
    "HTTPStream",
    "RawH2",
    "memory_connection",
    "read_until_closed",
    "running_server",
    "url",
]
