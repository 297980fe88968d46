"""HTTP/2 client: concurrent requests multiplexed on one connection; a thin trio loop around h2.

Theory of operation
-------------------
This is the server driver (``_h2.py``) seen from the other end, with the same shape and
the same promises. A connection runs, in a nursery that lives exactly as long as the
``async with H2ClientConnection.connect(...)`` block:

* the **read loop** reads bytes, feeds h2 and acts on the events *synchronously*: it
  appends body chunks to the stream's buffer, records heads and trailers, and wakes the
  tasks waiting on them. It never awaits anything that belongs to one stream, so a
  caller that stops reading one response cannot stall the others;
* the **writer**, the only task that writes to the transport. Everyone else moves h2's
  output into ``_outbuf`` (``_queue()``) and wakes it, so frames produced in the same
  scheduling round leave in one ``send_all``; every write is bounded by ``write_timeout``;
* optionally the **keepalive** task, which PINGs a silent connection and closes it when
  the ACK does not come back.

Callers drive streams from their own tasks: ``open_stream`` sends HEADERS and returns a
:class:`ClientStream`; its methods wait on events the read loop sets.

Memory is bounded without waiting on streams:

* response bodies: a stream's buffer can never exceed its receive window (h2 raises
  FLOW_CONTROL_ERROR on a server that overruns it), and the window is reopened only as
  the caller consumes the body (``receive_data`` acknowledges a chunk as it hands it
  out). The connection window is sized to ``max_concurrent_streams`` stream windows, and
  a stream keeps its concurrency slot until its buffer is drained or dropped, so unread
  data can never close the connection window for the other streams;
* request bodies: ``send_data`` waits for the server's stream *and* connection windows
  and splits at the server's frame size instead of buffering; the read loop stops
  reading while ``_outbuf`` is above a high-water mark, so a server that floods us with
  PINGs but does not read the ACKs is simply not read.

Failure is always delivered to the streams, never lost: a RST_STREAM from the server
fails that stream with :class:`~netkit.errors.StreamReset`; a dying connection fails
every stream with :class:`~netkit.errors.ConnectionClosed`. A stream whose response
already arrived complete stays readable in both cases.

What h2 does not do for a client, and what we do:

* GOAWAY: h2 moves its state machine to CLOSED on *any* GOAWAY and drops pending output,
  so the streams the server promised to finish could not even be read. For NO_ERROR
  ``_ClientProtocol`` restores the state (as the server does for client GOAWAYs); the
  streams above ``last_stream_id`` fail with ``StreamReset(REFUSED_STREAM)``, which the
  server guarantees were not processed (safe to retry), and new streams are refused
  locally with ``ConnectionClosed``.
* Malformed responses (RFC 9113 §8.1.1) are *stream* errors, but h2 raises them as
  connection errors. ``_ClientProtocol`` decodes the header block itself (so HPACK state
  advances exactly once), validates it with h2's own validator, and on failure resets
  just that stream with PROTOCOL_ERROR; the caller sees
  :class:`~netkit.errors.RemoteProtocolError`. A body that contradicts content-length
  is treated the same way.
* SETTINGS_MAX_CONCURRENT_STREAMS: h2 raises when it is reached; ``open_stream`` waits
  for a slot instead. It also waits for the server's first SETTINGS before the first
  stream (``connect`` does that), so a burst of requests on a new connection respects a
  limit the server has not had time to announce yet.
* Encoded header blocks are bounded (h2 only bounds the number of CONTINUATION frames).
* Cancellation: ``async with conn.stream(...)`` resets an unfinished stream on exit
  *synchronously* (``h2.reset_stream`` and a wake of the writer, no await), so it works
  even in a cancelled scope and never leaves a stream half-open on the server.
* REFUSED_STREAM: a refused stream was not processed (RFC 9113 §8.7), so ``request()``,
  which holds the whole request, retries it a few times with a short backoff. Servers
  refuse legitimately even when the client respects their limit: netkit's own server
  keeps a reset stream's slot until its handler has wound down (rapid-reset defence).

Closing: leaving the ``async with`` block (or ``aclose()``) queues GOAWAY(NO_ERROR),
fails the streams still open with ConnectionClosed, lets the writer flush for up to
``_CLOSE_GRACE`` seconds and closes the transport. If the block is left by cancellation
the writer is cancelled too; the GOAWAY is then written directly, shielded and briefly,
but only if no write was interrupted half-way (that would corrupt the framing).
"""

from __future__ import annotations

import functools
import itertools
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import attrs
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.utilities
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame, HeadersFrame

from ..errors import (
    ConnectionClosed,
    LocalProtocolError,
    NetkitError,
    RemoteProtocolError,
    StreamReset,
)
from ._client_config import ClientConfig
from ._direct import DirectIO
from ._h2_common import H2Protocol, prepare_outbound, take_chunks
from ._h2_headers import MalformedHeaders, check_response
from ._h2_settings import CompactSettings
from ._headers import HeaderPair, Headers, HeadersLike, normalize

_READ_SIZE = 64 * 1024
_OUT_HIGH_WATER = 256 * 1024
_DEFAULT_WINDOW = 65535
_MAX_WINDOW = 2**31 - 1
#: How long the last frames (GOAWAY, RST_STREAM) get to leave when the connection ends.
_CLOSE_GRACE = 1.0
#: Attempts ``request()`` makes when the server refuses the stream (REFUSED_STREAM).
_REFUSED_ATTEMPTS = 5

T = TypeVar("T")

#: Builds the exception a failed stream or connection raises. A fresh instance per raise:
#: one exception object raised in many tasks would collect all their tracebacks.
Failure = Callable[[], NetkitError]

#: Shared by every client connection: h2 only reads it.
_H2_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    # Response heads and trailers are checked once, by _ClientProtocol, in one pass
    # (_h2_headers.check_response); a malformed one resets only its own stream.
    validate_inbound_headers=False,
    # Normalized and validated before h2 sees them (prepare_outbound): see _h2_common.
    normalize_outbound_headers=False,
    validate_outbound_headers=False,
)


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"


def _closed(detail: str, cause: BaseException | None = None) -> Failure:
    def make() -> NetkitError:
        exc = ConnectionClosed(detail)
        exc.__cause__ = cause
        return exc

    return make


@attrs.frozen
class GoAway:
    """What the server's GOAWAY said: streams above ``last_stream_id`` were not processed."""

    last_stream_id: int
    error_code: int
    additional_data: bytes = b""


# -- the sans-I/O side: h2 plus what a client needs ----------------------------------


class _Predecoded:
    """Stands in for h2's HPACK decoder with a header list we already decoded.

    HPACK decoding changes the decoder's dynamic table, so a block must be decoded
    exactly once; we decode it first to validate it, then let h2 process it as usual.
    """

    def __init__(self, headers: list[Any]) -> None:
        self.headers = headers

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        return self.headers


def _malformed_reason(headers: list[Any], is_trailer: bool) -> str | None:
    """Why a response head/trailer block is malformed (RFC 9113 §8.1.1), or None."""
    try:
        check_response(headers, is_trailer=is_trailer)
    except MalformedHeaders as exc:
        return str(exc)
    if not is_trailer:
        status = next((value for name, value in headers if name == b":status"), b"")
        if not (len(status) == 3 and status.isdigit() and status[:1] != b"0"):
            return f"invalid :status {status!r}"
    return None


class _ClientProtocol(H2Protocol):
    """h2's client connection plus graceful GOAWAY, stream-level malformed responses and
    a bound on encoded header blocks (see the module docstring)."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(_H2_CONFIG, config.max_header_list_size)
        codes = h2.settings.SettingCodes
        self.remote_settings = CompactSettings(client=False)
        self.local_settings = CompactSettings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.INITIAL_WINDOW_SIZE: config.initial_window_size,
                codes.MAX_FRAME_SIZE: config.max_frame_size,
                codes.MAX_HEADER_LIST_SIZE: config.max_header_list_size,
            },
        )
        self.max_inbound_frame_size = config.max_frame_size
        self.decoder.max_header_list_size = config.max_header_list_size
        #: Streams we reset because the server's response was malformed, and why
        #: (read by the driver when h2 reports the reset).
        self.malformed: dict[int, str] = {}

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[Frame], list[Any]]:
        if len(frame.data) > self.max_header_block:
            raise h2.exceptions.DenialOfServiceError(
                f"header block of {len(frame.data)} bytes exceeds {self.max_header_block}"
            )
        stream = self.streams.get(frame.stream_id)
        if stream is None or stream.closed:
            return super()._receive_headers_frame(frame)  # h2's own rules for those
        # HPACK errors stay connection errors: the shared table can no longer be trusted.
        headers = list(h2.connection._decode_headers(self.decoder, frame.data))
        is_trailer = bool(stream.state_machine.headers_received)
        reason = _malformed_reason(headers, is_trailer)
        if reason is not None:
            kind = "trailers" if is_trailer else "response head"
            return self._reset_malformed(frame.stream_id, f"malformed {kind}: {reason}")
        decoder = self.decoder
        self.decoder = _Predecoded(headers)  # type: ignore[assignment]
        try:
            return super()._receive_headers_frame(frame)
        finally:
            self.decoder = decoder

    def _receive_data_frame(self, frame: DataFrame) -> tuple[list[Frame], list[Any]]:
        try:
            return super()._receive_data_frame(frame)
        except h2.exceptions.InvalidBodyLengthError as exc:
            # h2 counted the frame against both windows already; nobody will read it.
            frames, events = self._reset_malformed(frame.stream_id, f"malformed body: {exc}")
            self.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return frames, events

    def _reset_malformed(self, stream_id: int, reason: str) -> tuple[list[Frame], list[Any]]:
        """A stream error (RFC 9113 §8.1.1): reset this stream, keep the connection."""
        self.malformed[stream_id] = reason
        frames: list[Frame] = list(self.streams[stream_id].reset_stream(ErrorCodes.PROTOCOL_ERROR))
        event = h2.events.StreamReset(
            stream_id=stream_id, error_code=ErrorCodes.PROTOCOL_ERROR, remote_reset=False
        )
        return frames, [event]


# -- streams -----------------------------------------------------------------------------


class ClientStream:
    """One request/response exchange on an :class:`H2ClientConnection`.

    The request side (``send_data``, ``end``, ``send_trailers``) and the response side
    (``receive_headers``, ``receive_data``, iteration, ``read_body``) are independent, so
    a bidirectional call can send from one task while another receives; each side is
    meant for one task at a time.

    A stream holds one of the connection's concurrency slots until it is finished: both
    sides ended and the body read to the end, or reset. Prefer
    ``async with conn.stream(...)``, which resets and frees an unfinished stream on exit;
    a stream from ``open_stream`` must be read to the end or ``reset()``.
    """

    def __init__(self, conn: H2ClientConnection, stream_id: int, *, ended_locally: bool) -> None:
        self.stream_id = stream_id
        self._conn = conn
        #: Received body chunks with their flow-controlled length (padding included),
        #: acknowledged to h2 only as the caller takes them.
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._status: int | None = None
        self._headers: Headers | None = None
        #: Response trailers, once the stream ended with them.
        self.trailers: Headers | None = None
        self._ended = False  # the server's END_STREAM arrived
        self._sent_end = ended_locally  # our END_STREAM was queued
        self._recv_failure: Failure | None = None
        self._send_failure: Failure | None = None
        self._readable = trio.Event()
        self._writable = trio.Event()

    def __repr__(self) -> str:
        return f"<ClientStream {self.stream_id} status={self._status}>"

    # -- called synchronously by the read loop (and by the connection) ----------------
    def _on_head(self, headers: Iterable[HeaderPair]) -> None:
        regular: list[HeaderPair] = []
        for name, value in headers:
            if name == b":status":
                self._status = int(value)  # validated by _ClientProtocol
            elif not name.startswith(b":"):
                regular.append((name, value))
        self._headers = Headers(regular)
        self._readable.set()

    def _feed(self, data: bytes, flow_len: int) -> None:
        self._chunks.append((data, flow_len))
        self._readable.set()

    def _on_end(self) -> None:
        self._ended = True
        self._readable.set()
        self._maybe_release()

    def _fail(self, failure: Failure, *, both: bool = False) -> None:
        """The stream cannot go on: pending and later calls raise ``failure()``.

        A response that already arrived complete stays readable: only the request side
        fails then (RFC 9113 §8.1: a server may reset after a complete response), unless
        ``both`` (we abandoned it: a later read must not look like a clean end).
        """
        if self._send_failure is None:
            self._send_failure = failure
        if (both or not self._ended) and self._recv_failure is None:
            self._recv_failure = failure
            self._drop_buffer()
        self._readable.set()
        self._writable.set()
        self._maybe_release()

    def _wake_writer(self) -> None:
        self._writable.set()

    def _drop_buffer(self) -> None:
        """Forget unread chunks, handing their share of the connection window back."""
        flow = sum(n for _, n in self._chunks)
        self._chunks.clear()
        self._conn._acknowledge(self.stream_id, flow)

    @property
    def _finished(self) -> bool:
        local = self._sent_end or self._send_failure is not None
        remote = (self._ended and not self._chunks) or self._recv_failure is not None
        return local and remote

    def _maybe_release(self) -> None:
        if self._finished:
            self._conn._release(self)

    def _abandon(self) -> None:
        """The caller is done with the stream (``stream()``'s exit); synchronous.

        An unfinished exchange is reset with CANCEL so the server stops working on it;
        unread body bytes are dropped. No await: this runs in cancelled scopes too.
        """
        exchange_over = (self._sent_end and self._ended) or self._send_failure is not None
        if not exchange_over:
            self._conn._reset_now(self.stream_id, ErrorCodes.CANCEL)
        if not self._finished:
            abandoned = functools.partial(StreamReset, ErrorCodes.CANCEL, "stream was abandoned")
            self._fail(abandoned, both=True)
        self._conn._release(self)

    def abandon(self) -> None:
        """Done with this stream, finished or not: reset it if unfinished, free its slot.

        Synchronous on purpose (what ``stream()`` calls on exit), so a wrapper's own
        cleanup can call it from a cancelled scope; later calls on the stream raise
        StreamReset(CANCEL) unless it had finished.
        """
        self._abandon()

    # -- response ---------------------------------------------------------------------
    async def _wait_readable(self) -> None:
        self._readable = trio.Event()
        await self._readable.wait()

    async def receive_headers(self) -> tuple[int, Headers]:
        """The response status and headers (1xx informational responses are skipped).

        A head that arrived is returned even if the stream was reset right after it (in
        the same read, say): the reset then surfaces when the body is read.
        """
        # Each path checkpoints once: the wait does, and so does a head already here. (A
        # leading checkpoint would cost a proxy one more scheduling round per request.)
        if self._status is None or self._headers is None:
            await trio.lowlevel.checkpoint_if_cancelled()
            while self._status is None or self._headers is None:
                if self._recv_failure is not None:
                    raise self._recv_failure()
                await self._wait_readable()
        else:
            await trio.lowlevel.checkpoint()
        return self._status, self._headers

    async def receive_data(self) -> bytes:
        """The next body chunk, ``b""`` once the response has ended.

        The chunk's share of the flow-control windows is handed back as it is taken, so
        the server can send only as fast as this is called.
        """
        await trio.lowlevel.checkpoint()
        while True:
            if self._recv_failure is not None:
                raise self._recv_failure()
            while self._chunks:
                data, flow_len = self._chunks.popleft()
                self._conn._acknowledge(self.stream_id, flow_len)
                if data:  # a padding-only frame carries no bytes and must not look like EOF
                    self._maybe_release()
                    return data
            if self._ended:
                self._maybe_release()
                return b""
            await self._wait_readable()

    def take_complete_body(self) -> bytes | None:
        """The whole response body at once if the response has already ended, else None.

        For relays: a small response usually arrives in the same read as its head, and
        then it can be passed on in one step instead of chunk by chunk. Never waits; the
        body's share of the windows is handed back as with ``receive_data``. None when
        the response is still arriving or the stream failed (``receive_data`` then
        tells what happened).
        """
        if not self._ended or self._recv_failure is not None:
            return None
        body, flow = take_chunks(self._chunks)
        if flow:
            self._conn._acknowledge(self.stream_id, flow)
        self._maybe_release()
        return body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive_data():
            yield chunk

    async def read_body(self) -> bytes:
        """The rest of the response body (bounded by what the caller lets it be)."""
        return b"".join([chunk async for chunk in self])

    # -- request ----------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call h2 for this stream, mapping its errors onto netkit's tree."""
        if self._send_failure is not None:
            raise self._send_failure()
        try:
            return fn(*args, **kwargs)
        except h2.exceptions.StreamClosedError as exc:
            raise StreamReset(int(exc.error_code), "stream already closed") from exc
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc

    def _check_sendable(self) -> None:
        if self._send_failure is not None:
            raise self._send_failure()
        if self._sent_end:
            raise LocalProtocolError("the request has already ended")

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send request body bytes; returns once h2 has them and the writer is not behind.

        Waits for the server's stream and connection windows (never buffers past them)
        and splits at the server's maximum frame size. With ``end_stream`` the last frame
        carries END_STREAM.
        """
        self._check_sendable()
        h2c = self._conn._h2
        view = memoryview(data)
        while True:
            self._check_sendable()
            if not view:
                if end_stream:
                    self._call(h2c.end_stream, self.stream_id)
                    self._sent_end = True
                    self._maybe_release()
                await self._conn._queue_and_wait()
                return
            window = self._call(h2c.local_flow_control_window, self.stream_id)
            size = min(window, h2c.max_outbound_frame_size, len(view))
            if size <= 0:
                self._writable = trio.Event()
                await self._writable.wait()
                continue
            last = size == len(view)
            chunk = data if last and size == len(data) else bytes(view[:size])
            self._call(h2c.send_data, self.stream_id, chunk, end_stream=end_stream and last)
            view = view[size:]
            if last and end_stream:
                self._sent_end = True
                self._maybe_release()
            await self._conn._queue_and_wait()
            if last:
                return

    async def end(self) -> None:
        """Half-close: END_STREAM with no more data. Does nothing if already ended."""
        if self._sent_end and self._send_failure is None:
            await trio.lowlevel.checkpoint()
            return
        await self.send_data(b"", end_stream=True)

    async def send_trailers(self, headers: HeadersLike) -> None:
        """End the request with trailers (gRPC clients rarely need them; HTTP allows it)."""
        self._check_sendable()
        pairs = prepare_outbound(normalize(headers), client=True, is_trailer=True, what="trailers")
        self._call(self._conn._h2.send_headers, self.stream_id, pairs, end_stream=True)
        self._sent_end = True
        self._maybe_release()
        await self._conn._queue_and_wait()

    async def reset(self, code: int = ErrorCodes.CANCEL) -> None:
        """RST_STREAM: abandon the exchange; later calls on this stream raise StreamReset."""
        if not self._finished:
            self._conn._reset_now(self.stream_id, code)
            self._fail(
                functools.partial(StreamReset, int(code), "stream was reset by us"), both=True
            )
            self._conn._release(self)
        await trio.lowlevel.checkpoint()


# -- the connection ----------------------------------------------------------------------


def _authority(host: str, port: int, scheme: str) -> str:
    name = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return name if port == default else f"{name}:{port}"


def _only_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The single exception a group carries besides Cancelled, if it is alone."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else None


class H2ClientConnection(trio.abc.AsyncResource):
    """One HTTP/2 connection to a server; many concurrent streams multiplexed on it.

    Open it with ``async with H2ClientConnection.connect(host, port) as conn`` (or
    ``over(transport, authority=...)``): the connection's tasks live exactly as long as
    the block. Leaving the block sends GOAWAY(NO_ERROR) and cancels everything; streams
    still in use then fail with :class:`~netkit.errors.ConnectionClosed`.

    ``is_usable`` turns False for good after a GOAWAY, a close or a failure; a pool or a
    gRPC Channel then opens a new connection (streams already open may still finish).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        *,
        authority: str,
        scheme: str = "http",
        config: ClientConfig | None = None,
    ) -> None:
        """Internal: use :meth:`connect` or :meth:`over`, which run the connection."""
        self.config = config or ClientConfig()
        self.authority = authority
        self.scheme = scheme
        #: The server's GOAWAY, once one arrived.
        self.goaway_received: GoAway | None = None
        self._transport = transport
        #: Direct reads and writes when the transport is a plain TCP socket (_direct).
        self._io = DirectIO(transport)
        self._h2 = _ClientProtocol(self.config)
        #: Streams holding a concurrency slot (see ClientStream).
        self._streams: dict[int, ClientStream] = {}
        self._failure: Failure | None = None  # set when the connection can no longer be used
        self._closed = False  # aclose() began
        self._settings_received = False
        self._ready = trio.Event()  # the server's first SETTINGS arrived, or we failed
        self._run_done = trio.Event()
        self._outbuf = bytearray()
        self._sending = False  # a send_all is in progress (the transport is mid-write)
        self._write_broken = False
        self._writer_wake = trio.Event()
        self._drained = trio.lowlevel.ParkingLot()
        self._slots = trio.lowlevel.ParkingLot()
        self._io_scope: trio.CancelScope | None = None
        self._last_received = trio.current_time()
        self._ping_ids = itertools.count(1)
        self._ping_payload = b""
        self._ping_acked = trio.Event()

    # -- opening ----------------------------------------------------------------------
    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        config: ClientConfig | None = None,
    ) -> AsyncIterator[H2ClientConnection]:
        """Connect over TCP (and TLS with ALPN ``h2`` when ``ssl_context`` is given).

        TCP connect, TLS handshake and the server's first SETTINGS must complete within
        ``config.connect_timeout``; failures raise ConnectionClosed (the cause is kept in
        ``__cause__``), and a TLS server that does not select ``h2`` raises
        RemoteProtocolError. ALPN is set on ``ssl_context`` (as ``serve`` does on its own).
        """
        config = config or ClientConfig()
        deadline = trio.current_time() + config.connect_timeout
        scheme = "https" if ssl_context is not None else "http"
        transport = await _open_transport(host, port, ssl_context, server_hostname, deadline)
        async with cls._run_over(
            transport,
            authority=_authority(host, port, scheme),
            scheme=scheme,
            config=config,
            deadline=deadline,
        ) as conn:
            yield conn

    @classmethod
    @asynccontextmanager
    async def over(
        cls,
        transport: trio.abc.Stream,
        *,
        authority: str,
        scheme: str = "http",
        config: ClientConfig | None = None,
    ) -> AsyncIterator[H2ClientConnection]:
        """Speak HTTP/2 (prior knowledge) over an existing stream; closes it on exit."""
        config = config or ClientConfig()
        deadline = trio.current_time() + config.connect_timeout
        async with cls._run_over(
            transport, authority=authority, scheme=scheme, config=config, deadline=deadline
        ) as conn:
            yield conn

    @classmethod
    @asynccontextmanager
    async def _run_over(
        cls,
        transport: trio.abc.Stream,
        *,
        authority: str,
        scheme: str,
        config: ClientConfig,
        deadline: float,
    ) -> AsyncIterator[H2ClientConnection]:
        conn = cls(transport, authority=authority, scheme=scheme, config=config)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await nursery.start(conn._run, deadline)
                    yield conn
                finally:
                    await conn.aclose()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The connection's tasks never raise (their failures reach the streams), so
            # a lone exception here is the caller's own: hand it back unwrapped.
            single = _only_error(group)
            if single is None:
                raise
            context = single.__context__
            try:
                raise single  # the same object: contextlib then re-raises the caller's own
            finally:
                single.__context__ = context

    # -- state ----------------------------------------------------------------------
    @property
    def is_usable(self) -> bool:
        """Whether new streams can be opened (False after GOAWAY, close or failure)."""
        return self._failure is None and not self._closed and self.goaway_received is None

    @property
    def open_stream_count(self) -> int:
        """Streams holding a concurrency slot right now."""
        return len(self._streams)

    async def wait_idle(self) -> None:
        """Wait until no stream holds a slot (or the connection has failed).

        For retiring a connection gracefully: after a GOAWAY, the streams already open
        finish before the connection is closed.
        """
        await trio.lowlevel.checkpoint()
        while self._streams and self._failure is None:
            await self._slots.park()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure()
        if self._closed:
            raise ConnectionClosed("the connection was closed by the client")
        if self.goaway_received is not None:
            raise ConnectionClosed(
                "the server sent GOAWAY: no new streams on this connection "
                f"(last_stream_id={self.goaway_received.last_stream_id}, "
                f"{_code_name(self.goaway_received.error_code)})"
            )

    def _stream_limit(self) -> int:
        return min(
            self.config.max_concurrent_streams, self._h2.remote_settings.max_concurrent_streams
        )

    # -- streams ------------------------------------------------------------------------
    async def open_stream(
        self,
        method: str,
        path: str,
        headers: HeadersLike = (),
        *,
        end_stream: bool = False,
    ) -> ClientStream:
        """Send a request head and return its stream.

        Waits (does not fail) while the concurrency limit is reached; raises
        ConnectionClosed if the connection is gone or the server sent GOAWAY.
        ``headers`` may include extra pseudo-headers (``:protocol``) or override ours.
        """
        await trio.lowlevel.checkpoint_if_cancelled()  # the schedule point: _queue_and_wait
        while True:
            self._check_usable()
            if len(self._streams) < self._stream_limit():
                break
            await self._slots.park()
        head = prepare_outbound(
            self._request_head(method, path, headers),
            client=True,
            is_trailer=False,
            what="request head",
        )
        try:
            stream_id = self._h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError as exc:
            self._fail(_closed("stream ids are exhausted on this connection", exc))
            raise ConnectionClosed("stream ids are exhausted on this connection") from exc
        try:
            self._h2.send_headers(stream_id, head, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            # h2 already created the stream (idle, never cleaned up): forget it.
            self._h2.streams.pop(stream_id, None)
            raise LocalProtocolError(f"cannot send the request head: {exc}") from exc
        stream = ClientStream(self, stream_id, ended_locally=end_stream)
        self._streams[stream_id] = stream
        try:
            await self._queue_and_wait()
        except BaseException:
            stream._abandon()  # the caller never gets the stream: don't leak the slot
            raise
        return stream

    def _request_head(self, method: str, path: str, headers: HeadersLike) -> list[HeaderPair]:
        pseudo: dict[bytes, bytes] = {
            b":method": method.encode("ascii"),
            b":scheme": self.scheme.encode("ascii"),
            b":path": path.encode("latin-1"),
            b":authority": self.authority.encode("latin-1"),
        }
        regular: list[HeaderPair] = []
        for name, value in normalize(headers):
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                regular.append((name, value))
        return [*pseudo.items(), *regular]

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        headers: HeadersLike = (),
        *,
        end_stream: bool = False,
    ) -> AsyncIterator[ClientStream]:
        """``open_stream`` for a block: on exit an unfinished stream is reset (CANCEL).

        The reset is synchronous, so it happens even when the block is left by
        cancellation; unread response bytes are dropped and the slot is freed.
        """
        stream = await self.open_stream(method, path, headers, end_stream=end_stream)
        try:
            yield stream
        finally:
            stream._abandon()

    async def request(
        self, method: str, path: str, headers: HeadersLike = (), body: bytes = b""
    ) -> tuple[int, Headers, bytes]:
        """One complete exchange: ``(status, headers, body)``.

        A stream the server refuses with REFUSED_STREAM is retried a few times with a
        short backoff: RFC 9113 §8.7 guarantees it was not processed, the whole request
        is at hand, and servers refuse briefly while a reset stream's handler winds down.
        """
        for attempt in range(_REFUSED_ATTEMPTS):
            try:
                return await self._exchange(method, path, headers, body)
            except StreamReset as exc:
                if exc.error_code != ErrorCodes.REFUSED_STREAM or attempt + 1 == _REFUSED_ATTEMPTS:
                    raise
            await trio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self, method: str, path: str, headers: HeadersLike, body: bytes
    ) -> tuple[int, Headers, bytes]:
        async with self.stream(method, path, headers, end_stream=not body) as stream:
            if body:
                try:
                    await stream.send_data(body, end_stream=True)
                except StreamReset as exc:
                    # RST_STREAM(NO_ERROR): the server answered without reading it all.
                    if exc.error_code != ErrorCodes.NO_ERROR:
                        raise
            status, response_headers = await stream.receive_headers()
            return status, response_headers, await stream.read_body()

    # -- called by streams --------------------------------------------------------------
    def _queue(self) -> None:
        """Move h2's pending output to the writer's buffer and wake the writer."""
        data = self._h2.data_to_send()
        if data and not self._write_broken:
            self._outbuf += data
            self._writer_wake.set()

    async def _queue_and_wait(self) -> None:
        """``_queue()``, then wait while the output buffer is above its high-water mark."""
        self._queue()
        while len(self._outbuf) > _OUT_HIGH_WATER and self._failure is None:
            await self._drained.park()
        if self._failure is not None:
            raise self._failure()
        await trio.lowlevel.checkpoint()

    def _acknowledge(self, stream_id: int, flow_len: int) -> None:
        """The caller consumed (or dropped) ``flow_len`` bytes: reopen the windows."""
        if flow_len and self._failure is None and not self._h2.closed:
            self._h2.acknowledge_received_data(flow_len, stream_id)
            self._queue()

    def _reset_now(self, stream_id: int, code: int) -> None:
        if self._failure is not None or self._h2.closed:
            return
        try:
            self._h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            return  # already closed on h2's side
        self._queue()

    def _release(self, stream: ClientStream) -> None:
        if self._streams.pop(stream.stream_id, None) is not None:
            self._slots.unpark_all()

    # -- the connection's tasks ---------------------------------------------------------
    async def _run(
        self, deadline: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        try:
            self._h2.initiate_connection()
            # Size the connection window to cover every stream's window: data a caller has
            # not read yet must never starve the other streams (see module doc).
            want = min(
                self.config.max_concurrent_streams * self.config.initial_window_size, _MAX_WINDOW
            )
            if want > _DEFAULT_WINDOW:
                self._h2.increment_flow_control_window(want - _DEFAULT_WINDOW)
            self._queue()
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._writer)
                with trio.CancelScope() as self._io_scope:
                    async with trio.open_nursery() as io:
                        io.start_soon(self._read_loop)
                        with trio.move_on_at(deadline):
                            await self._ready.wait()
                        if not self._settings_received:
                            self._fail(
                                _closed("no HTTP/2 SETTINGS from the server within connect_timeout")
                            )
                        else:
                            started = True
                            task_status.started()
                            interval = self.config.keepalive_interval
                            if interval is not None:
                                io.start_soon(
                                    self._keepalive, interval, self.config.keepalive_timeout
                                )
                # The read loop ended (EOF, error, GOAWAY with an error, close): let the
                # last frames leave, briefly, then stop the writer.
                with trio.move_on_after(_CLOSE_GRACE):
                    while (self._outbuf or self._sending) and not self._write_broken:
                        await self._drained.park()
                tasks.cancel_scope.cancel()
        finally:
            self._run_done.set()
        if not started:
            assert self._failure is not None
            raise self._failure()

    async def _writer(self) -> None:
        try:
            while True:
                while not self._outbuf:
                    await self._writer_wake.wait()
                    self._writer_wake = trio.Event()
                data, self._outbuf = self._outbuf, bytearray()
                self._sending = True
                # The kernel usually takes it all at once: one os.write, no trio socket
                # machinery (see _direct); what it does not take goes the usual way.
                sent = self._io.write_now(data) if self._io.fd >= 0 else 0
                if sent < len(data):
                    with trio.fail_after(self.config.write_timeout):
                        await self._transport.send_all(memoryview(data)[sent:])
                    self._sending = False
                else:
                    self._sending = False
                    await trio.lowlevel.checkpoint_if_cancelled()
                self._drained.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            self._write_broken = True
            self._outbuf.clear()
            self._sending = False
            self._drained.unpark_all()
            if isinstance(exc, trio.TooSlowError):
                detail = f"the server did not read for {self.config.write_timeout} s"
            else:
                detail = f"the connection broke while writing: {exc}"
            self._fail(_closed(detail, exc))

    async def _read_loop(self) -> None:
        while True:
            while len(self._outbuf) > _OUT_HIGH_WATER and self._failure is None:
                await self._drained.park()
            if self._failure is not None:
                return
            try:
                data = await self._receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._fail(_closed(f"the connection broke: {exc}", exc))
                return
            if not data:
                self._fail(_closed("the server closed the connection"))
                return
            self._last_received = trio.current_time()
            if not self._process(data):
                return

    async def _receive(self) -> bytes | bytearray:
        """One read (``DirectIO.receive``)."""
        return await self._io.receive(self._transport, _READ_SIZE)

    async def _keepalive(self, interval: float, patience: float) -> None:
        while True:
            idle_until = self._last_received + interval
            if trio.current_time() < idle_until:
                await trio.sleep_until(idle_until)
                continue
            self._ping_payload = next(self._ping_ids).to_bytes(8, "big")
            self._ping_acked = trio.Event()
            self._h2.ping(self._ping_payload)
            self._queue()
            with trio.move_on_after(patience):
                await self._ping_acked.wait()
                continue
            self._fail(_closed(f"no PING ACK within {patience} s: the server or the path is gone"))
            return

    def _fail(self, failure: Failure) -> None:
        """The connection can no longer be used: fail every stream, stop reading.

        Streams whose response arrived complete stay readable. The writer keeps going
        for a moment so a GOAWAY or RST_STREAM already queued can still leave.
        """
        if self._failure is not None:
            return
        self._failure = failure
        for stream in list(self._streams.values()):
            stream._fail(failure)
        self._streams.clear()
        self._ready.set()
        self._slots.unpark_all()
        self._drained.unpark_all()
        if self._io_scope is not None:
            self._io_scope.cancel()

    # -- acting on h2's events (synchronously: never waits on a stream) -------------------
    def _process(self, data: bytes | bytearray) -> bool:
        """Feed h2 and act on its events; False when the connection must end."""
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._queue()  # h2 queued GOAWAY with the error code
            cause = RemoteProtocolError(f"the server broke HTTP/2: {exc}")
            cause.__cause__ = exc
            self._fail(_closed(f"the server broke HTTP/2: {exc}", cause))
            return False
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._on_data(event)
            elif isinstance(event, h2.events.ResponseReceived):
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream._on_head(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream.trailers = Headers(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream._on_end()
            elif isinstance(event, h2.events.StreamReset):
                self._on_reset(event)
            elif isinstance(event, h2.events.WindowUpdated):
                self._on_window(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._settings_received = True
                self._ready.set()
                self._on_window(0)  # INITIAL_WINDOW_SIZE may have changed
                self._slots.unpark_all()  # so may MAX_CONCURRENT_STREAMS
            elif isinstance(event, h2.events.PingAckReceived):
                if event.ping_data == self._ping_payload:
                    self._ping_acked.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and not self._on_goaway(event):
                self._queue()
                return False
        self._queue()
        return True

    def _on_data(self, event: h2.events.DataReceived) -> None:
        flow_len = event.flow_controlled_length or 0
        stream = self._streams.get(event.stream_id)
        if stream is None or stream._recv_failure is not None:
            # Nobody will read it: hand the window straight back.
            if flow_len:
                self._h2.acknowledge_received_data(flow_len, event.stream_id)
            return
        if event.data or flow_len:
            stream._feed(event.data, flow_len)

    def _on_window(self, stream_id: int) -> None:
        if stream_id == 0:
            for each in self._streams.values():
                each._wake_writer()
        elif (stream := self._streams.get(stream_id)) is not None:
            stream._wake_writer()

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        malformed = self._h2.malformed.pop(event.stream_id, None)
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        code = int(event.error_code)
        failure: Failure
        if malformed is not None:
            failure = functools.partial(
                RemoteProtocolError, f"stream {event.stream_id}: {malformed}"
            )
        elif event.remote_reset:
            failure = functools.partial(
                StreamReset, code, f"the server reset the stream ({_code_name(code)})"
            )
        else:
            failure = functools.partial(
                StreamReset, code, f"stream reset by h2 ({_code_name(code)})"
            )
        stream._fail(failure)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> bool:
        """The server will take no new streams; False when the connection must end."""
        code = int(event.error_code or 0)
        last = event.last_stream_id if event.last_stream_id is not None else 2**31 - 1
        self.goaway_received = GoAway(last, code, event.additional_data or b"")
        self._slots.unpark_all()  # waiters in open_stream now raise ConnectionClosed
        refused = functools.partial(
            StreamReset,
            ErrorCodes.REFUSED_STREAM,
            f"the server's GOAWAY (last_stream_id={last}) refused this stream: "
            "it was not processed and can be retried",
        )
        for stream_id, stream in list(self._streams.items()):
            if stream_id > last:
                self._reset_now(stream_id, ErrorCodes.CANCEL)
                stream._fail(refused)
        if code != ErrorCodes.NO_ERROR:
            detail = f"the server ended the connection with GOAWAY({_code_name(code)})"
            if event.additional_data:
                detail += f": {event.additional_data!r}"
            self._fail(_closed(detail))
            return False
        return True

    # -- closing ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close: GOAWAY(NO_ERROR), fail the streams still open, close the transport.

        The GOAWAY gets a moment to leave; if this is cancelled, the transport is closed
        at once (as ``AsyncResource.aclose`` requires).
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if self._failure is None and not self._h2.closed:
                self._h2.close_connection(error_code=ErrorCodes.NO_ERROR)
                self._queue()
            self._fail(_closed("the connection was closed by the client"))
            with trio.move_on_after(_CLOSE_GRACE):
                await self._run_done.wait()
        finally:
            if self._io_scope is not None:
                self._io_scope.cancel()
            if self._outbuf and not self._sending and not self._write_broken:
                # Cancelled before the writer could flush: a last direct write, shielded
                # and brief. Safe only because no send_all is in progress.
                data, self._outbuf = self._outbuf, bytearray()
                with trio.move_on_after(_CLOSE_GRACE, shield=True):
                    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self._transport.send_all(data)
            await trio.aclose_forcefully(self._transport)


async def _open_transport(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    deadline: float,
) -> trio.abc.Stream:
    """TCP, then TLS with ALPN ``h2``; errors mapped onto netkit's tree at this edge."""
    transport: trio.abc.Stream | None = None
    try:
        with trio.fail_at(deadline):
            transport = await trio.open_tcp_stream(host, port)
            if ssl_context is None:
                return transport
            ssl_context.set_alpn_protocols(["h2"])
            tls = trio.SSLStream(
                transport,
                ssl_context,
                server_hostname=server_hostname or host,
                https_compatible=True,
            )
            transport = tls
            await tls.do_handshake()
    except trio.TooSlowError as exc:
        if transport is not None:
            await trio.aclose_forcefully(transport)
        raise ConnectionClosed(
            f"could not connect to {host}:{port} within connect_timeout"
        ) from exc
    except (OSError, trio.BrokenResourceError) as exc:
        if transport is not None:
            await trio.aclose_forcefully(transport)
        raise ConnectionClosed(f"could not connect to {host}:{port}: {exc}") from exc
    except BaseException:
        if transport is not None:
            await trio.aclose_forcefully(transport)
        raise
    protocol = tls.selected_alpn_protocol()
    if protocol != "h2":
        await trio.aclose_forcefully(tls)
        raise RemoteProtocolError(
            f"{host}:{port} did not select HTTP/2 with ALPN (it chose {protocol!r})"
        )
    return tls


__all__ = ["ClientStream", "GoAway", "H2ClientConnection"]
