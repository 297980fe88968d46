"""One WebSocket connection on the server: wsproto's frame layer driven by trio tasks.

Theory of operation
-------------------
The same code runs on both transports: it only sees the byte stream that
``HTTPStream.accept_tunnel`` returned (the HTTP/1.1 connection after 101, or the HTTP/2
CONNECT stream). wsproto's frame-level ``Connection`` parses and writes frames.

A session runs, in its own nursery:

* the **reader**: reads bytes, feeds wsproto, answers pings at once, passes pongs to the
  heartbeat, and appends complete messages to the *inbox* (a bounded deque). When the
  inbox is full it stops reading: TCP or HTTP/2 flow control then pushes back on the
  peer (see docs/websocket.md, "Backpressure", for the trade-off with pings);
* the **heartbeat** (when ``ping_interval`` is set): one long-lived task that pings and
  fails the connection with 1011 when no pong comes back within ``ping_timeout``. Time
  the reader spent paused by our own backpressure does not count against the peer;
* the **writer**, which drains the *outbox* (``send_nowait`` and the pub/sub hub) in
  batches: everything queued when it wakes leaves in one write;
* the **handler**, the application's coroutine.

Writes are serialised by a flag and a parking lot (cheaper than a lock on the hot path);
frames are encoded under it, so with permessage-deflate the compressor's context sees
messages in the order they go out. ``send`` writes from the caller's task: an echo costs
no task switch beyond the reader's hand-off.

Ending: whoever ends the session calls ``_finish``; the runner then cancels what is
left, the handler included, and closes the byte stream. A close we start waits
``close_timeout`` for the peer's answer; a failure (1002, 1007, 1009, 1011, 1013) sends its
close frame, half-closes the stream so that peers waiting for the server to close see
EOF, and discards input until EOF or ``close_timeout``.
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

from ..http import Request
from ._config import WebSocketConfig
from ._errors import WebSocketClosed
from ._extensions import FrameLimits
from ._handshake import Handshake

log = logging.getLogger("netkit.ws")

_READ_SIZE = 64 * 1024
#: The writer stops adding queued messages to one write past this many bytes.
_BATCH = 256 * 1024

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
    closed, so a handler waiting on something else does not outlive it.
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
        #: Whole messages received from the peer and handed to the transport (metrics).
        self.messages_received = 0
        self.messages_sent = 0
        #: Set once the connection is closed (or closing): how it ended.
        self.closed: WebSocketClosed | None = None
        self._tunnel = tunnel
        limits = FrameLimits(config.max_frame_size, config.max_message_size)
        self._ws = Connection(ConnectionType.SERVER, extensions=[limits, *handshake.extensions])
        self._inbox: deque[str | bytes] = deque()
        self._inbox_wake: trio.Event | None = None
        self._reader_wake: trio.Event | None = None
        self._paused_since_ping = False
        self._outbox: deque[str | bytes] = deque()
        self._outbox_wake = trio.Event()
        self._overflowed = False
        self._writing = False
        self._write_lot = trio.lowlevel.ParkingLot()
        self._close_sent = False
        self._parser_dead = False
        self._pong: trio.Event | None = None
        self._ping_payload = b""
        self._finished = trio.Event()
        #: Set when a close frame went out (or the connection ended): starts the watchdog.
        self._closing = trio.Event()

    # -- the handler's API ----------------------------------------------------------
    async def receive(self) -> str | bytes:
        """The next message; raises WebSocketClosed once the connection is closed."""
        if self._inbox:
            await trio.lowlevel.checkpoint()
        while not self._inbox:
            if self.closed is not None:
                raise self.closed
            self._inbox_wake = trio.Event()
            await self._inbox_wake.wait()
        message = self._inbox.popleft()
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
        self.messages_sent += 1
        if isinstance(message, str):
            await self._send_event(TextMessage(data=message))
        else:
            await self._send_event(BytesMessage(data=message))

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
    async def _acquire(self) -> None:
        while self._writing:
            await self._write_lot.park()
        self._writing = True

    def _release(self) -> None:
        self._writing = False
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
        try:
            await self._send_event(CloseConnection(code=code, reason=reason))
        except (WebSocketClosed, WsprotoLocalError):
            return  # the connection is gone, or already closed on wsproto's side

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
        while True:
            if not outbox and not self._overflowed:
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
                    return
                ws = self._ws
                data = bytearray()
                while outbox and len(data) < _BATCH:
                    message = outbox.popleft()
                    self.messages_sent += 1
                    if isinstance(message, str):
                        data += ws.send(TextMessage(data=message))
                    else:
                        data += ws.send(BytesMessage(data=message))
                try:
                    await self._write(bytes(data))
                except WebSocketClosed:
                    return
            finally:
                self._release()

    # -- reading --------------------------------------------------------------------
    def _wake_receiver(self) -> None:
        if self._inbox_wake is not None:
            self._inbox_wake.set()

    async def _reader(self) -> None:
        ws = self._ws
        tunnel = self._tunnel
        inbox = self._inbox
        limit = self.config.receive_queue_size
        parts: list[Any] = []
        while True:
            while len(inbox) >= limit and not self._close_sent:
                self._paused_since_ping = True
                self._reader_wake = trio.Event()
                await self._reader_wake.wait()
            self._reader_wake = None
            try:
                data = await tunnel.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._finish(1006, "connection dropped without a close frame")
                return
            if self._parser_dead:
                continue  # lingering after a failure: discard until EOF
            ws.receive_data(data)  # type: ignore[arg-type]  # bytes-like is fine
            for event in ws.events():
                if isinstance(event, Message):
                    if self._close_sent:
                        continue  # we are closing: the handler will not see more
                    if event.message_finished and not parts:
                        inbox.append(event.data)
                    else:
                        parts.append(event.data)
                        if not event.message_finished:
                            continue
                        joined = "" if isinstance(event, TextMessage) else b""
                        inbox.append(joined.join(parts))
                        parts = []
                    self.messages_received += 1
                    self._wake_receiver()
                elif isinstance(event, Ping):
                    if ws.state is ConnectionState.OPEN:
                        try:
                            await self._send_event(event.response())
                        except WebSocketClosed:
                            return
                elif isinstance(event, Pong):
                    if self._pong is not None and event.payload == self._ping_payload:
                        self._pong.set()
                elif isinstance(event, CloseConnection):
                    await self._on_close(event)
                    if self._parser_dead:
                        break
                    return

    async def _on_close(self, event: CloseConnection) -> None:
        ws = self._ws
        if ws.state is ConnectionState.OPEN:
            # wsproto reports its own parse failures as a CloseConnection while the
            # connection is still OPEN: 1002 protocol error, 1007 bad UTF-8, 1009 limits.
            self._parser_dead = True
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
                await self._finished.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._finish(1006)
            await trio.aclose_forcefully(self._tunnel)
