"""One WebSocket connection on the server: wsproto's frame layer driven by trio tasks.

Theory of operation
-------------------
The same code runs on both transports: it only sees the byte stream that
``HTTPStream.accept_tunnel`` returned (the HTTP/1.1 connection after 101, or the HTTP/2
CONNECT stream).

**Frames.** Incoming bytes are cut into frames by :mod:`netkit.wire.ws_frames`. A
complete, masked, unfragmented text or binary frame without reserved bits (the common
case) is unmasked and decoded right here; every other frame (fragments, control frames,
compressed messages) is handed, whole, to wsproto's frame-level ``Connection``, which
stays the authority for all of them and for every protocol error. The first frame that
is not well formed (unmasked, unknown opcode, non-minimal length, over
``max_frame_size``) switches the session to wsproto for good, which then fails the
connection with the right code. Text that is not valid UTF-8 takes the same route (1007).
Outgoing messages are encoded here too unless an extension (permessage-deflate) was
negotiated, in which case wsproto encodes them.

**Who reads.** Reading costs a task switch per message when one task reads and another
handles, so the handler reads for itself: ``receive()`` on an empty inbox reads the
stream in the handler's own task. The **reader** task exists for the times the handler
is not waiting in ``receive()``: once the handler has stayed away for ``_HANDOFF``
seconds (it is busy, or it never receives), the reader reads, answers pings, and queues
complete messages in the *inbox* (a bounded deque). When the inbox is full it stops
reading: TCP or HTTP/2 flow control then push back on the peer (see docs/websocket.md,
"Backpressure", for the trade-off with pings). As soon as it hands a message to a
handler waiting in ``receive()``, reading goes back to the handler. Only one task reads
at a time (``_reading``). Pongs to the peer's pings go through the *control* queue and
the writer, so a handler reading for itself never writes (nor is interrupted while
writing) on its way through ``receive()``.

The other tasks, in the session's nursery:

* the **heartbeat** (when ``ping_interval`` is set): one long-lived task that pings and
  fails the connection with 1011 when no pong comes back within ``ping_timeout``. Time
  the reader spent paused by our own backpressure does not count against the peer;
* the **writer**, which drains the control queue and the *outbox* (``send_nowait`` and
  the pub/sub hub) in batches: everything queued when it wakes leaves in one write;
* the **handler**, the application's coroutine.

Writes are serialised by a flag and a parking lot (cheaper than a lock on the hot path);
frames are encoded under it, so with permessage-deflate the compressor's context sees
messages in the order they go out. ``send`` writes from the caller's task: an echo costs
no task switch at all.

Ending: whoever ends the session calls ``_finish``; the runner then cancels what is
left, the handler included, and closes the byte stream. A close we start waits
``close_timeout`` for the peer's answer; a failure (1002, 1007, 1009, 1011, 1013) sends its
close frame, half-closes the stream so that peers waiting for the server to close see
EOF, and discards input until EOF or ``close_timeout``. ``going_away`` (server shutdown)
closes with 1001 and waits for the peer's answer like any close we start.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError as WsprotoLocalError

from ..http import Request, Server, current_server
from ..http._tunnel import ConnectionTunnel, ReceiveInterrupted
from ..wire.ws_frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    encode_frame,
    parse_header,
)
from ._accel import unmask
from ._config import WebSocketConfig
from ._errors import WebSocketClosed
from ._extensions import FrameLimits
from ._handshake import Handshake

log = logging.getLogger("netkit.ws")

_READ_SIZE = 64 * 1024
#: How long the handler may stay out of ``receive()`` before the reader task reads for
#: it (answering pings, seeing the peer's close, queueing messages).
_HANDOFF = 0.02
#: The writer stops adding queued messages to one write past this many bytes.
_BATCH = 256 * 1024
#: Pongs waiting for the writer: at this many, reading stops until the writer has sent
#: them, so a peer that pings without reading cannot grow the queue (one pong per ping,
#: never coalesced).
_MAX_PENDING_PONGS = 64

WebSocketHandler = Callable[["WebSocket"], Awaitable[None]]
"""What an endpoint runs once per connection: ``async def handler(ws) -> None``."""


class Overflow(enum.Enum):
    """What ``send_nowait`` does when the outbox is full."""

    #: Drop the oldest queued message (``WebSocket.dropped`` counts them).
    DROP_OLDEST = "drop_oldest"
    #: Close the connection with 1013 (Try Again Later).
    CLOSE = "close"


class WebSocket:
    """One WebSocket connection, the same whatever the transport.

    ``receive`` / ``async for`` give text messages as ``str`` and binary ones as
    ``bytes``; ``send`` waits for the transport (backpressure), ``send_nowait`` queues
    (bounded by ``send_queue_size``). Once the connection is closed, ``receive`` and
    ``send`` raise :class:`WebSocketClosed` (``async for`` just ends) and ``closed``
    holds the code and reason. The handler's task is cancelled once the connection has
    closed, so a handler waiting on something else does not outlive it. When the server
    shuts down, the connection is closed with 1001 (Going Away).
    """

    def __init__(
        self,
        tunnel: trio.abc.Stream,
        *,
        request: Request,
        principal: Any,
        handshake: Handshake,
        config: WebSocketConfig,
    ) -> None:
        self.request = request
        #: What the endpoint's authenticator returned (None without one).
        self.principal = principal
        self.subprotocol = handshake.subprotocol
        self.config = config
        #: True when permessage-deflate was negotiated.
        self.compressed = bool(handshake.extensions)
        #: Messages dropped from the outbox under ``Overflow.DROP_OLDEST``.
        self.dropped = 0
        #: Whole messages handed to the handler, and to the transport (metrics).
        self.messages_received = 0
        self.messages_sent = 0
        #: Set once the connection is closed (or closing): how it ended.
        self.closed: WebSocketClosed | None = None
        self._tunnel = tunnel
        limits = FrameLimits(config.max_frame_size, config.max_message_size)
        self._ws = Connection(ConnectionType.SERVER, extensions=[limits, *handshake.extensions])
        # Reading: the frame splitter's state (see "Frames" above).
        self._rx = bytearray()
        #: Bytes still missing from a partial frame (0 if none).
        self._need = 0
        #: How much to read at least: the last complete frame's size when it was large,
        #: so that a stream of large messages costs one read each, not two.
        self._hint = _READ_SIZE
        #: Frames of up to 125 bytes are within both limits (the usual case).
        self._small_frames_ok = min(config.max_frame_size, config.max_message_size) >= 125
        self._slow = False
        self._fragmented = False
        self._parts: list[Any] = []
        self._parser_dead = False
        # Reading: who reads (see "Who reads" above).
        self._reading = False
        self._read_free: trio.Event | None = None
        self._in_receive = 0
        self._receives = 0
        self._left: trio.Event | None = None
        self._read_scope: trio.CancelScope | None = None
        self._handler_reading = False
        self._interruptible = (
            tunnel if isinstance(tunnel, ConnectionTunnel) and tunnel.interruptible else None
        )
        self._inbox: deque[str | bytes] = deque()
        self._inbox_wake: trio.Event | None = None
        self._reader_wake: trio.Event | None = None
        self._paused_since_ping = False
        # Writing.
        self._encode_here = not handshake.extensions
        self._control: deque[bytes] = deque()
        self._control_wake: trio.Event | None = None
        #: Complete frames left in ``_rx`` by the pong bound: the next read takes them first.
        self._held = False
        self._outbox: deque[str | bytes] = deque()
        self._outbox_wake = trio.Event()
        self._overflowed = False
        self._writing = False
        self._write_lot = trio.lowlevel.ParkingLot()
        self._close_sent = False
        self._pong: trio.Event | None = None
        self._ping_payload = b""
        self._finished = trio.Event()
        #: Set when a close frame went out (or the connection ended): starts the watchdog.
        self._closing = trio.Event()

    # -- the handler's API ----------------------------------------------------------
    async def receive(self) -> str | bytes:
        """The next message; raises WebSocketClosed once the connection is closed."""
        inbox = self._inbox
        if inbox:
            await trio.lowlevel.checkpoint()
        else:
            self._in_receive += 1
            self._receives += 1
            try:
                while not inbox:
                    if self.closed is not None:
                        raise self.closed
                    if self._reading:  # the reader task holds the stream: it delivers
                        self._inbox_wake = trio.Event()
                        await self._inbox_wake.wait()
                    elif len(self._control) >= _MAX_PENDING_PONGS:
                        await self._pongs_sent()
                    else:
                        await self._read(in_handler=True)
            finally:
                self._in_receive -= 1
                if self._left is not None:
                    self._left.set()
                    self._left = None
        message = inbox.popleft()
        self.messages_received += 1
        if self._reader_wake is not None:
            self._reader_wake.set()
        return message

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def send(self, message: str | bytes) -> None:
        """Send one message, waiting until the transport has taken it."""
        if self._close_sent or self.closed is not None:
            raise self.closed or WebSocketClosed(1006)
        await self._acquire()
        try:
            if self._ws.state is not ConnectionState.OPEN:
                raise self.closed or WebSocketClosed(1006)
            await self._write(self._encode(message))
            self.messages_sent += 1
        finally:
            self._release()

    def send_nowait(self, message: str | bytes, overflow: Overflow = Overflow.CLOSE) -> bool:
        """Queue one message for the writer; never blocks.

        Returns False when the message was not queued (the connection is closing, or the
        outbox was full and ``overflow`` is CLOSE, which closes the connection with 1013).
        Under DROP_OLDEST the oldest queued message makes room and ``dropped`` grows.
        """
        if self._close_sent or self.closed is not None or self._overflowed:
            return False
        if len(self._outbox) >= self.config.send_queue_size:
            if overflow is Overflow.CLOSE:
                self._overflowed = True
                self._outbox_wake.set()
                return False
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append(message)
        self._outbox_wake.set()
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (``close_timeout``) for it to finish."""
        if not self._close_sent and self.closed is None:
            await self._send_close(code, reason)
        await self._finished.wait()  # bounded by the close watchdog

    # -- writing ------------------------------------------------------------------------
    def _encode(self, message: str | bytes) -> bytes:
        if self._encode_here:
            if isinstance(message, str):
                return encode_frame(OP_TEXT, message.encode())
            return encode_frame(OP_BINARY, message)
        if isinstance(message, str):
            return self._ws.send(TextMessage(data=message))
        return self._ws.send(BytesMessage(data=message))

    async def _acquire(self) -> None:
        while self._writing:
            await self._write_lot.park()
        self._writing = True

    def _release(self) -> None:
        self._writing = False
        if self._write_lot:
            self._write_lot.unpark()

    async def _send_event(self, event: Event) -> None:
        await self._acquire()
        try:
            if self._ws.state is not ConnectionState.OPEN and not isinstance(
                event, CloseConnection
            ):
                raise self.closed or WebSocketClosed(1006)
            await self._write(self._ws.send(event))
        finally:
            self._release()

    async def _write(self, data: bytes) -> None:
        try:
            await self._tunnel.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._finish(1006, "connection lost")
            raise self.closed or WebSocketClosed(1006) from exc

    async def _send_close(self, code: int, reason: str = "") -> None:
        """Send our close frame once (whatever happens to the write)."""
        if self._close_sent:
            return
        self._close_sent = True
        self._closing.set()
        if self.closed is None:
            self.closed = WebSocketClosed(code, reason)
        self._wake_receiver()
        self._wake_reader()
        try:
            await self._send_event(CloseConnection(code=code, reason=reason))
        except (WebSocketClosed, WsprotoLocalError):
            return  # the connection is gone, or already closed on wsproto's side
        finally:
            self._stop_handler_read()

    def _stop_handler_read(self) -> None:
        if self._read_scope is not None:
            self._read_scope.cancel()
        elif self._handler_reading and self._interruptible is not None:
            self._interruptible.interrupt_receive()

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): close frame, half-close, then linger."""
        await self._send_close(code, reason)
        try:
            if isinstance(self._tunnel, trio.abc.HalfCloseableStream):
                await self._tunnel.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._finish(code, reason)
        else:
            await trio.lowlevel.checkpoint()

    async def _writer(self) -> None:
        outbox = self._outbox
        control = self._control
        while True:
            if not outbox and not control and not self._overflowed:
                self._outbox_wake = trio.Event()
                await self._outbox_wake.wait()
                continue
            if self._overflowed:
                outbox.clear()
                await self._fail(1013, "send queue full")
                return
            await self._acquire()
            try:
                if self._ws.state is not ConnectionState.OPEN:
                    outbox.clear()
                    control.clear()
                    return
                data = bytearray()
                while control:
                    data += control.popleft()
                while outbox and len(data) < _BATCH:
                    data += self._encode(outbox.popleft())
                    self.messages_sent += 1
                try:
                    await self._write(bytes(data))
                except WebSocketClosed:
                    return
            finally:
                self._release()
                self._wake_pong_waiters()

    # -- reading --------------------------------------------------------------------
    def _wake_receiver(self) -> None:
        if self._inbox_wake is not None:
            self._inbox_wake.set()

    def _wake_reader(self) -> None:
        if self._left is not None:
            self._left.set()
        if self._reader_wake is not None:
            self._reader_wake.set()
        self._wake_pong_waiters()

    def _wake_pong_waiters(self) -> None:
        if self._control_wake is not None:
            self._control_wake.set()
            self._control_wake = None

    async def _pongs_sent(self) -> None:
        """Wait until the writer has taken the queued pongs (or the connection closes)."""
        while len(self._control) >= _MAX_PENDING_PONGS and not self._close_sent:
            if self._control_wake is None:
                self._control_wake = trio.Event()
            await self._control_wake.wait()

    async def _read(self, *, in_handler: bool) -> None:
        """Read once and act on what came; only one task reads at a time."""
        data: bytes | bytearray
        if self._held:  # complete frames the pong bound left buffered: those first
            self._held = False
            await trio.lowlevel.checkpoint()
            data = b""
        else:
            self._reading = True
            try:
                if not in_handler:
                    data = await self._tunnel.receive_some(max(self._need, self._hint))
                elif self._interruptible is not None:
                    # Interrupted once our close frame is out, so that the handler sees
                    # the close at once and the reader task takes over the lingering reads.
                    self._handler_reading = True
                    try:
                        data = await self._tunnel.receive_some(max(self._need, self._hint))
                    except ReceiveInterrupted:
                        return
                    finally:
                        self._handler_reading = False
                else:  # the same with a cancel scope, for other transports
                    maybe: bytes | bytearray | None = None
                    with trio.CancelScope() as self._read_scope:
                        maybe = await self._tunnel.receive_some(max(self._need, self._hint))
                    self._read_scope = None
                    if maybe is None:
                        return
                    data = maybe
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            finally:
                self._reading = False
                if self._read_free is not None:
                    self._read_free.set()
                    self._read_free = None
            if not data:
                self._finish(1006, "connection dropped without a close frame")
                return
        close = self._feed(data)
        if self._control:
            self._outbox_wake.set()  # pongs for the writer
        if close is not None:
            if in_handler:
                # Not to be interrupted half-written by the handler's own cancel scopes;
                # bounded all the same.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.config.close_timeout
                    await self._on_close(close)
            else:
                await self._on_close(close)

    def _feed(self, data: bytes | bytearray) -> CloseConnection | None:
        """Cut ``data`` into frames; plain data frames are decoded here, the rest by wsproto.

        Complete messages go to the inbox. Returns the close event (the peer's, or
        wsproto's verdict on a protocol error) when one came.
        """
        if self._parser_dead:
            return None  # lingering after a failure: discard until EOF
        if self._slow:
            return self._feed_wsproto(data)
        rx = self._rx
        buf: bytes | bytearray
        if rx:
            rx += data
            buf = rx
        else:
            buf = data
        inbox = self._inbox
        queued = len(inbox)
        close = None
        message: str | bytes
        pos, end = 0, len(buf)
        view = memoryview(buf)
        small = self._small_frames_ok
        try:
            while pos < end:
                # The commonest frame of all, checked on its first two bytes: FIN, no RSV,
                # text or binary, masked, a 7-bit length. Anything else: the general path.
                b0 = buf[pos]
                if (
                    (b0 == 0x81 or b0 == 0x82)
                    and small
                    and not self._fragmented
                    and end - pos >= 6
                    and 0x80 <= buf[pos + 1] < 0xFE
                ):
                    start = pos
                    pos += 6 + (buf[pos + 1] & 0x7F)
                    if pos <= end:
                        payload = unmask(view[start + 6 : pos], bytes(view[start + 2 : start + 6]))
                        if b0 == 0x82:
                            message = payload
                        else:
                            try:
                                message = payload.decode("utf-8")
                            except UnicodeDecodeError:  # wsproto closes with 1007
                                close = self._feed_wsproto_for_good(bytes(view[start:]))
                                pos = end
                                break
                        if not self._close_sent:
                            inbox.append(message)
                        continue
                    pos = start  # incomplete: the general path below says what is missing
                header = parse_header(buf, pos)
                if header is None:
                    self._need = 14
                    break
                if not header.plain or header.length > self.config.max_frame_size:
                    close = self._feed_wsproto_for_good(bytes(view[pos:]))
                    pos = end
                    break
                start, pos = pos, pos + header.size + header.length
                if pos > end:
                    self._need, pos = pos - end, start
                    break
                self._hint = max(_READ_SIZE, pos - start + 64)
                opcode = header.opcode
                if (
                    header.fin
                    and not header.rsv
                    and not self._fragmented
                    and opcode in (OP_TEXT, OP_BINARY)
                    and header.length <= self.config.max_message_size
                ):
                    assert header.mask is not None  # header.plain
                    payload = unmask(view[start + header.size : pos], header.mask)
                    if opcode == OP_TEXT:
                        try:
                            message = payload.decode("utf-8")
                        except UnicodeDecodeError:  # wsproto closes with 1007
                            close = self._feed_wsproto_for_good(bytes(view[start:]))
                            pos = end
                            break
                    else:
                        message = payload
                    if not self._close_sent:
                        inbox.append(message)
                    continue
                if opcode < OP_CLOSE:
                    self._fragmented = not header.fin
                close = self._feed_wsproto(bytes(view[start:pos]))
                if close is not None:
                    pos = end  # nothing after a close frame (or a failure) counts
                    break
                if len(self._control) >= _MAX_PENDING_PONGS and pos < end:
                    # Enough pongs queued: the rest waits in _rx until the writer sent them.
                    self._held = True
                    self._need = 0
                    break
            else:
                self._need = 0
        finally:
            view.release()
        if pos >= end:
            rx.clear()
        elif buf is rx:
            del rx[:pos]
        else:
            self._rx = bytearray(memoryview(data)[pos:])
        if len(inbox) > queued:
            self._wake_receiver()
        return close

    def _feed_wsproto_for_good(self, data: bytes) -> CloseConnection | None:
        self._slow = True
        self._rx = bytearray()
        return self._feed_wsproto(data)

    def _feed_wsproto(self, data: bytes | bytearray) -> CloseConnection | None:
        ws = self._ws
        ws.receive_data(data)  # type: ignore[arg-type]  # bytes-like is fine
        inbox = self._inbox
        queued = len(inbox)
        close = None
        for event in ws.events():
            if isinstance(event, Message):
                if self._close_sent:
                    continue  # we are closing: the handler will not see more
                if event.message_finished and not self._parts:
                    inbox.append(event.data)
                else:
                    self._parts.append(event.data)
                    if not event.message_finished:
                        continue
                    joined = "" if isinstance(event, TextMessage) else b""
                    inbox.append(joined.join(self._parts))
                    self._parts = []
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN and not self._close_sent:
                    self._control.append(encode_frame(OP_PONG, bytes(event.payload)))
            elif isinstance(event, Pong):
                if self._pong is not None and event.payload == self._ping_payload:
                    self._pong.set()
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.OPEN:
                    # wsproto reports its own parse failures as a CloseConnection while
                    # the connection is still OPEN: 1002, 1007 bad UTF-8, 1009 limits.
                    self._parser_dead = True
                close = event
                break
        if len(inbox) > queued:
            self._wake_receiver()
        return close

    async def _reader(self) -> None:
        inbox = self._inbox
        limit = self.config.receive_queue_size
        while True:
            # While the handler keeps coming back to receive(), it reads for itself: this
            # task wakes once per _HANDOFF at most, not once per message.
            while not self._close_sent:
                if self._in_receive:
                    self._left = trio.Event()
                    await self._left.wait()
                # It has just left receive() (or never came): give it _HANDOFF to return.
                seen = self._receives
                await trio.sleep(_HANDOFF)
                if not self._in_receive and self._receives == seen:
                    break  # away for a whole _HANDOFF: read for it
            while True:
                while len(inbox) >= limit and not self._close_sent:
                    self._paused_since_ping = True
                    self._reader_wake = trio.Event()
                    await self._reader_wake.wait()
                self._reader_wake = None
                if len(self._control) >= _MAX_PENDING_PONGS:
                    await self._pongs_sent()  # the peer is not reading our pongs
                while self._reading:
                    self._read_free = trio.Event()
                    await self._read_free.wait()
                await self._read(in_handler=False)
                if self._finished.is_set():
                    return
                if self._in_receive and inbox and not self._close_sent:
                    break  # a handler is waiting again: reading goes back to it

    async def _on_close(self, event: CloseConnection) -> None:
        ws = self._ws
        if ws.state is ConnectionState.OPEN:
            await self._fail(int(event.code), event.reason or "")
            return
        reason = event.reason or ""
        if ws.state is ConnectionState.REMOTE_CLOSING:
            if self.closed is None:
                self.closed = WebSocketClosed(int(event.code), reason)
            self._close_sent = True
            with contextlib.suppress(WebSocketClosed):
                await self._send_event(event.response())
        self._finish(int(event.code), reason)

    # -- heartbeat ------------------------------------------------------------------
    async def _heartbeat(self, interval: float) -> None:
        timeout = self.config.ping_timeout
        count = 0
        while True:
            await trio.sleep(interval)
            if self._close_sent:
                return
            count += 1
            self._ping_payload = count.to_bytes(8, "big")
            self._pong = pong = trio.Event()
            self._paused_since_ping = False
            try:
                await self._send_event(Ping(payload=self._ping_payload))
            except WebSocketClosed:
                return
            while not pong.is_set():
                with trio.move_on_after(timeout):
                    await pong.wait()
                if pong.is_set():
                    break
                if self._paused_since_ping or self._reader_wake is not None:
                    # Our own backpressure kept the pong unread: not the peer's fault.
                    self._paused_since_ping = False
                    continue
                await self._fail(1011, "no pong within ping_timeout")
                return

    # -- lifetime -------------------------------------------------------------------
    def _finish(self, code: int, reason: str = "") -> None:
        if self.closed is None:
            self.closed = WebSocketClosed(code, reason)
        self._close_sent = True
        self._closing.set()
        self._finished.set()
        self._wake_receiver()
        self._wake_pong_waiters()
        self._stop_handler_read()

    async def _run_handler(self, handler: WebSocketHandler) -> None:
        try:
            await handler(self)
        except WebSocketClosed:
            pass
        except Exception:
            req = self.request
            log.exception("WebSocket handler failed: %s (HTTP/%s)", req.path, req.http_version)
            await self._fail(1011, "internal error")
            return
        await self.close(1000)

    async def _going_away(self, server: Server) -> None:
        """Server shutdown: close with 1001 and let the closing handshake finish."""
        await server.wait_shutdown()
        await self._send_close(1001, "server shutting down")

    async def _close_watchdog(self) -> None:
        """Once a close frame went out, the connection ends within ``close_timeout``."""
        await self._closing.wait()
        with trio.move_on_after(self.config.close_timeout):
            await self._finished.wait()
        self._finish(1006, "closing handshake timed out")

    async def run(self, handler: WebSocketHandler) -> None:
        """Serve the connection until it is closed; the handler runs inside."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader)
                nursery.start_soon(self._writer)
                if self.config.ping_interval is not None:
                    nursery.start_soon(self._heartbeat, self.config.ping_interval)
                nursery.start_soon(self._run_handler, handler)
                nursery.start_soon(self._close_watchdog)
                server = current_server()
                if server is not None:
                    nursery.start_soon(self._going_away, server)
                await self._finished.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._finish(1006)
            await trio.aclose_forcefully(self._tunnel)
