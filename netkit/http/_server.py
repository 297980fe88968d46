"""``serve``: one listening port for HTTP/1.1 and HTTP/2, cleartext or TLS.

The server owns a nursery of connection tasks; each connection picks its protocol
(ALPN under TLS; on cleartext, the HTTP/2 preface in the first bytes means HTTP/2 with
prior knowledge) and runs the matching driver. Nothing outlives ``serve``: when it
returns, every connection and stream task has finished.
"""

from __future__ import annotations

import errno
import logging
import ssl
from contextvars import ContextVar
from typing import Protocol

import attrs
import trio

from ._config import ServerConfig
from ._h2 import PREFACE, H2Connection
from ._h11 import H11Connection
from ._observer import ServerObserver
from ._stream import Handler

log = logging.getLogger("netkit.server")

_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


class _Drainable(Protocol):
    def start_drain(self) -> None: ...


@attrs.define(eq=False)
class Server:
    """A running server, as handed back by ``nursery.start(netkit.serve, ...)``."""

    config: ServerConfig
    listeners: list[trio.SocketListener]
    _shutdown: trio.Event = attrs.field(factory=trio.Event)
    _connections: set[_Drainable] = attrs.field(factory=set)
    _all_closed: trio.Event = attrs.field(factory=trio.Event)
    _open: int = 0
    #: ``(host, port)`` of each listener, read at bind time: still valid after the
    #: listeners close on shutdown.
    addresses: list[tuple[str, int]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.addresses = [tuple(listener.socket.getsockname()[:2]) for listener in self.listeners]

    @property
    def sockets(self) -> list[trio.socket.SocketType]:
        return [listener.socket for listener in self.listeners]

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        return self.addresses[0][1]

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def connection_count(self) -> int:
        return self._open

    def shutdown(self) -> None:
        """Begin a graceful shutdown; ``serve`` returns once it has completed.

        Stops accepting, sends GOAWAY on HTTP/2 connections, lets in-flight requests
        finish within ``config.shutdown_grace``, then cancels what is left.
        """
        self._shutdown.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    async def wait_shutdown(self) -> None:
        """Return once a graceful shutdown has begun (at once if it already has).

        For long-lived sessions the HTTP layer cannot end by itself (a WebSocket, a
        tunnel): they watch this to say goodbye in their own protocol within
        ``config.shutdown_grace``, rather than be cancelled when it runs out.
        """
        await self._shutdown.wait()


_current: ContextVar[Server] = ContextVar("netkit.http.current_server")


def current_server() -> Server | None:
    """The :class:`Server` whose connection the calling task serves, or None.

    Set for every task ``serve`` starts (connections, handlers and what they spawn), so
    an upper layer can reach ``Server.wait_shutdown`` without the HTTP layer knowing it.
    """
    return _current.get(None)


def _protocol_for_alpn(transport: trio.SSLStream[trio.SocketStream]) -> str:
    return "h2" if transport.selected_alpn_protocol() == "h2" else "http/1.1"


async def _sniff(transport: trio.abc.Stream) -> tuple[str, bytes]:
    """Read until the first bytes tell HTTP/2 prior knowledge from HTTP/1.1."""
    data = b""
    while len(data) < len(PREFACE) and PREFACE.startswith(data):
        chunk = await transport.receive_some(65536)
        if not chunk:
            return "eof", data
        data += chunk
    return ("h2" if data.startswith(PREFACE) else "http/1.1"), data


async def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    config: ServerConfig | None = None,
    observer: ServerObserver | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled or ``Server.shutdown()``.

    Use it with ``server = await nursery.start(serve, app, "127.0.0.1", 0)``: ``start``
    returns once the sockets are listening, with the :class:`Server` handle. With an
    ``ssl_context``, ALPN is set to offer ``h2`` and ``http/1.1`` on it. ``observer``
    (e.g. ``netkit.observe.Observability``) is told about connections, requests and
    protocol events; without one, nothing is measured.
    """
    config = config or ServerConfig()
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=config.backlog)
    server = Server(config=config, listeners=listeners)
    _current.set(server)  # serve runs in its own task: inherited by its children only
    slots = trio.Semaphore(config.max_connections)
    scheme = "https" if ssl_context is not None else "http"

    async def handle(sock: trio.SocketStream) -> None:
        transport: trio.abc.Stream = sock
        conn: H11Connection | H2Connection | None = None
        try:
            with trio.move_on_after(config.request_head_timeout) as head_scope:
                if ssl_context is not None:
                    tls = trio.SSLStream(sock, ssl_context, server_side=True)
                    transport = tls
                    await tls.do_handshake()
                    proto, initial = _protocol_for_alpn(tls), b""
                else:
                    proto, initial = await _sniff(sock)
            if head_scope.cancelled_caught or proto == "eof":
                return
            cls = H2Connection if proto == "h2" else H11Connection
            conn = cls(
                transport, handler, config, scheme=scheme, initial_data=initial, observer=observer
            )
            server._connections.add(conn)
            if server.shutting_down:
                conn.start_drain()
            if observer is None:
                await conn.run()
            else:
                protocol = "h2" if proto == "h2" else "http/1.1"
                observer.connection_opened(protocol)
                try:
                    await conn.run()
                finally:
                    observer.connection_closed(protocol)
        except _TRANSPORT_ERRORS:
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            if conn is not None:
                server._connections.discard(conn)
            server._open -= 1
            slots.release()
            await trio.aclose_forcefully(transport)
            if server.shutting_down and server._open == 0:
                server._all_closed.set()

    async def accept_loop(listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                await slots.acquire()
                try:
                    sock = await listener.accept()
                except OSError as exc:
                    slots.release()
                    if exc.errno in _ACCEPT_RETRY_ERRNOS:
                        log.error("accept failed (%s); retrying shortly", exc)
                        await trio.sleep(0.1)
                        continue
                    raise
                except BaseException:
                    slots.release()
                    raise
                server._open += 1
                nursery.start_soon(handle, sock)

    async with trio.open_nursery() as conn_nursery:
        with trio.CancelScope() as accept_scope:
            async with trio.open_nursery() as accept_nursery:
                for listener in listeners:
                    accept_nursery.start_soon(accept_loop, listener, conn_nursery)
                task_status.started(server)
                await server._shutdown.wait()
                accept_scope.cancel()
        # Graceful shutdown: no new connections; drain the open ones.
        for conn in list(server._connections):
            conn.start_drain()
        if server._open:
            with trio.move_on_after(config.shutdown_grace):
                await server._all_closed.wait()
        conn_nursery.cancel_scope.cancel()
