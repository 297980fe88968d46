"""HTTP/1.1 driver: a thin trio loop around h11.

One connection handles its requests one after another in its own task (HTTP/1.1 has no
concurrency within a connection, so no per-request task is needed). The request body is
read from the socket only when the handler asks for it, which is the backpressure.

Timeouts: the first request head must arrive within ``request_head_timeout`` of the
connection opening; between requests the connection may idle ``keep_alive_timeout``, and
once the next request's first byte arrives its head must complete within
``request_head_timeout``. Every write is bounded by ``write_timeout``.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import h11
import trio

from ..errors import ConnectionClosed, HTTPStatusError, LocalProtocolError
from ._config import ServerConfig
from ._direct import DirectIO
from ._h2 import H2Connection
from ._headers import Headers, HeadersLike, normalize
from ._observer import ServerObserver
from ._stream import (
    BODYLESS_STATUSES,
    Handler,
    HTTPStream,
    Request,
    error_body,
    run_handler,
    transport_peer_certificate,
)
from ._tunnel import ConnectionTunnel

_READ_SIZE = 64 * 1024
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_MAX_DRAIN = 64 * 1024


def _response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


def _asks_for_h2c(request: Request) -> bool:
    """A bodyless request offering ``Upgrade: h2c`` with its HTTP2-Settings."""
    headers = request.headers
    upgrade = (headers.get("upgrade") or "").lower()
    return (
        "h2c" in [token.strip() for token in upgrade.split(",")]
        and "http2-settings" in headers
        and "transfer-encoding" not in headers
        and headers.get("content-length", "0") == "0"
    )


class H11Stream(HTTPStream):
    def __init__(self, conn: H11Connection, request: Request) -> None:
        super().__init__(request, conn.config.max_request_body_size)
        self._conn = conn
        self._chunked = False
        self._trailers_ok = "trailers" in (request.headers.get("te") or "")
        #: A HEAD response keeps its headers (content-length included) and drops the body.
        self._head = request.method == "HEAD"
        self.aborted = False
        #: Set once ``accept_tunnel`` switched protocols: the connection ends with the handler.
        self.tunnelled = False

    def _encode(self, event: Any) -> bytes:
        """h11's bytes for ``event``; a misuse h11 rejects ends the connection after this."""
        try:
            return self._conn.h11.send(event) or b""
        except h11.LocalProtocolError as exc:
            self._conn.closing = True
            raise LocalProtocolError(str(exc)) from exc

    def _continue_first(self, status: int) -> bytes:
        """The ``100 Continue`` a waiting client needs before a 2xx that will read its body."""
        if 200 <= status < 300 and self._conn.h11.they_are_waiting_for_100_continue:
            return self._encode(h11.InformationalResponse(status_code=100, headers=[]))
        return b""

    async def _receive_chunk(self) -> bytes:
        conn = self._conn
        h = conn.h11
        if h.their_state is not h11.SEND_BODY:
            return b""
        if h.they_are_waiting_for_100_continue:
            await conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        try:
            event = await conn.next_event(trio.current_time() + conn.config.keep_alive_timeout)
        except h11.RemoteProtocolError as exc:
            conn.closing = True  # the body's framing is lost: nothing after it can be read
            raise HTTPStatusError(exc.error_status_hint, "malformed request body") from exc
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return b""
        raise ConnectionClosed("connection ended inside the request body")

    async def send_headers(
        self, status: int, headers: HeadersLike = (), *, end_stream: bool = False
    ) -> None:
        if self.headers_sent:
            raise LocalProtocolError("response headers already sent")
        pairs = normalize(headers)
        names = {k for k, _ in pairs}
        if end_stream and b"content-length" not in names and status not in BODYLESS_STATUSES:
            pairs.append((b"content-length", b"0"))
        elif b"content-length" not in names and b"transfer-encoding" not in names:
            self._chunked = self.request.http_version == "1.1" and not self._head
        if self._conn.closing:
            pairs.append((b"connection", b"close"))
        data = self._continue_first(status) + self._encode(_response(status, pairs))
        self.headers_sent = True
        self.status = status
        if end_stream:
            data += self._encode(h11.EndOfMessage())
            self.finished = True
        await self._conn.send_bytes(data)

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        if self.finished:
            raise LocalProtocolError("response already finished")
        if not self.headers_sent:
            raise LocalProtocolError("send_headers() must come first")
        out = self._encode(h11.Data(data=data)) if data and not self._head else b""
        self.bytes_sent += len(data)
        if end_stream:
            out += self._encode(h11.EndOfMessage())
            self.finished = True
        if out:
            await self._conn.send_bytes(out)

    async def send_trailers(self, headers: HeadersLike) -> None:
        if self.finished:
            raise LocalProtocolError("response already finished")
        trailers = normalize(headers) if self._chunked and self._trailers_ok else []
        self.finished = True
        await self._conn.send_bytes(self._encode(h11.EndOfMessage(headers=trailers)))

    async def respond(self, status: int, headers: HeadersLike = (), body: bytes = b"") -> None:
        if self.headers_sent:
            raise LocalProtocolError("response headers already sent")
        pairs = normalize(headers)
        if status not in BODYLESS_STATUSES:
            pairs.append((b"content-length", str(len(body)).encode()))
        if self._conn.closing:
            pairs.append((b"connection", b"close"))
        data = self._continue_first(status) + self._encode(_response(status, pairs))
        if body and not self._head:
            data += self._encode(h11.Data(data=body))
        data += self._encode(h11.EndOfMessage())
        self.headers_sent = self.finished = True
        self.status = status
        self.bytes_sent += len(body)
        await self._conn.send_bytes(data)

    async def abort(self, code: int | None = None) -> None:
        # HTTP/1.1 cannot cancel one response (nor carry ``code``): the connection
        # closes after the handler.
        self.finished = self.aborted = True
        self._conn.closing = True
        await trio.lowlevel.checkpoint()

    def peer_certificate(self) -> dict[str, Any] | None:
        return transport_peer_certificate(self._conn.transport)

    async def accept_tunnel(self, headers: HeadersLike = ()) -> trio.abc.Stream:
        """Generic ``Upgrade`` takeover: 101, then the raw connection (see HTTPStream)."""
        if self.headers_sent:
            raise LocalProtocolError("response headers already sent")
        if "upgrade" not in self.request.headers:
            raise LocalProtocolError("the request asked for no protocol switch")
        conn = self._conn
        event = await conn.next_event(trio.current_time() + conn.config.request_head_timeout)
        if not isinstance(event, h11.EndOfMessage):
            # A body before the switch: its framing is not ours to guess past.
            conn.closing = True
            raise HTTPStatusError(400, "a protocol switch request must not have a body")
        data = self._encode(
            h11.InformationalResponse(
                status_code=101, headers=normalize(headers), reason=b"Switching Protocols"
            )
        )
        self.headers_sent = self.finished = self.tunnelled = True
        self.status = 101
        conn.closing = True
        conn.tunnel = ConnectionTunnel(
            conn.transport, conn.h11.trailing_data[0], conn.send_bytes, conn.io
        )
        await conn.send_bytes(data)
        return conn.tunnel


class H11Connection:
    """Serves HTTP/1.1 requests on one transport until it closes."""

    def __init__(
        self,
        transport: trio.abc.Stream,
        handler: Handler,
        config: ServerConfig,
        *,
        scheme: str,
        initial_data: bytes = b"",
        observer: ServerObserver | None = None,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.config = config
        self.scheme = scheme
        self.observer = observer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        if initial_data:
            self.h11.receive_data(initial_data)
        #: Set when the connection must close after the current response (shutdown).
        self.closing = False
        #: True while no byte of the next request has arrived.
        self._idle = True
        #: Bytes handed to h11 so far (to measure each request head exactly).
        self._fed = len(initial_data)
        self._scope = trio.CancelScope()
        #: Direct reads and writes on a plain TCP socket (see ``_direct``).
        self.io = DirectIO(transport)
        self._upgraded: H2Connection | None = None
        #: The connection as handed to an upper protocol after ``101`` (accept_tunnel).
        self.tunnel: ConnectionTunnel | None = None

    # -- I/O edges --------------------------------------------------------------------
    # One cancel scope spans the connection; its deadline is moved before each wait on
    # the peer and back to infinity after it. A wait that times out cancels the whole
    # connection (there is nothing to answer on a connection whose peer stalls), and the
    # hot path pays for no extra cancel scopes.
    async def send_bytes(self, data: bytes) -> None:
        # The usual case: the kernel takes the whole response at once (_direct).
        try:
            rest = await self.io.write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosed("could not write the response") from exc
        if not rest:
            return
        scope = self._scope
        saved = scope.deadline
        scope.deadline = trio.current_time() + self.config.write_timeout
        try:
            await self.transport.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionClosed("could not write the response") from exc
        finally:
            scope.deadline = saved

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            await self.send_bytes(data)

    async def next_event(self, deadline: float) -> Any:
        """The next h11 event, reading from the socket as needed, before ``deadline``.

        The deadline is only set when a read has to wait: each change of a cancel
        scope's deadline costs a few microseconds, a noticeable share of a request.
        """
        event = self.h11.next_event()
        if event is not h11.NEED_DATA:
            return event  # internal: the callers' own I/O provides the checkpoints
        scope = self._scope
        scope.deadline = deadline
        try:
            while True:
                try:
                    data = await self._receive()
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise ConnectionClosed("transport failed while reading") from exc
                self.h11.receive_data(bytes(data))
                self._fed += len(data)
                began = bool(data) and self._idle
                if began:
                    self._idle = False  # a request is in progress: drain must not cut it
                event = self.h11.next_event()
                if event is not h11.NEED_DATA:
                    return event
                if began:
                    # The next request has begun: from now on its head has its own limit.
                    scope.deadline = trio.current_time() + self.config.request_head_timeout
        finally:
            scope.deadline = math.inf

    async def _receive(self) -> bytes | bytearray:
        return await self.io.receive(self.transport, _READ_SIZE)

    def start_drain(self) -> None:
        """Graceful shutdown: finish the current response with ``connection: close``."""
        self.closing = True
        if self._upgraded is not None:
            self._upgraded.start_drain()
        elif self._idle:
            self._scope.cancel()

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        with self._scope:
            await self._serve_requests()

    async def _serve_requests(self) -> None:
        # The first head is bounded from the connection's start, not from its first byte.
        deadline = trio.current_time() + self.config.request_head_timeout
        self._idle = False
        while not self.closing:
            # Head bytes = what h11 held or received since, minus what it still holds.
            start = self._fed - len(self.h11.trailing_data[0])
            try:
                event = await self.next_event(deadline)
            except ConnectionClosed:
                return
            except h11.RemoteProtocolError as exc:
                if self.observer is not None and exc.error_status_hint == 431:
                    self.observer.limit_hit("431")
                await self._send_error(exc.error_status_hint, str(exc))
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (EOF) or PAUSED
            # h11 bounds only heads that arrive in pieces; bound complete ones too.
            head_size = self._fed - len(self.h11.trailing_data[0]) - start
            if head_size > self.config.max_header_size:
                if self.observer is not None:
                    self.observer.limit_hit("431")
                await self._send_error(431, "request head too large")
                return
            names = {name for name, _ in event.headers}
            if b"transfer-encoding" in names and b"content-length" in names:
                # RFC 9112 6.1: a classic request-smuggling shape; refuse it outright.
                await self._send_error(400, "both content-length and transfer-encoding")
                return
            request = self._make_request(event)
            if self.scheme == "http" and _asks_for_h2c(request):
                await self._upgrade_to_h2(request)
                return
            stream = H11Stream(self, request)
            observer = self.observer
            if observer is None:
                await run_handler(self.handler, stream)
            else:
                token = observer.request_started(stream)
                try:
                    await run_handler(self.handler, stream)
                finally:
                    observer.request_finished(stream, token)
            if stream.aborted or stream.tunnelled or not await self._finish_cycle():
                return
            self._idle = True
            deadline = trio.current_time() + self.config.keep_alive_timeout

    async def _upgrade_to_h2(self, request: Request) -> None:
        """``Upgrade: h2c`` (RFC 7540 3.2): 101, then HTTP/2 with this request as stream 1."""
        event = await self.next_event(trio.current_time() + self.config.request_head_timeout)
        if not isinstance(event, h11.EndOfMessage):
            return
        await self.send(
            h11.InformationalResponse(
                status_code=101,
                headers=[(b"connection", b"Upgrade"), (b"upgrade", b"h2c")],
                reason=b"Switching Protocols",
            )
        )
        settings = (request.headers.get("http2-settings") or "").encode("latin-1")
        h2conn = H2Connection(
            self.transport,
            self.handler,
            self.config,
            scheme=self.scheme,
            initial_data=self.h11.trailing_data[0],
            upgrade=(settings, request),
            observer=self.observer,
        )
        self._upgraded = h2conn
        if self.closing:
            h2conn.start_drain()
        await h2conn.run()

    def _make_request(self, event: h11.Request) -> Request:
        headers = Headers(event.headers)
        return Request(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            authority=headers.get("host") or "",
            scheme=self.scheme,
            headers=headers,
            http_version=event.http_version.decode("ascii"),
        )

    async def _finish_cycle(self) -> bool:
        """After a response: drain a small unread body, then reuse the connection if allowed."""
        h = self.h11
        if h.our_state is not h11.DONE:
            return False
        if h.their_state is h11.SEND_BODY and not self.closing:
            drained = 0
            deadline = trio.current_time() + 1.0
            try:
                while h.their_state is h11.SEND_BODY and drained <= _MAX_DRAIN:
                    event = await self.next_event(deadline)
                    if isinstance(event, h11.Data):
                        drained += len(event.data)
            except (ConnectionClosed, h11.RemoteProtocolError):
                return False
        if h.our_state is h11.DONE and h.their_state is h11.DONE and not self.closing:
            h.start_next_cycle()
            return True
        return False

    async def _send_error(self, status: int, detail: str) -> None:
        """Answer malformed input (400, 431, ...) if h11 still lets us, then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        extra, body = error_body(status, detail)
        headers = [
            *normalize(extra),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            data = self.h11.send(_response(status, headers))
            data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
            await self.send_bytes(data)
        except (h11.LocalProtocolError, ConnectionClosed):
            return
