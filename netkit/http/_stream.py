"""The one stream abstraction that REST, gRPC, WebSocket and the proxy are written against.

Both the HTTP/1.1 and the HTTP/2 driver hand a handler an :class:`HTTPStream`: the
request head, the request body as an async iterator with backpressure, and a response
side that sends headers, data and trailers. Backpressure works the same on both: the
body is pulled from the connection only as the handler reads it (HTTP/1.1: socket reads;
HTTP/2: flow-control window updates), and ``send_data`` returns only once the peer's
windows and the socket let the bytes go.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import attrs
import trio

from ..errors import (
    ConnectionClosed,
    HTTPStatusError,
    LocalProtocolError,
    RequestBodyTooLarge,
    StreamReset,
)
from ._headers import Headers, HeadersLike

log = logging.getLogger("netkit.server")

Handler = Callable[["HTTPStream"], Awaitable[None]]
"""What the server calls once per request: ``async def handler(stream) -> None``."""

#: Statuses whose responses never have a body; ``respond`` adds no ``content-length``
#: to them (RFC 9110 §8.6 forbids it on 204; on 304 it would have to be the 200's length).
BODYLESS_STATUSES = frozenset({204, 304})


@attrs.frozen
class Request:
    """The request head. ``target`` is the raw path with its query string."""

    method: str
    target: str
    authority: str
    scheme: str
    headers: Headers
    http_version: str
    #: RFC 8441: the ``:protocol`` of an HTTP/2 extended CONNECT (e.g. ``"websocket"``),
    #: None otherwise. HTTP/2 connections accept one only for a protocol the handler
    #: declared in ``connect_protocols`` (see :func:`connect_protocols`).
    protocol: str | None = None

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def query_string(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


class HTTPStream(abc.ABC):
    """One request/response exchange, on either protocol.

    A handler may read the body (``receive``, ``async for``, ``read_body``), then send the
    response: ``send_headers``, any number of ``send_data``, optionally ``send_trailers``
    (HTTP/2; dropped on HTTP/1.1 unless the body is chunked), or everything at once with
    ``respond``. If the handler returns without finishing the response, the server
    finishes it; if it raises, the server answers 500 or resets the stream.
    """

    request: Request
    #: The HTTP/2 stream id, or 0 on HTTP/1.1.
    stream_id: int = 0
    headers_sent: bool = False
    finished: bool = False
    #: Who made the request, once an authenticator has said (``netkit.security``); read
    #: by handlers and by the access log. None: not authenticated (or no authentication).
    principal: Any = None
    # -- what observation reads (netkit.observe; the HTTP layer only records them) --------
    #: The route template that served the request, set by the routing layer (REST
    #: template, gRPC method path, WebSocket endpoint path); None: no route matched.
    #: Metrics label requests with it, never with the raw path.
    route: str | None = None
    #: Which protocol the request carried: ``"http"``, ``"grpc"`` or ``"websocket"``.
    protocol: str = "http"
    #: The protocol's own outcome when the HTTP status does not tell it: the gRPC status
    #: name (``"OK"``, ``"NOT_FOUND"``...) or a WebSocket close code.
    outcome: str | None = None
    #: The response status once sent (0 before), and the response body bytes sent.
    status: int = 0
    bytes_sent: int = 0
    #: The observer's record of this exchange (see ``ServerObserver``), None when off.
    exchange: Any = None

    def __init__(self, request: Request, max_body_size: int) -> None:
        self.request = request
        self._max_body = max_body_size
        self._received = 0
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_size:
            self._too_large = True
        else:
            self._too_large = False

    def set_body_limit(self, limit: int | None) -> None:
        """Replace ``max_request_body_size`` for this request; ``None`` lifts it.

        For protocols that bound what they buffer themselves: a gRPC stream can carry
        any number of messages and limits each message instead of the whole body.
        """
        self._max_body = limit if limit is not None else 2**63
        self._too_large = self._received > self._max_body

    @property
    def body_arrived(self) -> bool:
        """Whether the rest of the request body is already here: reading it will not wait.

        Lets a relay pass a small body on in one piece instead of pumping it chunk by
        chunk from a task of its own. False when unknown (HTTP/1.1 reads lazily).
        """
        return False

    @property
    def bytes_received(self) -> int:
        """Request body bytes read so far."""
        return self._received

    # -- request body -------------------------------------------------------------
    @abc.abstractmethod
    async def _receive_chunk(self) -> bytes:
        """The next body chunk from the protocol, ``b""`` at the end."""

    async def receive(self) -> bytes:
        """The next chunk of the request body, ``b""`` once it has all been read.

        Raises :class:`RequestBodyTooLarge` as soon as the declared or received size
        exceeds ``max_request_body_size``.
        """
        if self._too_large:
            raise RequestBodyTooLarge(self._max_body)
        chunk = await self._receive_chunk()
        self._received += len(chunk)
        if self._received > self._max_body:
            self._too_large = True
            raise RequestBodyTooLarge(self._max_body)
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    async def read_body(self) -> bytes:
        """The whole request body (bounded by ``max_request_body_size``)."""
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    # -- response -------------------------------------------------------------------
    @abc.abstractmethod
    async def send_headers(
        self, status: int, headers: HeadersLike = (), *, end_stream: bool = False
    ) -> None:
        """Send the response head; with ``end_stream`` the response has no body."""

    @abc.abstractmethod
    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes, waiting for flow control; ``end_stream`` ends the response."""

    @abc.abstractmethod
    async def send_trailers(self, headers: HeadersLike) -> None:
        """End the response with trailers (HTTP/2, or HTTP/1.1 chunked)."""

    @abc.abstractmethod
    async def respond(self, status: int, headers: HeadersLike = (), body: bytes = b"") -> None:
        """Send a complete response in one step (adds content-length)."""

    async def respond_with_trailers(
        self, status: int, headers: HeadersLike, body: bytes, trailers: HeadersLike
    ) -> None:
        """A complete response ending in trailers (a unary gRPC reply), in one step.

        The HTTP/2 driver hands head, body and trailers to h2 together and leaves in one
        write with no scheduling round in between; this default just sends the parts.
        """
        await self.send_headers(status, headers)
        if body:
            await self.send_data(body)
        await self.send_trailers(trailers)

    @abc.abstractmethod
    async def abort(self, code: int | None = None) -> None:
        """Abandon the response: RST_STREAM on HTTP/2, close the connection on HTTP/1.1.

        ``code`` is the RST_STREAM error code (default INTERNAL_ERROR), e.g. to relay a
        reset received elsewhere with its own code; HTTP/1.1 has none and ignores it.
        """

    def peer_certificate(self) -> dict[str, Any] | None:
        """The client's TLS certificate (``getpeercert()``), None on cleartext or without one."""
        return None

    # -- takeover (HTTP/1.1 Upgrade, RFC 8441 extended CONNECT) -------------------------
    async def accept_tunnel(self, headers: HeadersLike = ()) -> trio.abc.Stream:
        """Accept the request's protocol switch and hand its byte channel to the caller.

        HTTP/1.1: the request carried ``Upgrade``; the answer is ``101 Switching
        Protocols`` with ``headers`` (the caller supplies ``upgrade``/``connection``),
        and the returned stream is the connection itself, starting with any bytes the
        client sent after the request head. The connection ends with the handler.
        HTTP/2: the request is an extended CONNECT (``request.protocol`` set); the answer
        is ``200`` with ``headers`` and the returned stream carries the stream's DATA
        both ways, under HTTP/2 flow control; closing it ends our side of the stream.

        The returned stream follows trio's conventions (``trio.BrokenResourceError``
        when the peer went away). The request body limit no longer applies: the upper
        protocol bounds what it buffers. Which protocol is spoken is the caller's
        business: this layer knows nothing of it.
        """
        raise LocalProtocolError("this stream cannot switch protocols")


def transport_peer_certificate(transport: trio.abc.Stream) -> dict[str, Any] | None:
    """``getpeercert()`` of a TLS transport; None for cleartext or when no cert was sent."""
    if not isinstance(transport, trio.SSLStream):
        return None
    try:
        cert: dict[str, Any] | None = transport.getpeercert()
    except ValueError:  # handshake not done
        return None
    return cert or None


def connect_protocols(handler: object) -> frozenset[str]:
    """The RFC 8441 protocols a handler accepts over HTTP/2 extended CONNECT.

    A handler declares them with a ``connect_protocols`` attribute (``App`` does when a
    WebSocket endpoint is registered). An HTTP/2 connection advertises
    ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` only when this is non-empty, and refuses an
    extended CONNECT for any other protocol with RST_STREAM(PROTOCOL_ERROR).
    """
    declared: Collection[str] = getattr(handler, "connect_protocols", ())
    return frozenset(declared)


def error_body(status: int, detail: str, **members: object) -> tuple[list[tuple[str, str]], bytes]:
    """An ``application/problem+json`` (RFC 9457) answer: headers and body.

    The server's own errors carry ``status`` and ``detail`` (an absent ``type`` means
    ``about:blank``); upper layers add members such as ``type``, ``title`` or ``errors``
    through ``members``. Never put exception text or tracebacks here.
    """
    import json

    problem: dict[str, object] = {k: members.pop(k) for k in ("type", "title") if k in members}
    problem["status"] = status
    problem["detail"] = detail
    problem.update(members)
    body = json.dumps(problem).encode()
    return [("content-type", "application/problem+json")], body


async def run_handler(handler: Handler, stream: HTTPStream) -> None:
    """Run one handler and make sure the exchange ends well, whatever the handler does.

    This is the single boundary where handler failures become protocol answers, so both
    drivers behave the same: HTTPStatusError -> that status; anything else -> 500 (or a
    reset once the response has started) and a log line with method, path and stream
    id; a response left open -> finished for it. A stream that was reset or a connection
    that went away ends the exchange quietly: there is nobody left to answer.
    """
    try:
        try:
            if stream._too_large:  # declared content-length over the limit: don't start
                raise RequestBodyTooLarge(stream._max_body)
            await handler(stream)
        except HTTPStatusError as exc:
            await _fail(stream, exc.status, exc.detail)
            return
        except (StreamReset, ConnectionClosed):
            return
        except Exception:
            req = stream.request
            log.exception(
                "handler failed: %s %s (HTTP/%s stream %d)",
                req.method,
                req.target,
                req.http_version,
                stream.stream_id,
            )
            await _fail(stream, 500, "internal server error")
            return
        if not stream.finished:
            if stream.headers_sent:
                await stream.send_data(b"", end_stream=True)
            else:
                req = stream.request
                log.error(
                    "handler returned without responding: %s %s (stream %d)",
                    req.method,
                    req.target,
                    stream.stream_id,
                )
                await _fail(stream, 500, "handler sent no response")
    except (StreamReset, ConnectionClosed):
        return


async def _fail(stream: HTTPStream, status: int, detail: str) -> None:
    try:
        await _fail_unguarded(stream, status, detail)
    except LocalProtocolError as exc:
        # The connection is already failing (h2 closed it on a protocol error): the
        # error answer cannot be sent, and that must not crash the connection's task.
        log.debug("could not send %d on stream %d: %s", status, stream.stream_id, exc)


async def _fail_unguarded(stream: HTTPStream, status: int, detail: str) -> None:
    if not stream.headers_sent:
        headers, body = error_body(status, detail)
        await stream.respond(status, headers, body)
    elif not stream.finished:
        await stream.abort()
