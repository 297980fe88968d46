"""Upstream connection pools, one per backend, bounded by circuit-breaker limits.

HTTP/2 backends get one multiplexed :class:`~netkit.http.H2ClientConnection`, kept in
a task of the proxy's nursery and replaced when it drops or receives GOAWAY (the old
one lives on until its streams finish). HTTP/1.1 backends get keep-alive
:class:`H1ClientConnection` objects, at most ``max_connections``, reused while clean.

The limits are Envoy's circuit breakers, per backend: requests in flight
(``max_requests``), requests waiting for a connection (``max_pending``) and
connections (``max_connections``). Going over one raises :class:`Overloaded` at once
-- the proxy answers 503 / UNAVAILABLE -- instead of queueing without bound.
"""

from __future__ import annotations

import ssl

import attrs
import trio

from ..errors import ConnectionClosed, NetkitError
from ..http import ClientConfig, H2ClientConnection
from ._backend import Backend
from ._h1client import H1ClientConnection


class Overloaded(NetkitError):
    """A circuit-breaker limit of a backend's pool was reached."""


class ConnectFailed(NetkitError):
    """The backend could not be reached: nothing was sent, so any request may be retried."""


#: An HTTP/1.1 connection idle for less than this is reused without first checking that
#: the backend has not closed it (servers close idle connections after seconds: 5 s for
#: netkit and hypercorn, 5 s for uvicorn, 75 s for nginx).
_FRESH = 1.0


@attrs.frozen(kw_only=True)
class PoolLimits:
    """Circuit breakers per backend (Envoy's defaults: 1,024 each)."""

    max_connections: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    max_pending: int = attrs.field(default=1024, validator=attrs.validators.ge(0))
    max_requests: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    connect_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: Idle HTTP/1.1 connections kept per backend for reuse. As many as may be open:
    #: a cap below the usual concurrency closes and reopens a connection per request in
    #: bursts (Envoy has no separate cap; the backend's keep-alive timeout and the
    #: check before reuse retire idle ones).
    max_idle: int = attrs.field(default=1024, validator=attrs.validators.ge(0))


async def open_tcp(
    backend: Backend, seconds: float, ssl_context: ssl.SSLContext | None = None
) -> trio.abc.Stream:
    """A connection to ``backend`` within ``seconds`` (TLS too, when ``ssl_context`` is
    given: the backend's host is the name checked), or :class:`ConnectFailed`."""
    try:
        with trio.fail_after(seconds):
            stream: trio.abc.Stream = await trio.open_tcp_stream(backend.host, backend.port)
            if ssl_context is not None:
                tls = trio.SSLStream(stream, ssl_context, server_hostname=backend.host)
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
                stream = tls
            return stream
    except trio.TooSlowError as exc:
        raise ConnectFailed(f"connecting to {backend.address} took over {seconds} s") from exc
    except (OSError, ssl.SSLError, trio.BrokenResourceError) as exc:
        raise ConnectFailed(f"cannot connect to {backend.address}: {exc}") from exc


class BackendPool:
    """The connections to one backend and its circuit-breaker counters."""

    def __init__(
        self,
        nursery: trio.Nursery,
        backend: Backend,
        limits: PoolLimits,
        *,
        client_config: ClientConfig | None = None,
        ssl_context: ssl.SSLContext | None = None,
        h1_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.backend = backend
        self.limits = limits
        self._nursery = nursery
        self._client_config = client_config or ClientConfig(
            connect_timeout=limits.connect_timeout, max_concurrent_streams=1000
        )
        self._ssl_context = ssl_context
        self._h1_ssl_context = h1_ssl_context
        self.active = 0
        self.pending = 0
        self.connections = 0
        self._h2: H2ClientConnection | None = None
        self._h2_done: trio.Event | None = None
        self._h2_lock = trio.Lock()
        self._idle: list[H1ClientConnection] = []
        self._freed = trio.Event()
        self.closed = False

    # -- the circuit breaker ----------------------------------------------------------
    def take_request_slot(self) -> None:
        """Take one of ``max_requests`` (give it back with ``active -= 1``); raises
        :class:`Overloaded` at once if none is free. The proxy's per-request path: no
        context-manager generator."""
        if self.active >= self.limits.max_requests:
            raise Overloaded(f"{self.backend.address}: {self.active} requests in flight")
        self.active += 1

    # -- HTTP/2 ---------------------------------------------------------------------
    async def h2(self) -> H2ClientConnection:
        """The backend's multiplexed connection, (re)opened if needed."""
        conn = self._h2
        if conn is not None and conn.is_usable:
            return conn
        if self.pending >= self.limits.max_pending:
            raise Overloaded(f"{self.backend.address}: {self.pending} requests waiting")
        self.pending += 1
        try:
            async with self._h2_lock:
                conn = self._h2
                if conn is not None and conn.is_usable:
                    return conn
                if self.closed:
                    raise ConnectFailed(f"{self.backend.address} left the balancer")
                if self._h2_done is not None:
                    self._h2_done.set()  # retire the old one once its streams finish
                try:
                    started: H2ClientConnection = await self._nursery.start(self._keep_h2)
                    conn = started
                except (ConnectionClosed, NetkitError, OSError, ssl.SSLError) as exc:
                    raise ConnectFailed(f"cannot connect to {self.backend.address}: {exc}") from exc
                self._h2 = conn
                return conn
        finally:
            self.pending -= 1

    async def _keep_h2(
        self, task_status: trio.TaskStatus[H2ClientConnection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        done = self._h2_done = trio.Event()
        self.connections += 1
        try:
            async with H2ClientConnection.connect(
                self.backend.host,
                self.backend.port,
                ssl_context=self._ssl_context,
                config=self._client_config,
            ) as conn:
                task_status.started(conn)
                await done.wait()
                await conn.wait_idle()
        finally:
            self.connections -= 1

    # -- HTTP/1.1 -------------------------------------------------------------------
    async def h1(self, *, fresh: bool = False) -> H1ClientConnection:
        """An idle keep-alive connection (unless ``fresh``), or a new one within
        ``max_connections``."""
        while self._idle and not fresh:
            conn = self._idle.pop()
            if conn.reusable and (
                trio.current_time() - conn.idle_since < _FRESH or conn.still_open()
            ):
                return conn
            self._drop(conn)
        if fresh and self._idle and self.connections >= self.limits.max_connections:
            self._drop(self._idle.pop(0))  # room for the new one: the oldest goes
        if self.connections >= self.limits.max_connections:
            if self.pending >= self.limits.max_pending:
                raise Overloaded(f"{self.backend.address}: {self.pending} requests waiting")
            self.pending += 1
            try:
                while self.connections >= self.limits.max_connections and not self._idle:
                    self._freed = trio.Event()
                    await self._freed.wait()
            finally:
                self.pending -= 1
            return await self.h1(fresh=fresh)
        self.connections += 1
        try:
            transport = await open_tcp(
                self.backend, self.limits.connect_timeout, self._h1_ssl_context
            )
        except BaseException:
            self.connections -= 1
            raise
        return H1ClientConnection(transport)

    def release_h1(self, conn: H1ClientConnection) -> None:
        """Give a connection back: kept if clean and room remains, closed otherwise.

        Not async: it runs in the ``finally`` of every proxied HTTP/1.1 request, where a
        checkpoint would cost a scheduling round; closing a connection that cannot be
        kept happens in the pool's nursery.
        """
        if not self.closed and conn.reusable and len(self._idle) < self.limits.max_idle:
            conn.idle_since = trio.current_time()
            self._idle.append(conn)
            self._freed.set()
            return
        self._drop(conn)

    def _drop(self, conn: H1ClientConnection) -> None:
        """No longer one of ours: its slot is free now, and it closes in the pool's nursery."""
        self.connections -= 1
        self._freed.set()
        conn.broken = True
        self._nursery.start_soon(conn.aclose)

    async def aclose(self) -> None:
        """The backend left: close idle connections; the HTTP/2 one retires when idle."""
        self.closed = True
        if self._h2_done is not None:
            self._h2_done.set()
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
        await trio.lowlevel.checkpoint()
