"""``ServerCall``: one gRPC call as its handler sees it.

The call owns the response side of the HTTP/2 stream: response headers go out lazily
(with the first message or an explicit ``send_initial_metadata``), and the status goes
out once, at the end, either as trailers or, when nothing else was sent, as a
Trailers-Only response (a single HEADERS frame), as the gRPC protocol document allows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import trio
from google.protobuf.message import Message

from ..http import HTTPStream
from ..wire import (
    StatusCode,
    encode_binary,
    encode_grpc_message,
    encode_message,
    encode_metadata,
)
from ..wire import compress as compress_payload
from ._errors import GRPCError, Metadata, MetadataValue
from ._messages import MessageReader
from ._service import RPCMethod

#: Encodings this side can decode, advertised in ``grpc-accept-encoding``.
SUPPORTED_ENCODINGS = ("identity", "gzip", "deflate")
_ACCEPT = ",".join(SUPPORTED_ENCODINGS)


class ServerCall:
    """The handler's view of a call: metadata, deadline, responses and status."""

    def __init__(
        self,
        stream: HTTPStream,
        method: RPCMethod,
        *,
        metadata: list[tuple[str, MetadataValue]],
        deadline: float,
        request_encoding: str,
        accept_encoding: str | None,
        max_receive_message_size: int,
        max_send_message_size: int,
    ) -> None:
        self._stream = stream
        self.rpc = method
        #: ``/package.Service/Method``.
        self.method = method.path
        #: The client's metadata (``-bin`` keys carry bytes).
        self.metadata = metadata
        #: When the call must be over, on trio's clock (``math.inf``: no deadline).
        self.deadline = deadline
        #: The client's ``:authority``, as a peer hint for logs and auth.
        self.authority = stream.request.authority
        self._response_encoding = "identity"
        self._client_accepts = _accepted_encodings(accept_encoding or "")
        self._max_send = max_send_message_size
        self._reader = MessageReader(method.request_type, max_receive_message_size, "request")
        self._reader.encoding = request_encoding
        self._request_ended = False
        self._trailing: list[tuple[str, MetadataValue]] = []
        self._initial: list[tuple[str, MetadataValue]] = []
        self.headers_sent = False
        self.status_sent = False
        #: A unary call's framed response, waiting for the status (``_set_reply``).
        self._reply: bytes | None = None
        #: Whether the last request message received was compressed (its flag bit).
        self.last_request_compressed = False
        #: Set by an interceptor or handler for logs and metrics; informational only.
        self.context: dict[str, Any] = {}

    @property
    def principal(self) -> Any:
        """Who made the call, as an authenticating interceptor found it (None: nobody
        said); stored on the stream, so HTTP-level code and logs see the same value."""
        return self._stream.principal

    @principal.setter
    def principal(self, value: Any) -> None:
        self._stream.principal = value

    def peer_certificate(self) -> dict[str, Any] | None:
        """The client's verified TLS certificate (``getpeercert()``), None without one."""
        return self._stream.peer_certificate()

    # -- deadline ---------------------------------------------------------------------
    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (to pass on to outgoing calls), or None."""
        if self.deadline == math.inf:
            return None
        return max(0.0, self.deadline - trio.current_time())

    # -- metadata ---------------------------------------------------------------------
    def metadata_value(self, key: str) -> MetadataValue | None:
        """The first value of ``key`` in the client's metadata."""
        for name, value in self.metadata:
            if name == key:
                return value
        return None

    async def send_initial_metadata(self, metadata: Metadata = ()) -> None:
        """Send the response headers now, with ``metadata``; only before any message."""
        if self.headers_sent:
            raise GRPCError(StatusCode.INTERNAL, "initial metadata already sent")
        self._initial.extend(metadata)
        await self._send_headers()

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        """Metadata to send with the status at the end of the call."""
        self._trailing = list(metadata)

    async def abort(
        self, code: StatusCode | int, message: str = "", details: Message | bytes | None = None
    ) -> NoReturn:
        """End the call with ``code``: raises :class:`GRPCError`, which the server sends."""
        if isinstance(details, Message):
            details = details.SerializeToString()
        raise GRPCError(code, message, details)

    # -- requests ---------------------------------------------------------------------
    async def _next_request(self) -> Message | None:
        """The next request message, or None once the client half-closed."""
        reader = self._reader
        while not reader.ready:
            if self._request_ended:
                return None
            chunk = await self._stream.receive()
            if not chunk:
                self._request_ended = True
                reader.end()
                continue
            reader.feed(chunk)
        message = reader.take()
        self.last_request_compressed = reader.last_compressed
        if self._stream.exchange is not None:
            self._stream.exchange.messages_in += 1
        return message

    async def _single_request(self) -> Message:
        message = await self._next_request()
        if message is None:
            raise GRPCError(StatusCode.INTERNAL, "unary call without a request message")
        if await self._next_request() is not None:
            raise GRPCError(StatusCode.INTERNAL, "unary call with more than one request")
        return message

    def _requests(self) -> AsyncIterator[Message]:
        return _Requests(self)

    # -- responses --------------------------------------------------------------------
    def _response_headers(self) -> list[tuple[str | bytes, str | bytes]]:
        headers: list[tuple[str | bytes, str | bytes]] = [
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", _ACCEPT),
        ]
        if self._response_encoding != "identity":
            headers.append(("grpc-encoding", self._response_encoding))
        headers.extend(encode_metadata(self._initial))
        return headers

    async def _send_headers(self) -> None:
        self.headers_sent = True
        await self._stream.send_headers(200, self._response_headers())

    def set_compression(self, encoding: str) -> bool:
        """Compress responses with ``encoding`` if the client accepts it; True if so.

        Responses are uncompressed unless the handler asks (as in grpcio); only before
        the response headers are sent, since ``grpc-encoding`` is one of them.
        """
        if self.headers_sent:
            raise GRPCError(StatusCode.INTERNAL, "compression must be set before responding")
        if encoding == "identity" or encoding not in self._client_accepts:
            self._response_encoding = "identity"
            return encoding == "identity"
        check_encoding(encoding)
        self._response_encoding = encoding
        return True

    async def send(self, message: Message, *, compress: bool | None = None) -> None:
        """Send one response message (streaming calls; unary handlers return theirs).

        ``compress=False`` sends this message uncompressed even when the call's
        encoding is set (the compressed flag is per message).
        """
        if self.status_sent:
            raise GRPCError(StatusCode.INTERNAL, "call already ended")
        framed = self._frame(message, compress)
        if not self.headers_sent:
            await self._send_headers()
        await self._stream.send_data(framed)

    def _frame(self, message: Message, compress: bool | None = None) -> bytes:
        """``message`` serialized, checked against the send limit, maybe compressed, framed."""
        payload = message.SerializeToString()
        if self._stream.exchange is not None:
            self._stream.exchange.messages_out += 1
        if len(payload) > self._max_send:
            raise GRPCError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"response of {len(payload)} bytes exceeds the limit of {self._max_send}",
            )
        compressed = self._response_encoding != "identity" and compress is not False
        if compressed:
            payload = compress_payload(payload, self._response_encoding)
        return encode_message(payload, compressed=compressed)

    def _set_reply(self, message: Message) -> None:
        """The response of a unary-response call: it leaves with the OK status.

        Head, message and trailers then go out in one step (``respond_with_trailers``),
        and a call that ends in an error after all sends Trailers-Only, without it.
        """
        if self.status_sent:
            raise GRPCError(StatusCode.INTERNAL, "call already ended")
        self._reply = self._frame(message)

    async def _send_status(
        self, code: StatusCode, message: str = "", details: bytes | None = None
    ) -> None:
        """End the call: trailers, or Trailers-Only if nothing was sent yet."""
        if self.status_sent or self._stream.finished:
            return
        self.status_sent = True
        self._stream.outcome = code.name
        trailers = status_headers(code, message, details, self._trailing)
        reply, self._reply = self._reply, None
        if reply is not None and code == StatusCode.OK:
            if not self.headers_sent:
                self.headers_sent = True
                await self._stream.respond_with_trailers(
                    200, self._response_headers(), reply, trailers
                )
                return
            await self._stream.send_data(reply)
        if self.headers_sent:
            await self._stream.send_trailers(trailers)
            return
        head: list[tuple[str | bytes, str | bytes]] = [("content-type", "application/grpc")]
        head.extend(encode_metadata(self._initial))
        await self._stream.send_headers(200, [*head, *trailers], end_stream=True)


@functools.lru_cache(maxsize=64)
def _accepted_encodings(header: str) -> frozenset[str]:
    """``grpc-accept-encoding`` as a set; a client sends the same value on every call."""
    return frozenset(token.strip() for token in header.split(",") if token.strip())


def status_headers(
    code: StatusCode, message: str, details: bytes | None, metadata: Metadata
) -> list[tuple[str | bytes, str | bytes]]:
    """The header fields that carry a call's status (trailers, or Trailers-Only)."""
    fields: list[tuple[str | bytes, str | bytes]] = [("grpc-status", str(int(code)))]
    if message:
        fields.append(("grpc-message", encode_grpc_message(message)))
    if details:
        fields.append(("grpc-status-details-bin", encode_binary(details)))
    fields.extend(encode_metadata(metadata))
    return fields


async def refuse(stream: HTTPStream, error: GRPCError) -> None:
    """Answer a call refused before it started (unknown method, bad headers): Trailers-Only."""
    fields = status_headers(error.code, error.message, error.details, error.trailers)
    stream.outcome = error.code.name
    await stream.send_headers(200, [("content-type", "application/grpc"), *fields], end_stream=True)


def check_encoding(name: str) -> None:
    """Raise UNIMPLEMENTED for a ``grpc-encoding`` this side cannot decode."""
    if name not in SUPPORTED_ENCODINGS:
        raise GRPCError(
            StatusCode.UNIMPLEMENTED,
            f"grpc-encoding {name!r} is not supported",
            trailers=[("grpc-accept-encoding", _ACCEPT)],
        )


class _Requests:
    """The request stream of a client-streaming call, as an async iterator.

    A class rather than an async generator: a generator abandoned half-way by a handler
    (or by cancellation) would be finalized later, outside the call's cancel scope.
    """

    def __init__(self, call: ServerCall) -> None:
        self._call = call

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Message:
        message = await self._call._next_request()
        if message is None:
            raise StopAsyncIteration
        return message
