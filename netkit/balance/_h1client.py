"""A minimal HTTP/1.1 client connection, for the proxy's upstream side.

Why not httpx: the proxy relays bodies chunk by chunk in both directions with
backpressure (a slow client slows the upstream), sends and receives at the same time (a
backend may answer before the request body ended), and hands a WebSocket ``101``
connection over as a raw byte stream. httpx buffers or hides each of those. Why not h11:
on this path a request was already checked by the server side and goes out again at
once; h11's event objects and per-event state machine were a third of a proxied
request's CPU. The framing is :mod:`netkit.wire.h1_client` (sans I/O), and on a plain
TCP socket the bytes go through ``os.write``/``os.read`` directly (``http._direct``).
"""

from __future__ import annotations

import trio

from ..errors import ConnectionClosed, RemoteProtocolError
from ..http import Headers
from ..http._direct import DirectIO
from ..wire.h1_client import (
    END,
    LAST_CHUNK,
    NEED_DATA,
    IncompleteResponse,
    ResponseError,
    ResponseHead,
    ResponseParser,
    encode_chunk,
    encode_request_head,
)

_READ_SIZE = 64 * 1024
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)


class H1ClientConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, transport: trio.abc.Stream) -> None:
        self.transport = transport
        self.io = DirectIO(transport)
        self._parser = ResponseParser()
        #: The request being sent uses chunked framing (its body was not sized).
        self._chunked = False
        #: The current request was sent whole (head, body and its end).
        self._sent = True
        self.broken = False
        #: When the connection went back to the pool (trio's clock).
        self.idle_since = 0.0
        #: Requests started on this connection, this one included.
        self.exchanges = 0
        #: Bytes of the current request's response received so far.
        self._received = 0
        #: When the current response must have started (the proxy's watchdog reads it).
        self.answer_by = 0.0
        #: Set by :meth:`time_out`.
        self.timed_out = False

    @property
    def answered(self) -> bool:
        """Some of the current request's response arrived (even one byte)."""
        return self._received > 0

    @property
    def reusable(self) -> bool:
        """The last exchange ended cleanly and both sides allow another one."""
        parser = self._parser
        return not self.broken and self._sent and parser.idle and parser.reusable

    def still_open(self) -> bool:
        """Whether an idle connection looks usable: on plain TCP, a read that would block
        (nothing arrived, no close). A backend closes keep-alive connections it finds
        idle; sending the next request on one would fail it for nothing."""
        if self.io.fd < 0:
            return True
        try:
            return self.io.read_now(1) is None
        except _BROKEN:
            return False

    def time_out(self) -> None:
        """Give up on the current response: a read waiting on it fails at once, and the
        connection is closed (a late answer must never be taken for the next request's).
        """
        self.timed_out = True
        self.broken = True
        if self.io.fd >= 0 and isinstance(self.transport, trio.SocketStream):
            trio.lowlevel.notify_closing(self.io.fd)
            self.transport.socket.close()

    # -- bytes ------------------------------------------------------------------------
    async def _write(self, data: bytes) -> None:
        try:
            rest = await self.io.write(data)
            if rest:
                await self.transport.send_all(rest)
        except _BROKEN as exc:
            self.broken = True
            raise ConnectionClosed(f"the backend connection broke: {exc}") from exc

    async def _read(self) -> bytes:
        try:
            return bytes(await self.io.receive(self.transport, _READ_SIZE))
        except _BROKEN as exc:
            self.broken = True
            raise ConnectionClosed(f"the backend connection broke: {exc}") from exc

    async def _next_event(self) -> ResponseHead | bytes | object:
        parser = self._parser
        try:
            while True:
                event = parser.next_event()
                if event is not NEED_DATA:
                    return event
                data = await self._read()
                self._received += len(data)
                parser.feed(data)
        except ResponseError as exc:
            self.broken = True
            if isinstance(exc, IncompleteResponse):
                raise ConnectionClosed(f"the backend {exc}") from exc
            raise RemoteProtocolError(f"the backend broke HTTP/1.1: {exc}") from exc

    # -- the request --------------------------------------------------------------------
    def _head(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
        if not self.reusable:
            raise ConnectionClosed("the connection cannot carry another request")
        try:
            head = encode_request_head(method.encode("ascii"), target.encode("ascii"), headers)
        except (ValueError, UnicodeEncodeError) as exc:
            raise RemoteProtocolError(f"cannot send this request over HTTP/1.1: {exc}") from exc
        self._parser.start(method.encode("ascii"))
        self._chunked = any(
            n == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers
        )
        self._sent = False
        self.exchanges += 1
        self._received = 0
        return head

    async def send_request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """A whole request with a sized body (its ``content-length`` among ``headers``
        when it has one) in one write."""
        head = self._head(method, target, headers)
        await self._write(head + body if body else head)
        self._sent = True

    async def send_head(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        await self._write(self._head(method, target, headers))

    async def send_data(self, data: bytes) -> None:
        if data:
            await self._write(encode_chunk(data) if self._chunked else data)

    async def end(self) -> None:
        if self._chunked:
            await self._write(LAST_CHUNK)
        self._sent = True

    # -- the response -------------------------------------------------------------------
    async def receive_head(self, *, switch: bool = False) -> tuple[int, Headers]:
        """The final response head (1xx skipped; with ``switch``, a 101 is returned)."""
        while True:
            event = await self._next_event()
            if isinstance(event, ResponseHead):
                if event.status >= 200:
                    return event.status, Headers(event.headers)
                if event.status == 101:
                    if switch:
                        return 101, Headers(event.headers)
                    self.broken = True
                    raise RemoteProtocolError("the backend switched protocols unasked")
                continue
            self.broken = True
            raise RemoteProtocolError("the backend sent body bytes before a response head")

    def complete_body(self) -> bytes | None:
        """The whole body, if it arrived with the head (see ``ResponseParser``)."""
        return self._parser.complete_body()

    async def receive_data(self) -> bytes:
        """The next body chunk, ``b""`` at the end of the response."""
        event = await self._next_event()
        if event is END:
            return b""
        assert isinstance(event, bytes)
        return event

    @property
    def trailers(self) -> list[tuple[bytes, bytes]]:
        """The trailer fields of the last chunked response (empty if none)."""
        return self._parser.trailers

    def leftover(self) -> bytes:
        """Bytes read past a ``101`` response: the start of the tunnel."""
        return self._parser.leftover()

    async def aclose(self) -> None:
        self.broken = True
        await trio.aclose_forcefully(self.transport)
