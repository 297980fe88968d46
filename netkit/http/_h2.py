"""HTTP/2 driver: a thin trio loop around h2, with the defences h2 leaves to its user.

Theory of operation
-------------------
A connection runs three kinds of task in its own nursery:

* the **read loop** (the connection's own task) reads bytes, feeds h2, and acts on the
  events *synchronously*: it appends body chunks to per-stream buffers, wakes waiters
  and starts stream tasks. It never awaits anything that belongs to one stream, so a
  slow handler cannot stall the other streams (hypercorn's read loop does wait on a
  stream's queue; ours has no per-stream queue to wait on).
* one **stream task** per request, running the handler against an :class:`H2Stream`.
* the **writer**, the only task that writes to the transport. Everyone else moves h2's
  output into ``_outbuf`` (``queue()``) and wakes it, so responses produced in the same
  scheduling round leave in one ``send_all``.

Memory is bounded without waiting on streams:

* request bodies: a stream's buffer can never exceed its receive window (h2 raises
  FLOW_CONTROL_ERROR on a peer that overruns it), and the window is reopened only as the
  handler consumes data. The *connection* window is sized to cover every stream's window,
  so unread data on one stream never closes the connection window for the others;
* output: senders wait for window updates instead of buffering, and the read loop stops
  reading while ``_outbuf`` is above a high-water mark (a peer that floods PINGs but never
  reads its ACKs is simply not read); every write is bounded by ``write_timeout``.

Abuse h2 does not defend against, and what we do:

* rapid reset (CVE-2023-44487) and streams over the concurrency limit: a token bucket of
  resets + refusals; when empty, GOAWAY(ENHANCE_YOUR_CALM). A reset stream's handler keeps
  its concurrency slot until it has really finished, so resets cannot multiply work;
* more than ``max_concurrent_streams`` streams: RST_STREAM(REFUSED_STREAM) for that stream
  only. h2 itself treats this as a connection error, so ``_ServerProtocol`` intercepts the
  HEADERS frame, decodes it (HPACK state must stay in sync) and refuses it;
* oversized header blocks / CONTINUATION floods / HPACK bombs: the encoded block is
  bounded here, the decoded list by hpack's ``max_header_list_size``, the number of
  CONTINUATION frames by h2; all end in GOAWAY;
* PING/SETTINGS/PRIORITY/empty-DATA floods: a second token bucket, and the output bound above;
* zero-window stalls: a sender whose window stays closed for ``write_timeout`` resets its
  stream (CANCEL) and frees what it held.

Graceful shutdown sends GOAWAY (NO_ERROR, last stream id) and lets in-flight streams
finish. h2's own ``close_connection`` would move its state machine to CLOSED and reject
the in-flight streams' frames, so the GOAWAY frame is serialized here instead.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio
from h2.errors import ErrorCodes
from h2.stream import StreamClosedBy
from hyperframe.frame import GoAwayFrame, HeadersFrame, RstStreamFrame

from ..errors import ConnectionClosed, LocalProtocolError, RequestBodyTooLarge, StreamReset
from ._budget import TokenBucket
from ._config import ServerConfig
from ._h2_common import H2Protocol, prepare_outbound, take_chunks
from ._h2_headers import MalformedHeaders, check_trailers, split_request
from ._h2_settings import CompactSettings
from ._headers import Headers, HeadersLike, normalize
from ._observer import ServerObserver
from ._stream import (
    BODYLESS_STATUSES,
    Handler,
    HTTPStream,
    Request,
    connect_protocols,
    run_handler,
    transport_peer_certificate,
)
from ._tunnel import StreamTunnel

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_READ_SIZE = 64 * 1024
_OUT_HIGH_WATER = 256 * 1024
#: The writer stops waiting for more output to coalesce once this much is buffered.
_COALESCE = 64 * 1024
#: A stream hands its buffered body to h2 itself (waiting for windows) past this much.
_STREAM_BUFFER = 64 * 1024
#: A stream sending small pieces yields to the scheduler once per this many bytes...
_YIELD_EVERY = 16 * 1024
#: ...counting every send_data call as this many bytes more.
_YIELD_COST = 256
_DEFAULT_WINDOW = 65535

T = TypeVar("T")


#: Shared by every connection: h2 only reads it.
_H2_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    # Requests are checked by the driver (_h2_headers.split_request), in one pass, and a
    # malformed one resets its own stream instead of ending the connection.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    # Normalized and validated before h2 sees them (prepare_outbound): see _h2_common.
    normalize_outbound_headers=False,
    validate_outbound_headers=False,
)


class _ServerProtocol(H2Protocol):
    """h2's connection plus stream refusal and a bound on encoded header blocks."""

    def __init__(self, config: ServerConfig, *, extended_connect: bool = False) -> None:
        super().__init__(_H2_CONFIG, config.max_header_size)
        self.remote_settings = CompactSettings(client=True)
        initial = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.h2_initial_window_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: config.max_header_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: config.h2_max_frame_size,
        }
        if extended_connect:
            # RFC 8441: advertised only when the handler takes some protocol over CONNECT.
            initial[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self.local_settings = CompactSettings(client=False, initial_values=initial)
        self.max_inbound_frame_size = config.h2_max_frame_size
        self.decoder.max_header_list_size = config.max_header_size
        self.stream_limit = config.max_concurrent_streams
        #: Handlers still running, including those of streams already reset.
        self.busy = 0
        #: Set on graceful shutdown: every new stream is refused.
        self.refuse_new = False
        #: Streams refused so far (read by the driver to charge its reset budget).
        self.refused = 0

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[Any], list[Any]]:
        if len(frame.data) > self.max_header_block:
            raise h2.exceptions.DenialOfServiceError(
                f"header block of {len(frame.data)} bytes exceeds {self.max_header_block}"
            )
        sid = frame.stream_id
        new = sid not in self.streams and sid % 2 == 1 and sid > self.highest_inbound_stream_id
        if new and (
            self.refuse_new
            or self.busy >= self.stream_limit
            # len(streams) bounds the open count from above and costs nothing; the exact
            # count walks every stream, so it is only asked for near the limit.
            or (
                len(self.streams) >= self.stream_limit
                and self.exact_open_inbound_streams() >= self.stream_limit
            )
        ):
            # Decode anyway: the peer's HPACK encoder has already updated its table.
            h2.connection._decode_headers(self.decoder, frame.data)
            self.highest_inbound_stream_id = sid
            self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
            self.refused += 1
            rst = RstStreamFrame(sid)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            return [rst], []
        frames, events = super()._receive_headers_frame(frame)
        if new:
            # Counted here, not when the task starts: a RST_STREAM in the same read
            # must not free the slot before the handler has even begun.
            self.busy += 1
        return frames, events


class H2Stream(HTTPStream):
    """One HTTP/2 request; its methods are called from the stream's own task."""

    def __init__(self, conn: H2Connection, stream_id: int, request: Request) -> None:
        super().__init__(request, conn.config.max_request_body_size)
        self.stream_id = stream_id
        self._conn = conn
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._ended = False
        self._reset_code: int | None = None
        self._readable = trio.Event()
        self._writable = trio.Event()
        self._scope: trio.CancelScope | None = None
        #: Body bytes not yet handed to h2 (see ``send_data``).
        self._pending = bytearray()
        #: Bytes (plus a charge per call) sent since this stream's task last yielded.
        self._unyielded = 0
        #: A HEAD response ends on its headers; body bytes the handler sends are dropped.
        self._head = request.method == "HEAD"
        #: Request trailers, once received (gRPC clients rarely send them; HTTP allows it).
        self.trailers: Headers | None = None

    # -- called synchronously by the read loop -------------------------------------
    def _feed(self, data: bytes, flow_len: int) -> None:
        self._chunks.append((data, flow_len))
        self._readable.set()

    def _feed_end(self) -> None:
        self._ended = True
        self._readable.set()

    def _on_reset(self, code: int) -> None:
        self._reset_code = code
        if self._scope is not None:
            # Cancel first: woken waiters then see Cancelled, not a StreamReset that a
            # handler might mistake for a failure of its own.
            self._scope.cancel()
        self._readable.set()
        self._writable.set()

    def _wake_writer(self) -> None:
        self._writable.set()

    def _unread_flow(self) -> int:
        total = sum(n for _, n in self._chunks)
        self._chunks.clear()
        return total

    # -- request body -----------------------------------------------------------------
    @property
    def body_arrived(self) -> bool:
        return self._ended and self._reset_code is None

    async def _receive_chunk(self) -> bytes:
        while not self._chunks:
            if self._reset_code is not None:
                raise StreamReset(self._reset_code)
            if self._ended:
                return b""
            self._readable = trio.Event()
            await self._readable.wait()
        data, flow_len = self._chunks.popleft()
        self._conn.acknowledge(self.stream_id, flow_len)
        return data

    async def read_body(self) -> bytes:
        """The whole body; one that has already arrived (a unary gRPC call, a small POST)
        is taken in one step instead of chunk by chunk through the async iterator."""
        if self._too_large or self._received or not self._ended or self._reset_code is not None:
            return await super().read_body()
        data, flow = take_chunks(self._chunks)
        if flow:
            self._conn.acknowledge(self.stream_id, flow)
        self._received = len(data)
        if self._received > self._max_body:
            self._too_large = True
            raise RequestBodyTooLarge(self._max_body)
        await trio.lowlevel.checkpoint_if_cancelled()
        return data

    # -- response -------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._reset_code is not None:
            raise StreamReset(self._reset_code)
        if self._conn.dead or self._conn.h2.closed:
            raise ConnectionClosed("HTTP/2 connection is gone")
        try:
            return fn(*args, **kwargs)
        except h2.exceptions.StreamClosedError as exc:
            raise StreamReset(int(exc.error_code), "stream closed") from exc
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc

    def _start_response(self, status: int, headers: HeadersLike, end_stream: bool) -> None:
        """Hand the response head to h2 (the caller queues it)."""
        if self.headers_sent:
            raise LocalProtocolError("response headers already sent")
        pairs = prepare_outbound(
            [(b":status", str(status).encode()), *normalize(headers)],
            client=False,
            is_trailer=False,
            what="response headers",
        )
        end_stream = end_stream or (self._head and status >= 200)
        self._call(self._conn.h2.send_headers, self.stream_id, pairs, end_stream=end_stream)
        self.headers_sent = True
        self.status = status
        self.finished = end_stream

    async def send_headers(
        self, status: int, headers: HeadersLike = (), *, end_stream: bool = False
    ) -> None:
        self._start_response(status, headers, end_stream)
        await self._conn.queue_and_wait()

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes; they leave as the peer's windows allow.

        Small writes are buffered on the stream (up to ``_STREAM_BUFFER``) and handed to
        h2 by the writer just before it writes, so a handler sending many small
        messages (gRPC streaming) makes a few large DATA frames instead of one frame per
        message. Ending the stream, or a full buffer, hands everything over here,
        waiting for window updates: that wait is the handler's backpressure.
        """
        if not self.headers_sent:
            raise LocalProtocolError("send_headers() must come first")
        if self._head:
            await trio.lowlevel.checkpoint()
            return  # the stream already ended with the headers
        if self.finished:
            raise LocalProtocolError("response already finished")
        if self._reset_code is not None:
            raise StreamReset(self._reset_code)
        if data:
            self._pending += data
            self.bytes_sent += len(data)
        if end_stream or len(self._pending) >= _STREAM_BUFFER:
            await self._drain(end_stream=end_stream)
            return
        if self._pending:
            self._conn.has_pending(self)
        # A small write only fills this stream's buffer, and a scheduling round costs
        # more than a 1 KiB gRPC message: yield once per _YIELD_EVERY bytes (each call
        # counted as _YIELD_COST more, so empty writes yield too), and in between only
        # check for cancellation, which is therefore still seen at once.
        self._unyielded += len(data) + _YIELD_COST
        if self._unyielded < _YIELD_EVERY:
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        self._unyielded = 0
        await self._conn.queue_and_wait()

    def _flush(self) -> None:
        """Hand h2 as much buffered data as the windows allow; never waits, never raises.

        Called by the writer (and by ``_drain``). A stream that is gone drops its data.
        """
        if not self._pending:
            return
        if self._reset_code is not None or self._conn.dead or self._conn.h2.closed:
            self._pending.clear()
            return
        h2c = self._conn.h2
        try:
            while self._pending:
                window = h2c.local_flow_control_window(self.stream_id)
                size = min(window, h2c.max_outbound_frame_size, len(self._pending))
                if size <= 0:
                    return
                h2c.send_data(self.stream_id, bytes(self._pending[:size]))
                del self._pending[:size]
        except h2.exceptions.ProtocolError:
            self._pending.clear()  # closed under us (reset): nobody will read it

    async def _drain(self, *, end_stream: bool) -> None:
        """Everything buffered to h2 (waiting for windows), then END_STREAM if asked."""
        h2c = self._conn.h2
        while True:
            if self._reset_code is not None:
                raise StreamReset(self._reset_code)
            if self._conn.dead or h2c.closed:
                raise ConnectionClosed("HTTP/2 connection is gone")
            pending = len(self._pending)
            if end_stream and pending:
                window = self._call(h2c.local_flow_control_window, self.stream_id)
                if pending <= min(window, h2c.max_outbound_frame_size):
                    # The last frame carries END_STREAM: one frame less.
                    data = bytes(self._pending)
                    self._pending.clear()
                    self._call(h2c.send_data, self.stream_id, data, end_stream=True)
                    break
            self._flush()
            if not self._pending:
                if end_stream:
                    self._call(h2c.end_stream, self.stream_id)
                break
            self._conn.queue()
            await self._wait_for_window()
        if end_stream:
            self.finished = True
        await self._conn.queue_and_wait(final=end_stream)

    async def _wait_for_window(self) -> None:
        self._writable = trio.Event()
        with trio.move_on_after(self._conn.config.write_timeout):
            await self._writable.wait()
            return
        # The peer kept its window shut: free this stream instead of holding it forever.
        self._conn.reset(self.stream_id, ErrorCodes.CANCEL)
        self._reset_code = ErrorCodes.CANCEL
        raise StreamReset(ErrorCodes.CANCEL, "peer's flow-control window stayed closed")

    async def send_trailers(self, headers: HeadersLike) -> None:
        if self._head and self.headers_sent:
            await trio.lowlevel.checkpoint()
            return
        if self.finished:
            raise LocalProtocolError("response already finished")
        if not self.headers_sent:
            raise LocalProtocolError("send_headers() must come first")
        pairs = prepare_outbound(normalize(headers), client=False, is_trailer=True, what="trailers")
        if self._pending:
            await self._drain(end_stream=False)
        self._call(self._conn.h2.send_headers, self.stream_id, pairs, end_stream=True)
        self.finished = True
        await self._conn.queue_and_wait()

    async def respond(self, status: int, headers: HeadersLike = (), body: bytes = b"") -> None:
        pairs = normalize(headers)
        if status not in BODYLESS_STATUSES:
            pairs.append((b"content-length", str(len(body)).encode()))
        self._start_response(status, pairs, not body)
        self.bytes_sent += len(body)
        if self.finished:
            await self._conn.queue_and_wait()
            return
        h2c = self._conn.h2
        window = self._call(h2c.local_flow_control_window, self.stream_id)
        if len(body) <= min(window, h2c.max_outbound_frame_size):
            # The common small response: HEADERS and DATA leave in one write, one wait.
            self._call(h2c.send_data, self.stream_id, body, end_stream=True)
            self.finished = True
            await self._conn.queue_and_wait(final=True)
            return
        await self._conn.queue_and_wait()
        await self.send_data(body, end_stream=True)

    async def respond_with_trailers(
        self, status: int, headers: HeadersLike, body: bytes, trailers: HeadersLike
    ) -> None:
        # Trailers are checked before anything is sent: a bad one is still a clean 500.
        tail = prepare_outbound(normalize(trailers), client=False, is_trailer=True, what="trailers")
        self._start_response(status, headers, False)
        h2c = self._conn.h2
        if not self.finished:  # (a HEAD response ended on its headers)
            if body:
                window = self._call(h2c.local_flow_control_window, self.stream_id)
                if len(body) > min(window, h2c.max_outbound_frame_size):  # send_data counts it
                    await self._conn.queue_and_wait()
                    await self.send_data(body)
                    await self.send_trailers(trailers)
                    return
                self._call(h2c.send_data, self.stream_id, body)
                self.bytes_sent += len(body)
            self._call(h2c.send_headers, self.stream_id, tail, end_stream=True)
            self.finished = True
        await self._conn.queue_and_wait(final=True)

    async def abort(self, code: int | None = None) -> None:
        self.finished = True
        self._pending.clear()
        if self._reset_code is None and not self._conn.dead:
            error = ErrorCodes.INTERNAL_ERROR if code is None else code
            self._conn.reset(self.stream_id, error)
            self._reset_code = error
        await trio.lowlevel.checkpoint()

    def peer_certificate(self) -> dict[str, Any] | None:
        return transport_peer_certificate(self._conn.transport)

    async def accept_tunnel(self, headers: HeadersLike = ()) -> trio.abc.Stream:
        """RFC 8441 takeover: 200, then the stream's DATA both ways (see HTTPStream)."""
        if self.request.protocol is None:
            raise LocalProtocolError("not an extended CONNECT")
        await self.send_headers(200, headers)
        return StreamTunnel(self)


class H2Connection:
    """Serves HTTP/2 on one transport (cleartext with prior knowledge, or TLS with ALPN h2)."""

    def __init__(
        self,
        transport: trio.abc.Stream,
        handler: Handler,
        config: ServerConfig,
        *,
        scheme: str,
        initial_data: bytes = b"",
        upgrade: tuple[bytes, Request] | None = None,
        observer: ServerObserver | None = None,
    ) -> None:
        self.transport = transport
        self.observer = observer
        #: From an HTTP/1.1 ``Upgrade: h2c``: the HTTP2-Settings value and the request
        #: that becomes stream 1.
        self._upgrade = upgrade
        self.handler = handler
        self.config = config
        self.scheme = scheme
        #: RFC 8441 protocols the handler takes over extended CONNECT (none: not advertised).
        self.connect_protocols = connect_protocols(handler)
        self.h2 = _ServerProtocol(config, extended_connect=bool(self.connect_protocols))
        self.streams: dict[int, H2Stream] = {}
        self.dead = False
        self.draining = False
        #: The error code of the GOAWAY we sent, if we ended the connection.
        self.goaway_code: int | None = None
        self._initial = initial_data
        self._outbuf = bytearray()
        #: Streams with body bytes buffered for the writer to hand to h2.
        self._pending_streams: set[H2Stream] = set()
        self._sending = False
        self._writer_wake = trio.Event()
        self._drained = trio.lowlevel.ParkingLot()
        self._nursery: trio.Nursery | None = None
        self._read_scope: trio.CancelScope | None = None
        now = trio.current_time()
        self._idle_deadline = now + config.request_head_timeout
        self._resets = TokenBucket(config.h2_reset_burst, config.h2_reset_rate, now)
        self._control = TokenBucket(config.h2_control_burst, config.h2_control_rate, now)
        self._refused_seen = 0
        self._calm_violation = ""

    # -- output -----------------------------------------------------------------------
    def queue(self) -> None:
        """Move h2's pending output to the writer's buffer and wake the writer."""
        data = self.h2.data_to_send()
        if data:
            self._outbuf += data
            self._writer_wake.set()

    def has_pending(self, stream: H2Stream) -> None:
        """``stream`` buffered body bytes: the writer hands them to h2 before writing."""
        self._pending_streams.add(stream)
        self._writer_wake.set()

    def _output_size(self) -> int:
        return len(self._outbuf) + sum(len(each._pending) for each in self._pending_streams)

    def _flush_pending(self) -> None:
        for stream in list(self._pending_streams):
            stream._flush()
            if not stream._pending:
                self._pending_streams.discard(stream)
        self.queue()

    async def queue_and_wait(self, *, final: bool = False) -> None:
        """``queue()``, then wait while the output buffer is above its high-water mark.

        ``final``: the stream's last frame was queued and its task is about to end, so
        the usual scheduling checkpoint (fairness between streams that send a lot)
        is skipped when there is nothing to wait for: one reschedule less per request.
        """
        self.queue()
        waited = False
        while len(self._outbuf) > _OUT_HIGH_WATER and not self.dead:
            await self._drained.park()
            waited = True
        if self.dead:
            raise ConnectionClosed("HTTP/2 connection is gone")
        if not (final or waited):
            await trio.lowlevel.checkpoint()

    async def _writer(self) -> None:
        # One cancel scope whose deadline is set around each write: cheaper than a new
        # fail_after scope per write, and the wait for work is never under a deadline.
        scope = trio.CancelScope()
        try:
            with scope:
                while True:
                    if not self._outbuf and not self._pending_streams:
                        await self._writer_wake.wait()
                        self._writer_wake = trio.Event()
                        continue
                    # Let producers that are ready add to the buffers first, so that a
                    # stream sending many small messages costs one DATA frame and one
                    # write per round of the scheduler instead of one per message.
                    size = -1
                    while (total := self._output_size()) != size and total < _COALESCE:
                        size = total
                        await trio.lowlevel.checkpoint()
                    self._flush_pending()
                    if not self._outbuf:  # only data whose windows are shut: wait
                        await self._writer_wake.wait()
                        self._writer_wake = trio.Event()
                        continue
                    data, self._outbuf = self._outbuf, bytearray()
                    self._sending = True
                    scope.deadline = trio.current_time() + self.config.write_timeout
                    await self.transport.send_all(data)
                    scope.deadline = math.inf
                    self._sending = False
                    self._drained.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._die()
            return
        if scope.cancelled_caught:  # the peer stopped reading for write_timeout
            self._die()

    def _die(self) -> None:
        self.dead = True
        self._drained.unpark_all()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def acknowledge(self, stream_id: int, flow_len: int) -> None:
        """The handler consumed ``flow_len`` bytes: let h2 reopen the windows."""
        if flow_len and not self.dead:
            self.h2.acknowledge_received_data(flow_len, stream_id)
            self.queue()

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            return  # already closed on h2's side
        if self.observer is not None:
            self.observer.reset("sent", code)
        self.queue()

    def goaway(self, code: int, last_stream_id: int | None = None) -> None:
        """Send GOAWAY without moving h2 to CLOSED, so in-flight streams can finish."""
        self.queue()
        frame = GoAwayFrame(0)
        frame.last_stream_id = (
            self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        )
        frame.error_code = code
        self._outbuf += frame.serialize()
        self._writer_wake.set()
        if self.observer is not None:
            self.observer.goaway("sent", code)
        if self.goaway_code is None or code:
            self.goaway_code = code

    def start_drain(self) -> None:
        """Graceful shutdown: GOAWAY now, finish in-flight streams, refuse new ones."""
        if self.draining:
            return
        self.draining = True
        self.h2.refuse_new = True
        if not self.dead:
            self.goaway(ErrorCodes.NO_ERROR)
        if not self.streams and self._read_scope is not None:
            self._read_scope.cancel()

    # -- the connection ---------------------------------------------------------------
    async def run(self) -> None:
        if self._upgrade is not None:
            self.h2.initiate_upgrade_connection(self._upgrade[0])
        else:
            self.h2.initiate_connection()
        # Size the connection window to cover every stream's window: data a slow
        # handler has not read yet must never starve the other streams (see module doc).
        extra = self.config.max_concurrent_streams * self.config.h2_initial_window_size
        if extra > _DEFAULT_WINDOW:
            self.h2.increment_flow_control_window(min(extra, 2**31 - 1) - _DEFAULT_WINDOW)
        # Our SETTINGS go out before any of the client's frames is processed: a client
        # that starts sending on the default window must learn ours as early as possible
        # (some clients mishandle a window that a late SETTINGS makes negative).
        try:
            with trio.fail_after(self.config.write_timeout):
                await self.transport.send_all(self.h2.data_to_send())
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            self.dead = True
            return
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                if self._upgrade is not None:
                    stream = H2Stream(self, 1, self._upgrade[1])
                    stream._ended = True
                    self.h2.busy += 1
                    self._launch(stream)
                await self._read_loop()
                # Let the last frames (GOAWAY, final responses) leave, briefly.
                with trio.move_on_after(1.0):
                    while (self._outbuf or self._sending) and not self.dead:
                        await self._drained.park()
                nursery.cancel_scope.cancel()
        finally:
            self.dead = True
            self._drained.unpark_all()

    async def _read_loop(self) -> None:
        data: bytes | bytearray = self._initial
        while True:
            if data and not self._process(data):
                return
            if self.draining and not self.streams:
                return
            while len(self._outbuf) > _OUT_HIGH_WATER and not self.dead:
                await self._drained.park()
            if self.dead:
                return
            deadline = math.inf if self.streams else self._idle_deadline
            data = b""
            with trio.CancelScope(deadline=deadline) as self._read_scope:
                try:
                    data = await self.transport.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return  # EOF: the peer is gone, nothing more can be answered
            self._read_scope = None
            if self.draining and not self.streams:
                return
            if not self.streams and trio.current_time() >= self._idle_deadline:
                self.goaway(ErrorCodes.NO_ERROR)
                return

    def _process(self, data: bytes | bytearray) -> bool:
        """Feed h2 and act on its events; False when the connection must end."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR)
            self.h2.close_connection(error_code=code)
            self.goaway_code = int(code)
            if self.observer is not None:
                self.observer.goaway("sent", int(code))
                if code == ErrorCodes.ENHANCE_YOUR_CALM:
                    self.observer.limit_hit("ENHANCE_YOUR_CALM")
            self.queue()
            return False
        now = trio.current_time()
        # h2 reports a HEADERS frame's own priority flag as a PriorityUpdated event as
        # well: that one is part of the request, any other PRIORITY frame is charged.
        free_priority = {
            id(event.priority_updated)
            for event in events
            if isinstance(event, h2.events.RequestReceived) and event.priority_updated
        }
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if not self._start_stream(event):
                    self._charge(self._resets, now, "malformed-request flood")
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event, now)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream._feed_end()
            elif isinstance(event, h2.events.WindowUpdated):
                self._on_window(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                if self.observer is not None:
                    self.observer.reset("received", int(event.error_code or 0))
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    if not stream.finished:
                        self._charge(self._resets, now, "rapid reset")
                    stream._on_reset(event.error_code)
            elif isinstance(event, h2.events.TrailersReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    try:
                        stream.trailers = Headers(check_trailers(event.headers))
                    except MalformedHeaders:
                        self._charge(self._resets, now, "malformed-request flood")
                        self.reset(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
                        stream._on_reset(ErrorCodes.PROTOCOL_ERROR)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._charge(self._control, now, "SETTINGS flood")
                self._on_window(0)
            elif isinstance(event, h2.events.PingReceived):
                self._charge(self._control, now, "PING flood")
            elif isinstance(event, h2.events.PriorityUpdated):
                if id(event) not in free_priority:
                    self._charge(self._control, now, "PRIORITY flood")
            elif isinstance(event, h2.events.UnknownFrameReceived):
                self._charge(self._control, now, "unknown-frame flood")
            elif isinstance(event, h2.events.ConnectionTerminated):
                if self.observer is not None:
                    self.observer.goaway("received", int(event.error_code or 0))
                if event.error_code:
                    self.queue()
                    return False
                self.draining = True
                self.h2.refuse_new = True
        if self.h2.refused > self._refused_seen:
            if self.observer is not None:
                for _ in range(self.h2.refused - self._refused_seen):
                    self.observer.reset("sent", ErrorCodes.REFUSED_STREAM)
                    self.observer.limit_hit("REFUSED_STREAM")
            self._charge(
                self._resets, now, "refused-stream flood", self.h2.refused - self._refused_seen
            )
            self._refused_seen = self.h2.refused
        if self._calm_violation:
            self.h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
            self.goaway_code = ErrorCodes.ENHANCE_YOUR_CALM
            if self.observer is not None:
                self.observer.goaway("sent", ErrorCodes.ENHANCE_YOUR_CALM)
                self.observer.limit_hit("ENHANCE_YOUR_CALM")
            self.queue()
            return False
        self.queue()
        return True

    def _charge(self, bucket: TokenBucket, now: float, what: str, tokens: int = 1) -> None:
        if not bucket.spend(now, tokens) and not self._calm_violation:
            self._calm_violation = what

    def _on_data(self, event: h2.events.DataReceived, now: float) -> None:
        flow_len = event.flow_controlled_length or 0
        if not event.data and not event.stream_ended:
            self._charge(self._control, now, "empty DATA flood")
        stream = self.streams.get(event.stream_id)
        if stream is None or stream._reset_code is not None:
            # Nobody will read it: hand the window straight back.
            if flow_len:
                self.h2.acknowledge_received_data(flow_len, event.stream_id)
            return
        if event.data or flow_len:
            stream._feed(event.data, flow_len)

    def _on_window(self, stream_id: int) -> None:
        if self._pending_streams:
            self._writer_wake.set()  # buffered data may fit now
        if stream_id == 0:
            for each in self.streams.values():
                each._wake_writer()
        elif (stream := self.streams.get(stream_id)) is not None:
            stream._wake_writer()

    def _start_stream(self, event: h2.events.RequestReceived) -> bool:
        """Start the stream's task; False (and the stream reset) if the head is malformed."""
        try:
            pseudo, regular = split_request(event.headers)
        except MalformedHeaders:
            self.reset(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
            self.h2.busy -= 1  # counted when h2 accepted the HEADERS frame
            return False
        headers = Headers(regular)
        authority = pseudo.get(b":authority")
        request = Request(
            method=pseudo[b":method"].decode("ascii"),
            target=pseudo.get(b":path", b"").decode("latin-1"),
            authority=authority.decode("latin-1") if authority else headers.get("host") or "",
            scheme=pseudo.get(b":scheme", self.scheme.encode()).decode("ascii"),
            headers=headers,
            http_version="2",
            protocol=pseudo[b":protocol"].decode("latin-1") if b":protocol" in pseudo else None,
        )
        if request.protocol is not None and request.protocol not in self.connect_protocols:
            # RFC 8441 §3/§4: h2 accepts :protocol even when we never advertised it; such
            # a request (or one for a protocol nobody here speaks) is malformed.
            self.h2.busy -= 1  # counted in _receive_headers_frame; no task will run
            self.reset(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
            return False
        self._launch(H2Stream(self, event.stream_id, request))
        return True

    def _launch(self, stream: H2Stream) -> None:
        self.streams[stream.stream_id] = stream
        assert self._nursery is not None
        self._nursery.start_soon(self._run_stream, stream)

    async def _run_stream(self, stream: H2Stream) -> None:
        sid = stream.stream_id
        observer = self.observer
        token = observer.request_started(stream) if observer is not None else None
        try:
            with trio.CancelScope() as stream._scope:
                if stream._reset_code is not None:
                    stream._scope.cancel()  # reset before the task even started
                await run_handler(self.handler, stream)
            if not self.dead:
                leftover = stream._unread_flow()
                if leftover:
                    self.h2.acknowledge_received_data(leftover, sid)
                if not stream._ended and stream._reset_code is None:
                    # Response done but the client is still sending: tell it to stop.
                    self.reset(sid, ErrorCodes.NO_ERROR if stream.finished else ErrorCodes.CANCEL)
                elif not stream.finished and stream._reset_code is None:
                    self.reset(sid, ErrorCodes.CANCEL)
                self.queue()
        finally:
            del self.streams[sid]
            self._pending_streams.discard(stream)
            self.h2.busy -= 1
            if observer is not None:
                observer.request_finished(stream, token)
            if not self.streams:
                self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout
                if self._read_scope is not None:
                    if self.draining:
                        self._read_scope.cancel()
                    else:
                        self._read_scope.deadline = self._idle_deadline
