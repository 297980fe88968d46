"""``ReverseProxy``: a netkit handler that forwards REST, gRPC and WebSocket to backends.

Theory of operation
-------------------
One request is a loop of attempts. Each attempt asks the :class:`Balancer` for a
backend (excluding the ones already tried), takes a circuit-breaker slot of that
backend's :class:`BackendPool`, and relays: request head, then the body in one task
while the response comes back in the handler's own task, chunk by chunk, each
``send`` waiting for the other side (HTTP/2 windows, socket writes), so a slow client
slows the backend down and memory stays bounded by one chunk per direction.

An attempt ends in one of three ways: *done* (a response, whatever its status, went
to the client), *retry* (nothing went to the client yet and another attempt is
allowed) or *failed* (nothing went to the client and no retry: answer 502/503/504 or
a gRPC status ourselves). A retry needs all of: the request is idempotent (GET, HEAD,
OPTIONS, TRACE, PUT, DELETE) or carries ``Idempotency-Key`` -- or the failure was a
connect failure, where nothing was sent; its body was small enough to keep
(``retry_buffer_size``); fewer than ``max_retries`` retries so far; the retry budget
allows one; and another backend is available.

gRPC is HTTP/2 with trailers: trailers are relayed, ``grpc-timeout`` is forwarded
and enforced here too (DEADLINE_EXCEEDED), a reset from either side resets the other
(leaving ``conn.stream()`` resets the upstream with CANCEL; an upstream reset aborts
the downstream stream), and a backend lost mid-stream ends the call with UNAVAILABLE.

WebSocket: the proxy opens its own HTTP/1.1 Upgrade to the backend (whatever the
client used: HTTP/1.1 Upgrade or RFC 8441 over HTTP/2), answers the client only once
the backend accepted, then relays the tunnel's bytes both ways: frames, masks and
close codes pass through untouched.
"""

from __future__ import annotations

import enum
import logging
import math
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

from ..errors import ConnectionClosed, NetkitError, RemoteProtocolError, StreamReset
from ..http import ClientStream, Headers, HTTPStream
from ..http._stream import BODYLESS_STATUSES, error_body
from ..observe._context import inject
from ..wire import InvalidTimeout, StatusCode, content_type_is_grpc, decode_timeout
from ._backend import Backend, BackendState
from ._balancer import MembershipChange, Outcome
from ._forwarding import (
    REQUEST_ID,
    end_to_end,
    forwarding_headers,
    websocket_accept,
    websocket_key,
)
from ._h1client import H1ClientConnection
from ._hashing import key_hash
from ._pool import BackendPool, ConnectFailed, Overloaded, PoolLimits, open_tcp
from ._runtime import Balancer

log = logging.getLogger("netkit.balance.proxy")
T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CHUNK = 64 * 1024
#: A buffered body up to this size is sent from the request's own task: it fits the
#: initial HTTP/2 windows and frame size, so sending it cannot wait for the backend.
_INLINE_BODY = 16 * 1024


@attrs.frozen(kw_only=True)
class ProxyConfig:
    """The proxy's limits and timeouts.

    - ``limits``: circuit breakers and connect timeout per backend (:class:`PoolLimits`).
    - ``response_timeout``: the backend's response head must arrive within it (15 s,
      Envoy's route timeout); past it: 504, and it counts as a backend failure. Not
      applied to gRPC, whose deadline is ``grpc-timeout``.
    - ``idle_timeout``: no byte either way for this long ends the exchange (300 s,
      Envoy's stream idle timeout).
    - ``max_retries``: retries per request (2); ``retry_on``: statuses retried (502,
      503, 504); ``retry_buffer_size``: largest body kept for a retry (64 KiB).
    - ``hash_key``: for the hashing strategies, ``"ip"`` (the client address) or
      ``"header:NAME"``; None uses no key (the hashing strategies then pick at random).
    - ``via``: the pseudonym in ``Via`` (``1.1 netkit``).
    - ``websocket_relay_grace``: once one direction of a tunnel ended, how long the
      other gets to finish (5 s).
    """

    limits: PoolLimits = attrs.field(factory=PoolLimits)
    response_timeout: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    idle_timeout: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    max_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    retry_on: frozenset[int] = frozenset({502, 503, 504})
    retry_buffer_size: int = attrs.field(default=64 * 1024, validator=attrs.validators.ge(0))
    hash_key: str | None = None
    via: str = "netkit"
    websocket_relay_grace: float = 5.0


class _End(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    FAILED = "failed"


@attrs.define
class _Result:
    end: _End
    outcome: Outcome
    #: For FAILED (and a RETRY that cannot happen): what to answer the client.
    status: int = 502
    grpc_code: StatusCode = StatusCode.UNAVAILABLE
    detail: str = ""


class _UpstreamError(Exception):
    """An upstream operation failed (wraps the cause; downstream errors stay raw)."""

    def __init__(self, outcome: Outcome, status: int, detail: str, *, reset: int | None = None):
        super().__init__(detail)
        self.outcome = outcome
        self.status = status
        self.detail = detail
        self.reset = reset


def _late() -> _UpstreamError:
    return _UpstreamError(Outcome.LOCAL_FAILURE, 504, "the backend did not answer in time")


async def _up(awaitable: Awaitable[T]) -> T:
    """Run one upstream operation, mapping its failures to :class:`_UpstreamError`."""
    try:
        return await awaitable
    except StreamReset as exc:
        raise _UpstreamError(
            Outcome.LOCAL_FAILURE, 502, f"the backend reset the stream: {exc}", reset=exc.error_code
        ) from exc
    except (ConnectionClosed, RemoteProtocolError) as exc:
        raise _UpstreamError(Outcome.LOCAL_FAILURE, 502, f"backend connection: {exc}") from exc


#: Client address per server-side transport: a connection's peer does not change, and
#: asking the kernel for it on every request is a system call per request.
_PEERS: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


def client_ip(stream: HTTPStream) -> str:
    """The client's address (from the server connection's socket), ``unknown`` if none."""
    transport = getattr(getattr(stream, "_conn", None), "transport", None)
    if transport is None:
        return "unknown"
    known = _PEERS.get(transport)
    if known is None:
        known = _PEERS[transport] = _peer_ip(transport)
    return known


def _peer_ip(transport: object) -> str:
    while isinstance(transport, trio.SSLStream):
        transport = transport.transport_stream
    if isinstance(transport, trio.SocketStream):
        try:
            peer = transport.socket.getpeername()
        except OSError:
            return "unknown"
        if transport.socket.family in (socket.AF_INET, socket.AF_INET6):
            return str(peer[0])
    return "unknown"


class ReverseProxy:
    """A handler forwarding every request to a backend chosen by ``balancer``.

    Run it next to the server: ``await nursery.start(proxy.run)`` (it runs the
    balancer and owns the upstream connections), then ``serve(proxy, host, port)``.

    TLS to the backends: ``ssl_context`` for HTTP/2 (ALPN ``h2``) and
    ``h1_ssl_context`` for HTTP/1.1 backends and WebSocket upgrades (ALPN
    ``http/1.1``); two contexts, because the ALPN offer is set on the context itself.
    ``netkit.security.client_context(ca)`` makes either.
    """

    #: RFC 8441: the server advertises extended CONNECT for WebSocket over HTTP/2.
    connect_protocols = frozenset({"websocket"})

    def __init__(
        self,
        balancer: Balancer,
        config: ProxyConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        h1_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.balancer = balancer
        self.config = config or ProxyConfig()
        self._ssl_context = ssl_context
        self._h1_ssl_context = h1_ssl_context
        self._pools: dict[Backend, BackendPool] = {}
        self._nursery: trio.Nursery | None = None
        #: HTTP/1.1 exchanges on plain TCP waiting for their response head.
        self._waiting: set[H1ClientConnection] = set()
        #: Counters for tests and metrics: attempts, retries, local answers.
        self.attempts = 0
        self.retries = 0
        self.local_answers = 0

    async def run(
        self, *, task_status: trio.TaskStatus[ReverseProxy] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.balancer.add_listener(self._membership)
            await nursery.start(self.balancer.run)
            task_status.started(self)
            await self._watch_responses()

    async def _watch_responses(self) -> None:
        """The response timeout of HTTP/1.1 exchanges on plain TCP.

        Deliberately not a cancel scope per request: entering and leaving one cost 5 %
        of a proxied HTTP/1.1 request (callgrind, the same code with and without: 931k
        and 981k instructions). One task looks at the waiting exchanges four times per
        ``response_timeout`` (at most once a second) and times out the late ones by
        closing their connections, so a late response is noticed between
        ``response_timeout`` and a quarter of it (or a second) after. TLS connections,
        which cannot be closed under a waiting read this way, keep a scope.
        """
        tick = min(1.0, self.config.response_timeout / 4)
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for conn in [c for c in self._waiting if c.answer_by <= now]:
                self._waiting.discard(conn)
                conn.time_out()

    def _membership(self, change: MembershipChange) -> None:
        assert self._nursery is not None
        for state in change.removed:
            pool = self._pools.pop(state.backend, None)
            if pool is not None:
                self._nursery.start_soon(pool.aclose)
        for state in change.added:
            self._pools[state.backend] = BackendPool(
                self._nursery,
                state.backend,
                self.config.limits,
                ssl_context=self._ssl_context,
                h1_ssl_context=self._h1_ssl_context,
            )

    def pool(self, backend: Backend) -> BackendPool:
        return self._pools[backend]

    # -- the handler ----------------------------------------------------------------
    async def __call__(self, stream: HTTPStream) -> None:
        request = stream.request
        if request.protocol == "websocket" or (
            (request.headers.get("upgrade") or "").lower() == "websocket"
        ):
            await self._websocket(stream)
            return
        is_grpc = content_type_is_grpc(request.headers.get("content-type"))
        deadline = math.inf
        if is_grpc and (raw := request.headers.get("grpc-timeout")) is not None:
            try:
                deadline = trio.current_time() + decode_timeout(raw)
            except InvalidTimeout:
                await self._answer_grpc(stream, StatusCode.INTERNAL, "malformed grpc-timeout")
                return
        if deadline == math.inf:
            await self._forward(stream, is_grpc)
            return
        with trio.move_on_at(deadline) as scope:
            await self._forward(stream, is_grpc)
        if scope.cancelled_caught:
            await self._deadline(stream)

    async def _deadline(self, stream: HTTPStream) -> None:
        if not stream.headers_sent:
            await self._answer_grpc(stream, StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        elif not stream.finished:
            await stream.send_trailers(
                [
                    ("grpc-status", str(int(StatusCode.DEADLINE_EXCEEDED))),
                    ("grpc-message", "deadline exceeded"),
                ]
            )

    def _key(self, stream: HTTPStream) -> int | None:
        spec = self.config.hash_key
        if spec is None:
            return None
        if spec == "ip":
            return key_hash(client_ip(stream))
        name = spec.removeprefix("header:")
        value = stream.request.headers.get(name)
        return key_hash(value) if value is not None else None

    def _request_headers(self, stream: HTTPStream) -> tuple[list[tuple[bytes, bytes]], str]:
        request = stream.request
        pairs = end_to_end(request.headers)
        te = request.headers.get("te") or ""
        if "trailers" in te.lower():
            pairs.append((b"te", b"trailers"))
        request_id = forwarding_headers(
            pairs,
            client_ip=client_ip(stream),
            scheme=request.scheme,
            authority=request.authority,
            http_version=request.http_version,
            via=self.config.via,
        )
        inject(pairs)  # the backend's parent span is the proxy's (netkit.observe)
        return pairs, request_id

    async def _forward(self, stream: HTTPStream, is_grpc: bool) -> None:
        request = stream.request
        headers, request_id = self._request_headers(stream)
        declared = request.headers.get("content-length")
        retryable = request.method in IDEMPOTENT or "idempotency-key" in request.headers
        body: bytes | None = None  # None: stream the body
        if not is_grpc and declared is not None and declared.isdigit():
            if int(declared) <= self.config.retry_buffer_size:
                body = await stream.read_body()
        elif (
            not is_grpc
            and declared is None
            and request.method in ("GET", "HEAD", "DELETE", "OPTIONS")
        ) and "transfer-encoding" not in request.headers:
            body = b""
        #: Kept for a retry: a body read up to a known size (gRPC bodies never are).
        can_replay = body is not None
        if body is None:
            stream.set_body_limit(None)  # streamed with backpressure: nothing accumulates
            if stream.body_arrived:
                # Already here whole (a unary gRPC call, a small HTTP/2 POST): it is in
                # memory anyway, so it goes on in one piece, without a pump task.
                body = await stream.read_body()
        key = self._key(stream)
        tried: list[BackendState] = []
        result: _Result | None = None
        state = self.balancer.pick(key=key)
        attempt = 0
        while state is not None:
            retry = attempt > 0
            tried.append(state)
            self.attempts += 1
            self.retries += retry
            started = self.balancer.start(state, retry=retry)
            outcome = Outcome.CANCELLED
            try:

                def next_backend(attempt: int = attempt) -> BackendState | None:
                    if attempt >= self.config.max_retries or not self.balancer.lb.may_retry():
                        return None
                    return self.balancer.pick(key=key, exclude=tuple(tried))

                result = await self._attempt(
                    stream,
                    state,
                    headers,
                    body,
                    request_id,
                    is_grpc,
                    retryable and can_replay,
                    next_backend,
                )
                outcome = result.outcome
            finally:
                self.balancer.end(state, started, outcome, retry=retry)
            if result.end is not _End.RETRY:
                break
            attempt += 1
            if attempt > self.config.max_retries or not self.balancer.lb.may_retry():
                break
            state = next_backend_after = self.balancer.pick(key=key, exclude=tuple(tried))
            if next_backend_after is None:
                break
            log.info(
                "%s %s: retrying on %s (%s)",
                request.method,
                request.target,
                state.backend.address if state else "-",
                result.detail,
            )
        if result is None:
            self.local_answers += 1
            await self._fail(
                stream, is_grpc, 503, StatusCode.UNAVAILABLE, "no backend available", request_id
            )
        elif result.end is not _End.DONE:
            self.local_answers += 1
            await self._fail(
                stream, is_grpc, result.status, result.grpc_code, result.detail, request_id
            )

    async def _fail(
        self,
        stream: HTTPStream,
        is_grpc: bool,
        status: int,
        code: StatusCode,
        detail: str,
        request_id: str,
    ) -> None:
        request = stream.request
        log.info("%s %s: the proxy answers %d: %s", request.method, request.target, status, detail)
        if stream.headers_sent:
            if not stream.finished:
                await stream.abort()
            return
        if is_grpc:
            await self._answer_grpc(stream, code, detail)
            return
        headers, payload = error_body(status, detail)
        headers.append(("x-request-id", request_id))
        if status == 503:
            headers.append(("retry-after", "1"))
        await stream.respond(status, headers, payload)

    async def _answer_grpc(self, stream: HTTPStream, code: StatusCode, message: str) -> None:
        """A Trailers-Only gRPC answer (the status in the response head)."""
        from ..wire import encode_grpc_message

        await stream.send_headers(
            200,
            [
                ("content-type", "application/grpc"),
                ("grpc-status", str(int(code))),
                ("grpc-message", encode_grpc_message(message)),
            ],
            end_stream=True,
        )

    # -- one attempt ------------------------------------------------------------------
    async def _attempt(
        self,
        stream: HTTPStream,
        state: BackendState,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        request_id: str,
        is_grpc: bool,
        retryable: bool,
        next_backend: Callable[[], BackendState | None],
    ) -> _Result:
        pool = self._pools.get(state.backend)
        if pool is None:
            return _Result(_End.RETRY, Outcome.CANCELLED, 503, detail="backend left")
        try:
            pool.take_request_slot()
            try:
                protocol = state.backend.protocol
                if protocol == "h2" or (is_grpc and protocol == "auto"):
                    return await self._attempt_h2(
                        stream, pool, headers, body, request_id, is_grpc, retryable, next_backend
                    )
                return await self._attempt_h1(
                    stream, pool, headers, body, request_id, retryable, next_backend
                )
            finally:
                pool.active -= 1
        except Overloaded as exc:
            return _Result(
                _End.FAILED,
                Outcome.CANCELLED,
                503,
                StatusCode.UNAVAILABLE,
                f"backend overloaded: {exc}",
            )
        except ConnectFailed as exc:
            # Raised before any of the request was sent or read: it may go elsewhere,
            # idempotent or not, streamed or not.
            return _Result(_End.RETRY, Outcome.LOCAL_FAILURE, 503, StatusCode.UNAVAILABLE, str(exc))
        except _UpstreamError as exc:
            end = _End.RETRY if (retryable and not stream.headers_sent) else _End.FAILED
            if stream.headers_sent or (is_grpc and exc.reset is not None):
                # Past the point of answering ourselves -- or a gRPC stream reset by the
                # backend, which the client gets as the same reset (CANCEL stays
                # CANCELLED, REFUSED_STREAM stays transparently retryable).
                end = _End.DONE
                await self._broken_midway(stream, is_grpc, exc)
            code = StatusCode.UNAVAILABLE
            return _Result(end, exc.outcome, exc.status, code, exc.detail)

    async def _broken_midway(self, stream: HTTPStream, is_grpc: bool, exc: _UpstreamError) -> None:
        """The backend failed after the response started: end the client's side too."""
        if stream.finished:
            return
        if is_grpc and exc.reset is None:
            from ..wire import encode_grpc_message

            await stream.send_trailers(
                [
                    ("grpc-status", str(int(StatusCode.UNAVAILABLE))),
                    ("grpc-message", encode_grpc_message(exc.detail)),
                ]
            )
            return
        await stream.abort(exc.reset)

    def _response_headers(
        self, headers: Headers, request_id: str, version: str
    ) -> list[tuple[bytes, bytes]]:
        pairs = end_to_end(headers)
        hop = f"{version} {self.config.via}"
        has_id = False
        for i, (name, value) in enumerate(pairs):
            if name == b"via" and hop:  # appended to the first Via field only
                pairs[i] = (name, value + b", " + hop.encode("latin-1"))
                hop = ""
            elif name == REQUEST_ID:
                has_id = True
        if hop:
            pairs.append((b"via", hop.encode("latin-1")))
        if not has_id:
            pairs.append((REQUEST_ID, request_id.encode()))
        return pairs

    async def _pump_request(
        self,
        stream: HTTPStream,
        send: Callable[[bytes], Awaitable[None]],
        end: Callable[[], Awaitable[None]],
        failed: list[BaseException],
        cancel: trio.CancelScope,
    ) -> None:
        """Downstream body -> upstream, chunk by chunk. Never raises: failures are noted.

        A downstream failure (client reset, connection lost) cancels the exchange; an
        upstream one only stops sending (the response side will tell what happened).
        """
        try:
            while True:
                with trio.fail_after(self.config.idle_timeout):
                    chunk = await stream.receive()
                if not chunk:
                    break
                await _up(send(chunk))
            await _up(end())
        except _UpstreamError as exc:
            if exc.reset == 0:
                return  # RST_STREAM(NO_ERROR): the backend needs no more of the body
            failed.append(exc)
        except (StreamReset, ConnectionClosed, NetkitError, trio.TooSlowError) as exc:
            failed.append(exc)
            cancel.cancel()

    async def _attempt_h2(
        self,
        stream: HTTPStream,
        pool: BackendPool,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        request_id: str,
        is_grpc: bool,
        retryable: bool,
        next_backend: Callable[[], BackendState | None],
    ) -> _Result:
        request = stream.request
        conn = await pool.h2()
        head = [(b":authority", request.authority.encode("latin-1")), *headers]
        try:
            up = await conn.open_stream(
                request.method, request.target, head, end_stream=body == b""
            )
        except (ConnectionClosed, StreamReset) as exc:
            raise ConnectFailed(str(exc)) from exc  # the stream never started: nothing sent
        try:
            if body is not None and len(body) <= _INLINE_BODY:
                # The usual case: no body, or one small enough that sending it never
                # waits for a window (it fits the initial one); no task, no nursery.
                if body:
                    await self._send_buffered_h2(up, body, [])
                return await self._relay_response_h2(
                    stream, up, request_id, is_grpc, retryable, next_backend
                )
            failed: list[BaseException] = []
            error: BaseException | None = None
            async with trio.open_nursery() as nursery:
                if body is not None:
                    nursery.start_soon(self._send_buffered_h2, up, body, failed)
                else:
                    nursery.start_soon(
                        self._pump_request,
                        stream,
                        up.send_data,
                        up.end,
                        failed,
                        nursery.cancel_scope,
                    )
                try:
                    result = await self._relay_response_h2(
                        stream, up, request_id, is_grpc, retryable, next_backend
                    )
                except (_UpstreamError, StreamReset, ConnectionClosed) as exc:
                    error = exc
                nursery.cancel_scope.cancel()
        finally:
            up.abandon()
        if any(not isinstance(e, _UpstreamError) for e in failed):
            return _Result(_End.DONE, Outcome.CANCELLED)  # the client went away
        if error is not None:
            raise error
        return result

    async def _send_buffered_h2(
        self, up: ClientStream, body: bytes, failed: list[BaseException]
    ) -> None:
        try:
            await _up(up.send_data(body, end_stream=True))
        except _UpstreamError as exc:
            if exc.reset != 0:
                failed.append(exc)

    async def _relay_response_h2(
        self,
        stream: HTTPStream,
        up: ClientStream,
        request_id: str,
        is_grpc: bool,
        retryable: bool,
        next_backend: Callable[[], BackendState | None],
    ) -> _Result:
        try:
            if is_grpc:  # bounded by the call's deadline (grpc-timeout), not ours
                status, resp_headers = await _up(up.receive_headers())
            else:
                with trio.move_on_after(self.config.response_timeout) as head_scope:
                    status, resp_headers = await _up(up.receive_headers())
                if head_scope.cancelled_caught:
                    raise _UpstreamError(
                        Outcome.LOCAL_FAILURE, 504, "the backend did not answer in time"
                    )
            outcome = Outcome.SERVER_ERROR if status >= 500 else Outcome.SUCCESS
            if status in self.config.retry_on and retryable and next_backend() is not None:
                return _Result(_End.RETRY, outcome, status, detail=f"backend answered {status}")
            pairs = self._response_headers(resp_headers, request_id, "2")
            if is_grpc and "grpc-status" in resp_headers and up._ended:
                await stream.send_headers(status, pairs, end_stream=True)  # Trailers-Only
                return _Result(_End.DONE, outcome)
            body = up.take_complete_body()
            if body is not None:
                # The whole response came with its head (a small answer, a unary call):
                # pass it on in one step -- one write, no scheduling round per part.
                await self._respond_whole(stream, status, pairs, body, up.trailers, is_grpc)
            else:
                await stream.send_headers(status, pairs)
                while True:
                    with trio.fail_after(self.config.idle_timeout):
                        chunk = await _up(up.receive_data())
                    assert isinstance(chunk, bytes)
                    if not chunk:
                        break
                    await stream.send_data(chunk)
                if up.trailers is not None:
                    await stream.send_trailers(end_to_end(up.trailers))
                else:
                    await stream.send_data(b"", end_stream=True)
            if is_grpc and up.trailers is not None:
                code = up.trailers.get("grpc-status")
                if code in ("14", "13", "4"):
                    outcome = Outcome.SERVER_ERROR
            return _Result(_End.DONE, outcome)
        except trio.TooSlowError as exc:
            raise _UpstreamError(Outcome.LOCAL_FAILURE, 504, "the backend went idle") from exc

    async def _respond_whole(
        self,
        stream: HTTPStream,
        status: int,
        pairs: list[tuple[bytes, bytes]],
        body: bytes,
        trailers: Headers | None,
        is_grpc: bool,
    ) -> None:
        """A complete upstream response to the client in one step where one exists."""
        if trailers is not None and is_grpc:
            await stream.respond_with_trailers(status, pairs, body, end_to_end(trailers))
        elif (
            trailers is None and status not in BODYLESS_STATUSES and stream.request.method != "HEAD"
        ):
            # ``respond`` sets content-length itself (the backend's, if any, was checked
            # against the body by the HTTP/2 client).
            pairs = [pair for pair in pairs if pair[0] != b"content-length"]
            await stream.respond(status, pairs, body)
        else:
            await stream.send_headers(status, pairs)
            if body:
                await stream.send_data(body)
            if trailers is not None:
                await stream.send_trailers(end_to_end(trailers))
            else:
                await stream.send_data(b"", end_stream=True)

    async def _attempt_h1(
        self,
        stream: HTTPStream,
        pool: BackendPool,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        request_id: str,
        retryable: bool,
        next_backend: Callable[[], BackendState | None],
    ) -> _Result:
        request = stream.request
        conn = await pool.h1()
        done = False
        try:
            head = [(b"host", request.authority.encode("latin-1")), *headers]
            if body is None:
                if not any(n == b"content-length" for n, _ in head):
                    head.append((b"transfer-encoding", b"chunked"))
            elif body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                head = [(n, v) for n, v in head if n != b"content-length"]
                head.append((b"content-length", str(len(body)).encode()))
            if body is not None:
                # The usual case: the whole request in one write, no pump task.
                while True:
                    try:
                        await _up(conn.send_request(request.method, request.target, head, body))
                    except _UpstreamError as exc:
                        raise ConnectFailed(exc.detail) from exc  # stale keep-alive
                    try:
                        result = await self._relay_response_h1(
                            stream, conn, request_id, retryable, next_backend
                        )
                    except _UpstreamError as exc:
                        closed = isinstance(exc.__cause__, ConnectionClosed)
                        race = closed and not conn.answered
                        if not (race and retryable and conn.exchanges > 1):
                            raise
                        # The keep-alive race: the backend closed a connection it found
                        # idle just as this request went out on it. Nothing came back,
                        # and the request may be repeated: once more on a new connection
                        # (as Go's and curl's clients do), not counted as a retry.
                        conn.broken = True
                        pool.release_h1(conn)
                        conn = await pool.h1(fresh=True)
                        continue
                    done = result.end is _End.DONE
                    return result
            try:
                await _up(conn.send_head(request.method, request.target, head))
            except _UpstreamError as exc:
                raise ConnectFailed(exc.detail) from exc  # stale keep-alive: nothing processed
            failed: list[BaseException] = []
            error: BaseException | None = None
            streamed: _Result | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._pump_request,
                    stream,
                    conn.send_data,
                    conn.end,
                    failed,
                    nursery.cancel_scope,
                )
                try:
                    streamed = await self._relay_response_h1(
                        stream, conn, request_id, retryable, next_backend
                    )
                except (_UpstreamError, StreamReset, ConnectionClosed) as exc:
                    error = exc
                nursery.cancel_scope.cancel()
            if any(not isinstance(e, _UpstreamError) for e in failed):
                return _Result(_End.DONE, Outcome.CANCELLED)
            if error is not None:
                raise error
            assert streamed is not None
            done = streamed.end is _End.DONE and not failed
            return streamed
        finally:
            if not done:
                conn.broken = True
            pool.release_h1(conn)

    async def _h1_head(self, conn: H1ClientConnection) -> tuple[int, Headers]:
        """The response head, within ``response_timeout`` (504 after it)."""
        if conn.io.fd >= 0:  # plain TCP: the watchdog (_watch_responses) keeps the time
            conn.answer_by = trio.current_time() + self.config.response_timeout
            self._waiting.add(conn)
            try:
                return await _up(conn.receive_head())
            except _UpstreamError as exc:
                if conn.timed_out:
                    raise _late() from exc
                raise
            finally:
                self._waiting.discard(conn)
        with trio.move_on_after(self.config.response_timeout):
            return await _up(conn.receive_head())
        conn.broken = True  # a late answer must never be taken for the next request's
        raise _late()

    async def _relay_response_h1(
        self,
        stream: HTTPStream,
        conn: H1ClientConnection,
        request_id: str,
        retryable: bool,
        next_backend: Callable[[], BackendState | None],
    ) -> _Result:
        try:
            status, resp_headers = await self._h1_head(conn)
            outcome = Outcome.SERVER_ERROR if status >= 500 else Outcome.SUCCESS
            if status in self.config.retry_on and retryable and next_backend() is not None:
                return _Result(_End.RETRY, outcome, status, detail=f"backend answered {status}")
            pairs = self._response_headers(resp_headers, request_id, "1.1")
            body = conn.complete_body()
            if body is not None:
                # The whole response came with its head: on to the client in one step.
                await self._respond_whole(stream, status, pairs, body, None, False)
                return _Result(_End.DONE, outcome)
            if stream.request.method == "HEAD" or status in (204, 304):
                await stream.send_headers(status, pairs, end_stream=True)
                while await _up(conn.receive_data()):
                    pass
                return _Result(_End.DONE, outcome)
            await stream.send_headers(status, pairs)
            while True:
                with trio.fail_after(self.config.idle_timeout):
                    chunk = await _up(conn.receive_data())
                if not chunk:
                    break
                await stream.send_data(chunk)
            trailers = end_to_end(conn.trailers) if conn.trailers else None
            if trailers and "trailers" in (stream.request.headers.get("te") or "").lower():
                await stream.send_trailers(trailers)
            else:
                await stream.send_data(b"", end_stream=True)
            return _Result(_End.DONE, outcome)
        except trio.TooSlowError as exc:
            raise _UpstreamError(Outcome.LOCAL_FAILURE, 504, "the backend went idle") from exc

    # -- WebSocket --------------------------------------------------------------------
    async def _websocket(self, stream: HTTPStream) -> None:
        request = stream.request
        headers, request_id = self._request_headers(stream)
        headers = [
            (n, v)
            for n, v in headers
            if not n.startswith(b"sec-websocket-key")
            and n != b"sec-websocket-version"
            and n != b"content-length"
        ]
        client_key = request.headers.get("sec-websocket-key")
        key = client_key.encode() if client_key else websocket_key()
        state = self.balancer.pick(key=self._key(stream))
        if state is None:
            await self._fail(
                stream, False, 503, StatusCode.UNAVAILABLE, "no backend available", request_id
            )
            return
        started = self.balancer.start(state)
        outcome = Outcome.CANCELLED
        upstream: trio.abc.Stream | None = None
        try:
            try:
                transport = await open_tcp(
                    state.backend, self.config.limits.connect_timeout, self._h1_ssl_context
                )
            except ConnectFailed as exc:
                outcome = Outcome.LOCAL_FAILURE
                await self._fail(stream, False, 502, StatusCode.UNAVAILABLE, str(exc), request_id)
                return
            upstream = transport
            conn = H1ClientConnection(transport)
            path = request.target
            head = [
                (b"host", request.authority.encode("latin-1")),
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-key", key),
                (b"sec-websocket-version", b"13"),
                *headers,
            ]
            try:
                await _up(conn.send_head("GET", path, head))
                await _up(conn.end())
                with trio.fail_after(self.config.response_timeout):
                    status, resp = await _up(conn.receive_head(switch=True))
            except (_UpstreamError, trio.TooSlowError) as exc:
                outcome = Outcome.LOCAL_FAILURE
                await self._fail(
                    stream,
                    False,
                    502,
                    StatusCode.UNAVAILABLE,
                    f"WebSocket handshake with the backend failed: {exc}",
                    request_id,
                )
                return
            if status != 101:
                outcome = Outcome.SERVER_ERROR if status >= 500 else Outcome.SUCCESS
                body = b""
                try:
                    while chunk := await _up(conn.receive_data()):
                        assert isinstance(chunk, bytes)
                        body += chunk
                except _UpstreamError:
                    pass
                await stream.respond(status, self._response_headers(resp, request_id, "1.1"), body)
                return
            if (resp.get("sec-websocket-accept") or "").encode() != websocket_accept(key):
                outcome = Outcome.SERVER_ERROR
                await self._fail(
                    stream,
                    False,
                    502,
                    StatusCode.UNAVAILABLE,
                    "the backend's Sec-WebSocket-Accept is wrong",
                    request_id,
                )
                return
            outcome = Outcome.SUCCESS
            answer: list[tuple[bytes, bytes]] = [
                (n, v)
                for n, v in resp.raw()
                if n in (b"sec-websocket-protocol", b"sec-websocket-extensions")
            ]
            if request.protocol is None:
                answer = [
                    (b"upgrade", b"websocket"),
                    (b"connection", b"Upgrade"),
                    (b"sec-websocket-accept", websocket_accept(key)),
                    *answer,
                ]
            leftover = conn.leftover()
        finally:
            self.balancer.end(state, started, outcome)
            if outcome is not Outcome.SUCCESS and upstream is not None:
                await trio.aclose_forcefully(upstream)
        assert upstream is not None
        tunnel = await stream.accept_tunnel(answer)
        try:
            if leftover:
                await tunnel.send_all(leftover)
            await self._relay(tunnel, upstream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(upstream)
            await trio.aclose_forcefully(tunnel)

    async def _relay(self, a: trio.abc.Stream, b: trio.abc.Stream) -> None:
        """Copy bytes both ways until both directions ended (or one broke)."""
        grace = self.config.websocket_relay_grace

        async def copy(src: trio.abc.Stream, dst: trio.abc.Stream, scope: trio.CancelScope) -> None:
            # One direction ending (cleanly or not) must not cut off the other one, which
            # may still carry the peer's last frames (the close handshake): it gets
            # ``grace`` seconds more.
            # A source that broke rather than ended (a TLS peer closing without
            # close_notify) ends the destination all the same, so its peer is not left
            # waiting out the grace.
            try:
                while data := await src.receive_some(_CHUNK):
                    await dst.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            try:
                if isinstance(dst, trio.abc.HalfCloseableStream):
                    await dst.send_eof()
                else:
                    await dst.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            scope.deadline = min(scope.deadline, trio.current_time() + grace)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(copy, a, b, nursery.cancel_scope)
            nursery.start_soon(copy, b, a, nursery.cancel_scope)
