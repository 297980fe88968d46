"""The gRPC client: a ``Channel`` to one server, and the calls made on it.

Theory of operation
-------------------
A channel lives inside ``async with open_channel(host, port) as channel:``; the block
owns a nursery in which the channel keeps at most one HTTP/2 connection (netkit's own
``H2ClientConnection``). Calls are streams multiplexed on that connection. When the
connection drops or the server sends GOAWAY, the next call opens a new one; failed
connection attempts back off exponentially (with jitter, as grpcio's connection
backoff does) so a dead server is not hammered. Leaving the block cancels everything:
no task outlives the channel.

A call is an async context manager (``async with channel.call(...) as call``). Leaving
the block before the call has ended resets its stream (RST_STREAM CANCEL), which is how
the server learns that the client gave up; nothing keeps running after the block.
Deadlines are sent as ``grpc-timeout`` and also enforced here: past the deadline, the
call is reset and raises DEADLINE_EXCEEDED whatever the server does.
"""

from __future__ import annotations

import importlib
import math
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar, cast

import attrs
import trio
from google.protobuf.message import Message

from ..errors import ConnectionClosed, NetkitError, StreamReset
from ..http import ClientStream, H2ClientConnection, Headers
from ..observe._context import outbound_headers
from ..wire import (
    StatusCode,
    content_type_is_grpc,
    decode_binary,
    decode_grpc_message,
    decode_metadata,
    encode_message,
    encode_metadata,
    encode_timeout,
    status_from_http,
    status_from_rst_stream,
)
from ..wire import compress as compress_payload
from ._errors import GRPCError, Metadata, MetadataValue
from ._messages import MessageReader
from ._server_call import SUPPORTED_ENCODINGS

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

_USER_AGENT = "netkit-grpc/0.1"


@attrs.frozen
class ChannelConfig:
    """Limits and timing of a channel (defaults follow grpcio where it has one)."""

    max_receive_message_size: int = attrs.field(
        default=4 * 1024 * 1024, validator=attrs.validators.gt(0)
    )
    max_send_message_size: int = attrs.field(default=2**31 - 1, validator=attrs.validators.gt(0))
    #: Connection backoff: first delay, multiplier, cap and jitter (grpcio: 1 s, 1.6, 120 s, 0.2).
    backoff_initial: float = 1.0
    backoff_multiplier: float = 1.6
    backoff_max: float = 120.0
    backoff_jitter: float = 0.2
    #: Give up connecting after this long (the call fails with UNAVAILABLE).
    connect_timeout: float = 20.0
    #: Compression for request messages ("identity", "gzip" or "deflate").
    compression: str = "identity"


class Channel:
    """A connection (kept, and re-made when it drops) to one gRPC server."""

    def __init__(
        self,
        nursery: trio.Nursery,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        config: ChannelConfig | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        transport: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        self.host = host
        #: Opens the byte stream of each new connection instead of TCP to host:port (the
        #: seam that ``netkit.testing`` uses to run a channel over in-memory streams).
        self._transport = transport
        self.interceptors = list(interceptors)
        self.port = port
        self.config = config or ChannelConfig()
        self._nursery = nursery
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._conn: H2ClientConnection | None = None
        self._conn_done: trio.Event | None = None
        self._lock = trio.Lock()
        self._failures = 0
        self._next_attempt = -math.inf
        self._closed = False
        self.authority = f"{host}:{port}"

    async def _connection(self) -> H2ClientConnection:
        """The live connection, opening one (after the backoff delay) if needed."""
        conn = self._conn
        if conn is not None and conn.is_usable:
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and conn.is_usable:
                return conn
            if self._closed:
                raise GRPCError(StatusCode.UNAVAILABLE, "channel is closed")
            if self._conn_done is not None:
                self._conn_done.set()  # let the old connection's task close it
            await trio.sleep_until(max(self._next_attempt, trio.current_time()))
            try:
                with trio.fail_after(self.config.connect_timeout):
                    started: H2ClientConnection = await self._nursery.start(self._keep_connection)
                    conn = started
            except (OSError, trio.TooSlowError, NetkitError, ssl.SSLError) as exc:
                self._failures += 1
                delay = min(
                    self.config.backoff_initial
                    * self.config.backoff_multiplier ** (self._failures - 1),
                    self.config.backoff_max,
                )
                jitter = delay * self.config.backoff_jitter
                self._next_attempt = trio.current_time() + delay + random.uniform(-jitter, jitter)
                raise GRPCError(
                    StatusCode.UNAVAILABLE, f"cannot connect to {self.authority}: {exc}"
                ) from exc
            self._failures = 0
            self._next_attempt = -math.inf
            assert conn is not None
            self._conn = conn
            return conn

    async def _keep_connection(
        self, task_status: trio.TaskStatus[H2ClientConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        done = self._conn_done = trio.Event()
        async with self._open_connection() as conn:
            task_status.started(conn)
            # Held open until a newer connection replaces it or the channel closes,
            # then until the calls still running on it have finished (after a GOAWAY
            # they may; the channel's own closing cancels them instead).
            await done.wait()
            await conn.wait_idle()

    def _open_connection(self) -> AbstractAsyncContextManager[H2ClientConnection]:
        if self._transport is not None:
            return _over_transport(self._transport, self.authority)
        return H2ClientConnection.connect(
            self.host,
            self.port,
            ssl_context=self._ssl_context,
            server_hostname=self._server_hostname,
        )

    async def aclose(self) -> None:
        self._closed = True
        if self._conn_done is not None:
            self._conn_done.set()
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def call(
        self,
        path: str,
        request_type: type[Req],
        response_type: type[Resp],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
        compression: str | None = None,
    ) -> AsyncIterator[ClientCall[Req, Resp]]:
        """Open a call: ``async with channel.call(path, Req, Resp) as call:``."""
        info = CallInfo(path=path, metadata=list(metadata), timeout=timeout)
        for interceptor in self.interceptors:
            await interceptor.before(info)
        timeout = info.timeout
        deadline = trio.current_time() + timeout if timeout is not None else math.inf
        call: ClientCall[Req, Resp] = ClientCall(
            self, path, request_type, response_type, deadline, compression
        )
        error: BaseException | None = None
        try:
            with trio.move_on_at(deadline) as scope:
                call._deadline_scope = scope
                try:
                    await call._start(info.metadata, timeout)
                    yield call
                finally:
                    call._finish()
            if scope.cancelled_caught:
                call._deadline_passed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = call.code
            if code is None and isinstance(error, GRPCError):
                code = error.code
            for interceptor in reversed(self.interceptors):
                interceptor.after(info, code, error)


@attrs.define
class CallInfo:
    """A call as client interceptors see it; ``before`` may change metadata and timeout."""

    path: str
    metadata: list[tuple[str, MetadataValue]]
    timeout: float | None


class ClientInterceptor:
    """Runs around every call of a channel: auth headers, logging, metrics.

    ``before`` runs before the call starts and may add metadata, change the timeout, or
    refuse the call by raising :class:`GRPCError`; ``after`` sees how it ended (the
    status code, None if the call was abandoned before it had one, and the exception
    that left the call's block, if any). Both default to doing nothing.
    """

    async def before(self, info: CallInfo) -> None:
        await trio.lowlevel.checkpoint()

    def after(self, info: CallInfo, code: StatusCode | None, error: BaseException | None) -> None:
        return None


class ClientCall(Generic[Req, Resp]):
    """One call in progress: send requests, half-close, receive responses and status."""

    def __init__(
        self,
        channel: Channel,
        path: str,
        request_type: type[Req],
        response_type: type[Resp],
        deadline: float,
        compression: str | None,
    ) -> None:
        self.channel = channel
        self.path = path
        self.request_type = request_type
        self.response_type = response_type
        self.deadline = deadline
        self._encoding = compression or channel.config.compression
        self._stream: ClientStream | None = None
        self._reader = MessageReader(
            response_type, channel.config.max_receive_message_size, "response"
        )
        self._ended_sending = False
        self._ended_receiving = False
        self._headers_received = False
        #: The server's initial metadata, once received.
        self.initial_metadata: list[tuple[str, MetadataValue]] | None = None
        #: The server's trailing metadata, once the call has ended.
        self.trailing_metadata: list[tuple[str, MetadataValue]] | None = None
        #: The final status code, once known.
        self.code: StatusCode | None = None
        self._error: GRPCError | None = None
        self._deadline_scope: trio.CancelScope | None = None
        #: Whether the last response message received was compressed (its flag bit).
        self.last_response_compressed = False

    # -- opening and closing ------------------------------------------------------------
    async def _start(self, metadata: Metadata, timeout: float | None) -> None:
        headers: list[tuple[str | bytes, str | bytes]] = [("te", "trailers")]
        if timeout is not None:
            headers.append(("grpc-timeout", encode_timeout(max(timeout, 0.0))))
        headers.append(("content-type", "application/grpc"))
        if self._encoding != "identity":
            headers.append(("grpc-encoding", self._encoding))
        headers.append(("grpc-accept-encoding", ",".join(SUPPORTED_ENCODINGS)))
        headers.append(("user-agent", _USER_AGENT))
        headers.extend(encode_metadata(metadata))
        if not any(name == "traceparent" for name, _ in metadata):
            headers.extend(outbound_headers())  # W3C trace context (netkit.observe)
        conn = await self.channel._connection()
        try:
            self._stream = await conn.open_stream("POST", self.path, headers)
        except (ConnectionClosed, StreamReset) as exc:
            raise GRPCError(StatusCode.UNAVAILABLE, f"cannot start the call: {exc}") from exc

    def _finish(self) -> None:
        """Leaving the call's block: reset the stream if the call has not ended."""
        stream = self._stream
        if stream is not None and self.code is None:
            stream.abandon()

    def _deadline_passed(self) -> None:
        if self.code is not None:
            return  # the status came first (a tie with the deadline): it stands
        self.code = StatusCode.DEADLINE_EXCEEDED
        raise GRPCError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    def _settled(self) -> None:
        """The call has its status: the deadline can no longer change the outcome."""
        if self._deadline_scope is not None:
            self._deadline_scope.deadline = math.inf

    async def cancel(self) -> None:
        """Give up the call: RST_STREAM(CANCEL); later operations raise CANCELLED.

        A call that already has its status is over: cancelling it changes nothing (as
        in grpcio).
        """
        if self.code is not None:
            await trio.lowlevel.checkpoint()
            return
        if self._stream is not None:
            self._stream.abandon()
        self.code = StatusCode.CANCELLED
        self._settled()
        self._error = GRPCError(StatusCode.CANCELLED, "cancelled by the client")
        await trio.lowlevel.checkpoint()

    # -- sending ------------------------------------------------------------------------
    async def send_message(
        self, message: Req, *, end: bool = False, compress: bool | None = None
    ) -> None:
        """Send one request; ``end=True`` also half-closes (no more requests).

        ``compress=False`` sends this message uncompressed although the call has an
        encoding (the flag is per message); ``True`` insists on compression.
        """
        stream = self._require_stream()
        payload = message.SerializeToString()
        if len(payload) > self.channel.config.max_send_message_size:
            raise GRPCError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"request of {len(payload)} bytes exceeds the limit",
            )
        if compress and self._encoding == "identity":
            raise GRPCError(StatusCode.INTERNAL, "compress=True on a call without compression")
        compressed = self._encoding != "identity" and compress is not False
        if compressed:
            payload = compress_payload(payload, self._encoding)
        try:
            await stream.send_data(encode_message(payload, compressed=compressed), end_stream=end)
        except (StreamReset, ConnectionClosed) as exc:
            if self._server_done_reading(exc):
                return
            self._fail_from_transport(exc)
        if end:
            self._ended_sending = True

    async def end(self) -> None:
        """Half-close: the server will get no more requests."""
        if self._ended_sending:
            return
        self._ended_sending = True
        try:
            await self._require_stream().end()
        except (StreamReset, ConnectionClosed) as exc:
            if self._server_done_reading(exc):
                return
            self._fail_from_transport(exc)

    # -- receiving ----------------------------------------------------------------------
    async def recv_initial_metadata(self) -> list[tuple[str, MetadataValue]]:
        """The server's response headers (waits for them)."""
        if self.initial_metadata is None:
            await self._receive_headers()
        assert self.initial_metadata is not None
        return self.initial_metadata

    async def recv_message(self) -> Resp | None:
        """The next response, or None at the end (then the status was OK).

        A status other than OK raises :class:`GRPCError`.
        """
        if self._error is not None:
            raise self._error
        if not self._headers_received:
            await self._receive_headers()
        stream = self._require_stream()
        reader = self._reader
        try:
            while not reader.ready:
                if self._ended_receiving:
                    return None
                try:
                    chunk = await stream.receive_data()
                except (StreamReset, ConnectionClosed) as exc:
                    self._fail_from_transport(exc)
                if not chunk:
                    self._ended_receiving = True
                    reader.end()
                    self._take_status(stream.trailers)
                    continue
                reader.feed(chunk)
            message = reader.take()
        except GRPCError as exc:
            if exc is self._error:
                raise  # the status the server sent, or the transport's failure
            self._abandon(exc)  # our verdict on the server's bytes: reset the stream
        self.last_response_compressed = reader.last_compressed
        return cast(Resp, message)

    def __aiter__(self) -> ClientCall[Req, Resp]:
        return self

    async def __anext__(self) -> Resp:
        message = await self.recv_message()
        if message is None:
            raise StopAsyncIteration
        return message

    async def wait_status(self) -> None:
        """Read to the end of the call (discarding responses); raise if it failed."""
        while await self.recv_message() is not None:
            pass

    # -- internals ----------------------------------------------------------------------
    def _require_stream(self) -> ClientStream:
        if self._error is not None:
            raise self._error
        assert self._stream is not None, "call not started"
        return self._stream

    async def _receive_headers(self) -> None:
        stream = self._require_stream()
        try:
            status, headers = await stream.receive_headers()
        except (StreamReset, ConnectionClosed) as exc:
            self._fail_from_transport(exc)
        self._headers_received = True
        self.initial_metadata = decode_metadata(headers.raw())
        if "grpc-status" in headers:  # Trailers-Only
            self._ended_receiving = True
            self._take_status(headers)
            return
        if status != 200:
            self._abandon(GRPCError(status_from_http(status), f"HTTP status {status}"))
        if not content_type_is_grpc(headers.get("content-type")):
            self._abandon(
                GRPCError(StatusCode.UNKNOWN, f"content-type {headers.get('content-type')!r}")
            )
        self._reader.encoding = headers.get("grpc-encoding") or "identity"

    def _take_status(self, trailers: Headers | None) -> None:
        """The call ended: read grpc-status from the trailers; raise unless OK."""
        if trailers is None or "grpc-status" not in trailers:
            self._raise(GRPCError(StatusCode.INTERNAL, "the server sent no grpc-status"))
        assert trailers is not None
        raw = trailers.get("grpc-status") or ""
        try:
            code = StatusCode(int(raw))
        except ValueError:
            code = StatusCode.UNKNOWN
        message = decode_grpc_message(trailers.get("grpc-message") or "")
        details_raw = trailers.get("grpc-status-details-bin")
        details = decode_binary(details_raw) if details_raw else None
        self.trailing_metadata = decode_metadata(trailers.raw())
        self.code = code
        self._settled()
        if code != StatusCode.OK:
            self._raise(GRPCError(code, message, details, self.trailing_metadata))

    def _server_done_reading(self, exc: StreamReset | ConnectionClosed) -> bool:
        """RST_STREAM(NO_ERROR): the server answered and needs no more of the request.

        RFC 9113 §8.1 lets a server end its response early and reset the request side
        with NO_ERROR (grpcio does so for unknown methods); the response, with its
        status, is still to be read, so sending just stops.
        """
        if isinstance(exc, StreamReset) and exc.error_code == 0:
            self._ended_sending = True
            return True
        return False

    def _fail_from_transport(self, exc: StreamReset | ConnectionClosed) -> Any:
        """The stream was reset or the connection dropped: map to a status and raise."""
        if isinstance(exc, StreamReset):
            code = status_from_rst_stream(exc.error_code)
            self._raise(GRPCError(code, f"stream reset by the server (code {exc.error_code})"))
        self._raise(GRPCError(StatusCode.UNAVAILABLE, f"connection lost: {exc}"))

    def _abandon(self, error: GRPCError) -> Any:
        """A local error about the server's response: reset the stream and raise."""
        if self._stream is not None and self.code is None:
            self._stream.abandon()
        self._raise(error)

    def _raise(self, error: GRPCError) -> Any:
        if self.code is None:
            self.code = error.code
        self._settled()
        self._error = error
        raise error


#: Balanced targets (``registry://HOST:PORT/SERVICE``, ``static://H1:P1,H2:P2``, a list
#: of ``host:port``) are opened by the balancing layer, which sits above this one: it is
#: loaded by name on first use, so the gRPC layer does not depend on it.
BALANCED_TARGETS_MODULE = "netkit.balance"


@asynccontextmanager
async def _over_transport(
    transport: Callable[[], Awaitable[trio.abc.Stream]], authority: str
) -> AsyncIterator[H2ClientConnection]:
    stream = await transport()
    async with H2ClientConnection.over(stream, authority=authority) as conn:
        yield conn


@asynccontextmanager
async def open_channel(
    host: str | Sequence[str],
    port: int | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    config: ChannelConfig | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
    transport: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> AsyncIterator[Channel]:
    """``async with open_channel("127.0.0.1", 50051) as channel:``; closes all on exit.

    Without a port, ``host`` is a balanced target, e.g. ``"registry://10.0.0.5:7000/orders"``
    or ``["10.0.0.1:50051", "10.0.0.2:50051"]``: calls are spread over its backends
    (docs/balancer.md, client-side balancing).
    """
    if port is None:
        balance = importlib.import_module(BALANCED_TARGETS_MODULE)
        async with balance.open_balanced_channel(
            host,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            config=config,
            interceptors=interceptors,
        ) as balanced:
            yield balanced
        return
    assert isinstance(host, str), "a list of backends is a balanced target: give no port"
    async with trio.open_nursery() as nursery:
        channel = Channel(
            nursery,
            host,
            port,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            config=config,
            interceptors=interceptors,
            transport=transport,
        )
        try:
            yield channel
        finally:
            await channel.aclose()
            nursery.cancel_scope.cancel()
