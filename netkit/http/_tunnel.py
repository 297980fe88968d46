"""Byte channels handed to an upper protocol after a switch (``HTTPStream.accept_tunnel``).

Two shapes, one trio ``Stream`` interface, so that the layer above (WebSocket) has one
code path whatever the transport:

* :class:`ConnectionTunnel` — HTTP/1.1 after ``101 Switching Protocols``: the connection
  itself, starting with the bytes h11 had already buffered past the request head.
* :class:`StreamTunnel` — HTTP/2 after a ``200`` to an extended CONNECT (RFC 8441): the
  stream's DATA frames both ways. Reads reopen the flow-control windows as they are
  consumed, writes wait for the peer's windows: HTTP/2's backpressure carries through.

On a plain TCP connection, :class:`ConnectionTunnel` reads and writes the socket's file
descriptor itself, sharing the HTTP/1.1 connection's :class:`~._direct.DirectIO` (see
there for why and how). A write the kernel cannot take whole goes through the
connection's own write path (bounded by ``write_timeout``). TLS and any other transport
use the transport's methods.

Errors follow trio's meaning: ``trio.BrokenResourceError`` when the peer or the
connection went away, ``trio.ClosedResourceError`` after our own ``aclose``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from ..errors import ConnectionClosed, LocalProtocolError, StreamReset
from ._direct import DirectIO


class ReceiveInterrupted(Exception):
    """``ConnectionTunnel.receive_some`` was stopped by ``interrupt_receive``."""


class ConnectionTunnel(trio.abc.HalfCloseableStream):
    """An HTTP/1.1 connection taken over after ``101``."""

    def __init__(
        self,
        transport: trio.abc.Stream,
        initial: bytes,
        send_bytes: Callable[[bytes], Awaitable[None]],
        io: DirectIO | None = None,
    ) -> None:
        self._transport = transport
        self._initial = initial
        #: The connection's own write path (bounded by ``write_timeout``).
        self._send_bytes = send_bytes
        self._closed = False
        self._io = io if io is not None else DirectIO(transport)
        #: The socket's descriptor when the direct path applies (plain TCP), else -1.
        self._fd = self._io.fd
        self._receiving = False
        self._interrupted = False

    @property
    def interruptible(self) -> bool:
        """Whether :meth:`interrupt_receive` works on this tunnel."""
        return self._fd >= 0

    def interrupt_receive(self) -> None:
        """Make a ``receive_some`` waiting right now raise :class:`ReceiveInterrupted`.

        Cheaper than a cancel scope around every read (the fast path's reader enters
        one per message otherwise); nothing is lost: no byte has been read yet.
        """
        if self._receiving and not self._interrupted:
            self._interrupted = True
            # Wakes the waiter with ClosedResourceError without closing anything; the
            # descriptor can be waited on again afterwards.
            trio.lowlevel.notify_closing(self._fd)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("tunnel closed")
        if self._initial:
            size = len(self._initial) if max_bytes is None else max_bytes
            data, self._initial = self._initial[:size], self._initial[size:]
            await trio.lowlevel.checkpoint()
            return data
        fd = self._fd
        if fd < 0:
            return bytes(await self._transport.receive_some(max_bytes))
        self._receiving = True
        try:
            await trio.lowlevel.wait_readable(fd)
        except trio.ClosedResourceError:
            if self._interrupted:
                self._interrupted = False
                raise ReceiveInterrupted from None
            raise
        finally:
            self._receiving = False
        got = self._io.read_now(max_bytes or _READ_SIZE)
        if got is None:  # a spurious wake-up: wait properly
            return bytes(await self._transport.receive_some(max_bytes))
        return got

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("tunnel closed")
        rest = await self._io.write(data)
        if not rest:
            return
        try:
            await self._send_bytes(bytes(rest))
        except ConnectionClosed as exc:
            raise trio.BrokenResourceError("connection lost") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await self._transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Half-close where the transport can (TCP); under TLS this does nothing."""
        if isinstance(self._transport, trio.abc.HalfCloseableStream):
            await self._transport.send_eof()
        else:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await self._transport.aclose()


_READ_SIZE = 64 * 1024


class _TunnelledStream(Protocol):
    finished: bool

    async def _receive_chunk(self) -> bytes: ...
    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None: ...


class StreamTunnel(trio.abc.HalfCloseableStream):
    """An HTTP/2 stream taken over after a ``200`` to an extended CONNECT."""

    def __init__(self, stream: _TunnelledStream) -> None:
        self._stream = stream
        self._buffer = b""
        self._closed = False
        self._eof = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("tunnel closed")
        if not self._buffer and not self._eof:
            try:
                # Straight from the stream, not through HTTPStream.receive: the request
                # body limit does not apply to a tunnel (the upper protocol bounds it).
                self._buffer = await self._stream._receive_chunk()
            except (StreamReset, ConnectionClosed) as exc:
                raise trio.BrokenResourceError("stream reset or connection lost") from exc
            self._eof = not self._buffer
        else:
            await trio.lowlevel.checkpoint()
        size = len(self._buffer) if max_bytes is None else max_bytes
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("tunnel closed")
        try:
            await self._stream.send_data(bytes(data))
        except (StreamReset, ConnectionClosed, LocalProtocolError) as exc:
            raise trio.BrokenResourceError("stream reset or connection lost") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        """END_STREAM: our side is done; the peer's DATA can still be read."""
        if self._stream.finished:
            await trio.lowlevel.checkpoint()
            return
        try:
            await self._stream.send_data(b"", end_stream=True)
        except (StreamReset, ConnectionClosed, LocalProtocolError):
            return

    async def aclose(self) -> None:
        """End our side of the stream (if not yet); nothing more can be read after it."""
        self._closed = True
        await self.send_eof()
