"""In-process connections: serve any netkit handler over in-memory streams, and clients.

:class:`MemoryServer` is ``netkit.serve`` without sockets: each :meth:`~MemoryServer.connect`
makes a ``trio.testing.memory_stream_pair``, serves the server end exactly as ``serve``
serves an accepted socket (the HTTP/2 preface is sniffed, so HTTP/1.1 -- WebSocket
upgrades included -- and HTTP/2 prior knowledge both work) and hands back the client end.
Under ``MockClock(autojump_threshold=0)`` every timeout of the server (keep-alive, head,
write timeouts) and of the clients (gRPC deadlines, WebSocket heartbeats, registry TTLs)
fires in mock time: a test of them takes milliseconds and is deterministic.

A ``wrap`` function given to ``connect`` (or to the server) wraps either end, e.g. in a
:class:`~netkit.testing.FaultyStream`.

The clients, each an async context manager over a new in-memory connection:

* :func:`http1_request` -- one raw HTTP/1.1 exchange (h11), ``(status, headers, body)``;
* :func:`open_h2_client` -- netkit's :class:`~netkit.http.H2ClientConnection`;
* :func:`open_grpc_channel` -- netkit's gRPC :class:`~netkit.grpc.Channel`, whose every
  (re)connection is a new in-memory connection;
* :func:`open_websocket` -- a trio-websocket client connection (HTTP/1.1 Upgrade).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import h11
import trio
import trio.testing
import trio_websocket

from ..grpc import Channel, ChannelConfig, ClientInterceptor, open_channel
from ..http import ClientConfig, H2ClientConnection, ServerConfig
from ..http._h2 import H2Connection
from ..http._h11 import H11Connection
from ..http._server import _sniff
from ..http._stream import Handler

#: Wraps one end of a connection (e.g. in a fault-injecting stream).
StreamWrapper = Callable[[trio.abc.Stream], trio.abc.Stream]


class MemoryServer:
    """Serves ``handler`` over in-memory connections; start with ``nursery.start(server.run)``.

    ``server_wrap`` wraps the server end of every connection (``connect(wrap=...)`` the
    client end of one). ``connections`` counts the connections being served.
    """

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig | None = None,
        *,
        server_wrap: StreamWrapper | None = None,
    ) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self.server_wrap = server_wrap
        self.connections = 0
        #: Every connection made so far: (client end, server end), unwrapped.
        self.pairs: list[tuple[trio.abc.Stream, trio.abc.Stream]] = []
        self._nursery: trio.Nursery | None = None

    async def run(
        self, *, task_status: trio.TaskStatus[MemoryServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hold the connections' nursery until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    async def connect(self, *, wrap: StreamWrapper | None = None) -> trio.abc.Stream:
        """A new connection: returns the client end (wrapped by ``wrap``)."""
        if self._nursery is None:
            raise RuntimeError("start the server first: await nursery.start(server.run)")
        client, server_end = trio.testing.memory_stream_pair()
        self.pairs.append((client, server_end))
        served: trio.abc.Stream = server_end
        if self.server_wrap is not None:
            served = self.server_wrap(server_end)
        self._nursery.start_soon(self._serve, served)
        await trio.lowlevel.checkpoint()
        return wrap(client) if wrap is not None else client

    async def _serve(self, transport: trio.abc.Stream) -> None:
        self.connections += 1
        try:
            with trio.move_on_after(self.config.request_head_timeout) as head_scope:
                proto, initial = await _sniff(transport)
            if head_scope.cancelled_caught or proto == "eof":
                return
            cls = H2Connection if proto == "h2" else H11Connection
            conn = cls(transport, self.handler, self.config, scheme="http", initial_data=initial)
            await conn.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(transport)


@asynccontextmanager
async def serve_in_memory(
    handler: Handler,
    config: ServerConfig | None = None,
    *,
    server_wrap: StreamWrapper | None = None,
) -> AsyncIterator[MemoryServer]:
    """``async with serve_in_memory(app) as server:`` -- served until the block ends."""
    async with trio.open_nursery() as nursery:
        server = MemoryServer(handler, config, server_wrap=server_wrap)
        await nursery.start(server.run)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def http1_request(
    server: MemoryServer,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    wrap: StreamWrapper | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 exchange on a new connection: ``(status, headers, body)``.

    Headers come back lower-cased and decoded as latin-1; the connection is closed after.
    """
    stream = await server.connect(wrap=wrap)
    conn = h11.Connection(h11.CLIENT)
    head = [("host", "in-memory"), *headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in head):
        head.append(("content-length", str(len(body))))
    try:
        out = conn.send(h11.Request(method=method, target=target, headers=head))
        if body:
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        status = 0
        response_headers: list[tuple[str, str]] = []
        content = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = [(k.decode(), v.decode("latin-1")) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, response_headers, bytes(content)
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_h2_client(
    server: MemoryServer,
    config: ClientConfig | None = None,
    *,
    wrap: StreamWrapper | None = None,
) -> AsyncIterator[H2ClientConnection]:
    """netkit's HTTP/2 client over a new in-memory connection (prior knowledge)."""
    stream = await server.connect(wrap=wrap)
    async with H2ClientConnection.over(stream, authority="in-memory", config=config) as conn:
        yield conn


@asynccontextmanager
async def open_grpc_channel(
    server: MemoryServer,
    *,
    config: ChannelConfig | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
    wrap: StreamWrapper | None = None,
) -> AsyncIterator[Channel]:
    """A gRPC channel to ``server``; each (re)connection is a new in-memory connection."""

    async def transport() -> trio.abc.Stream:
        return await server.connect(wrap=wrap)

    async with open_channel(
        "in-memory", 0, config=config, interceptors=interceptors, transport=transport
    ) as channel:
        yield channel


@asynccontextmanager
async def open_websocket(
    server: MemoryServer,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    subprotocols: Sequence[str] = (),
    wrap: StreamWrapper | None = None,
    **options: Any,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client connection to ``path`` (HTTP/1.1 Upgrade, in memory).

    ``options`` go to ``trio_websocket.wrap_client_stream`` (``message_queue_size``,
    ``max_message_size``). A refused handshake raises trio-websocket's
    ``ConnectionRejected``.
    """
    stream = await server.connect(wrap=wrap)
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio Stream works; the hint says sockets
            "in-memory",
            path,
            subprotocols=list(subprotocols) or None,
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
            **options,
        )
        try:
            yield ws
        finally:
            await ws.aclose()
            nursery.cancel_scope.cancel()
