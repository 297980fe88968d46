"""``EventsClient``: the pub/sub envelope over trio-websocket, with reconnects and heartbeats.

The client is a long-lived component (``async def run(*, task_status)``): it connects,
re-subscribes to every pattern it holds, reads, and pings; when the connection is lost
(or a ping goes unanswered) it reconnects after an exponential backoff with jitter, and
subscribes again (the first connection is not retried: ``run`` raises, so a wrong URL
fails at once). Messages published while it was away are lost: the hub keeps no
history. A handshake refused with 401/403 (or any 4xx but 408/429) ends ``run`` with
:class:`HandshakeRefused`: retrying will not change the credentials.

Received ``message`` envelopes wait in a bounded buffer for ``async for``; when it is
full the oldest is dropped (``dropped`` counts them), so a slow consumer never stops
the reader and pongs are always processed.

``connect_events(url, ...)`` runs one in a nursery for the length of an ``async with``.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from ..wire import ws_envelope as env
from ._errors import HandshakeRefused, WebSocketClosed


class EventsError(Exception):
    """The server answered a request with an ``error`` envelope."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class EventsClient:
    """A pub/sub client; see the module docstring. Start it with ``nursery.start(client.run)``."""

    def __init__(
        self,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        ssl_context: Any = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        buffer_size: int = 1024,
        connect_timeout: float = 10.0,
        max_message_size: int = 1024 * 1024,
        auth: Any = None,
    ) -> None:
        self.url = url
        #: An auth provider (``netkit.rest.AuthProvider``: ``await auth.headers()``),
        #: asked before every connection, so a reconnect carries a fresh token.
        self.auth = auth
        self.headers = _encode_headers(headers)
        self.ssl_context = ssl_context
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.buffer_size = buffer_size
        self.connect_timeout = connect_timeout
        self.max_message_size = max_message_size
        #: Connections made so far (1 after the first; more after reconnects).
        self.connections = 0
        #: Messages dropped because the buffer was full.
        self.dropped = 0
        self._patterns: set[str] = set()
        self._ids = itertools.count(1)
        self._pending: dict[str | int, trio.Event] = {}
        self._replies: dict[str | int, env.Ack | env.Error] = {}
        self._buffer: deque[env.Message] = deque()
        self._buffer_wake = trio.Event()
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._connected = trio.Event()
        self._stopped = False
        #: aclose() was called: close gracefully, then do not reconnect.
        self._closing = False
        self._serve_scope: trio.CancelScope | None = None
        self._done = trio.Event()

    # -- the user's API --------------------------------------------------------------
    async def subscribe(self, pattern: str) -> None:
        """Subscribe (kept across reconnects); waits for the server's ack."""
        env.check_topic(pattern, pattern=True)
        self._patterns.add(pattern)
        await self._request(lambda id_: env.Subscribe(id_, pattern), retry=True)

    async def unsubscribe(self, pattern: str) -> None:
        self._patterns.discard(pattern)
        await self._request(lambda id_: env.Unsubscribe(id_, pattern), retry=True)

    async def publish(self, topic: str, data: Any = None) -> None:
        """Publish; waits for the ack. Not retried: a lost connection raises
        WebSocketClosed, as the publish may or may not have reached the hub."""
        env.check_topic(topic, pattern=False)
        await self._request(lambda id_: env.Publish(id_, topic, data), retry=False)

    async def receive(self) -> env.Message:
        """The next message (topic and data) from any subscription."""
        while not self._buffer:
            if self._stopped:
                raise WebSocketClosed(1000, "client stopped")
            self._buffer_wake = trio.Event()
            await self._buffer_wake.wait()
        await trio.lowlevel.checkpoint()
        return self._buffer.popleft()

    def __aiter__(self) -> EventsClient:
        return self

    async def __anext__(self) -> env.Message:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def aclose(self) -> None:
        """Stop: close the current connection with 1000 and do not reconnect."""
        self._closing = True
        if self._serve_scope is not None:
            self._serve_scope.cancel()  # run() then closes the connection gracefully
        with trio.move_on_after(self.connect_timeout):
            await self._done.wait()

    # -- requests ---------------------------------------------------------------------
    async def _request(self, make: Any, *, retry: bool) -> None:
        while True:
            await self._connected.wait()
            ws = self._ws
            assert ws is not None
            id_ = next(self._ids)
            done = self._pending[id_] = trio.Event()
            try:
                try:
                    await ws.send_message(env.encode_client(make(id_)))
                except trio_websocket.ConnectionClosed:
                    pass
                else:
                    await done.wait()  # set by the reply, or by run() when the connection is lost
                reply = self._replies.pop(id_, None)
            finally:
                self._pending.pop(id_, None)
            if isinstance(reply, env.Error):
                raise EventsError(reply.code, reply.detail)
            if reply is not None:
                return
            if not retry:
                raise WebSocketClosed(1006, "connection lost before the server answered")
            # Lost before the answer: the next connection re-subscribes anyway; ask again.

    # -- the long-lived task ------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[EventsClient] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stay connected until cancelled; ``started`` after the first connection."""
        backoff = self.backoff_initial
        started = False
        try:
            while True:
                before = self.connections
                try:
                    await self._connect_and_serve(task_status if not started else None)
                    started = True
                except BaseException as raised:  # sorted out just below
                    error = _single(raised)
                    if isinstance(error, trio_websocket.ConnectionRejected):
                        code = error.status_code
                        if 400 <= code < 500 and code not in (408, 429):
                            raise HandshakeRefused(code, "server refused the upgrade") from error
                    if not isinstance(error, _RETRIED):
                        raise
                    if not started and self.connections == 0:
                        raise error from None  # the first connection fails fast
                    started = True
                if self._closing:
                    return
                if self.connections > before:
                    backoff = self.backoff_initial  # it worked for a while: start over
                delay = backoff * random.uniform(0.5, 1.0)  # jitter: no thundering herd
                backoff = min(backoff * 2, self.backoff_max)
                await trio.sleep(delay)
        finally:
            self._stopped = True
            self._buffer_wake.set()
            self._done.set()

    async def _connect_and_serve(self, task_status: trio.TaskStatus[EventsClient] | None) -> None:
        async with trio.open_nursery() as nursery:
            # The token provider is part of connecting: a hanging one times out like a
            # hanging server, and the reconnect loop carries on.
            with trio.fail_after(self.connect_timeout):
                headers = self.headers
                if self.auth is not None:
                    headers = [*headers, *_encode_headers((await self.auth.headers()).items())]
                ws = await trio_websocket.connect_websocket_url(
                    nursery,
                    self.url,
                    self.ssl_context,
                    extra_headers=headers,
                    max_message_size=self.max_message_size,
                    message_queue_size=64,
                )
            self.connections += 1
            for pattern in sorted(self._patterns):
                await ws.send_message(env.encode_client(env.Subscribe(next(self._ids), pattern)))
            self._ws = ws
            self._connected.set()
            if task_status is not None:
                task_status.started(self)
            try:
                await self._serve(ws)
            finally:
                self._connected = trio.Event()
                for waiting in self._pending.values():
                    waiting.set()  # no answer will come on this connection
                if ws.closed is None:
                    # On aclose() (or a heartbeat that gave up) trio-websocket's reader
                    # still runs and reads the close reply; when run() itself is
                    # cancelled it does not, hence the short bound.
                    with trio.CancelScope(shield=True), trio.move_on_after(1):
                        await ws.aclose()
                nursery.cancel_scope.cancel()

    async def _serve(self, ws: trio_websocket.WebSocketConnection) -> None:
        async with trio.open_nursery() as nursery:
            self._serve_scope = nursery.cancel_scope
            if self._closing:
                nursery.cancel_scope.cancel()
            if self.ping_interval is not None:
                nursery.start_soon(self._heartbeat, ws, self.ping_interval, nursery.cancel_scope)
            try:
                while True:
                    raw = await ws.get_message()
                    self._dispatch(raw)
            except trio_websocket.ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = env.decode_server(raw)
        except env.EnvelopeError:
            return  # not ours to fail on: a newer server's extra message kinds
        if isinstance(message, env.Message):
            if len(self._buffer) >= self.buffer_size:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(message)
            self._buffer_wake.set()
        elif message.id is not None and message.id in self._pending:
            self._replies[message.id] = message
            self._pending[message.id].set()

    async def _heartbeat(
        self, ws: trio_websocket.WebSocketConnection, interval: float, serving: trio.CancelScope
    ) -> None:
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(self.ping_timeout) as scope:
                try:
                    await ws.ping()
                except trio_websocket.ConnectionClosed:
                    return
            if scope.cancelled_caught:
                # A dead peer: stop serving this connection; run() closes it and reconnects.
                serving.cancel()
                return


_RETRIED = (
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
    trio.TooSlowError,
    OSError,
)


def _encode_headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header pairs as trio-websocket takes them (HTTP field values are latin-1)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def _single(error: BaseException) -> BaseException:
    """The one exception inside (possibly nested) nursery groups, or the group itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@asynccontextmanager
async def connect_events(url: str, **options: Any) -> AsyncIterator[EventsClient]:
    """``async with connect_events(url, headers=[...]) as client:`` — connected on entry."""
    client = EventsClient(url, **options)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            try:
                yield client
            finally:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One failure (the refused handshake, or the block's own exception) is raised as
        # itself: the nursery is an implementation detail of this context manager.
        error = _single(group)
        if error is group:
            raise
        raise error from None
