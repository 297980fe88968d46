"""A minimal HTTP/1.1 client connection on h11, for the proxy's upstream side.

Why h11 directly and not httpx: the proxy relays bodies chunk by chunk in both
directions with backpressure (a slow client slows the upstream), sends and receives
at the same time (a backend may answer before the request body ended), and hands a
WebSocket ``101`` connection over as a raw byte stream. httpx buffers or hides each
of those; h11 is the same state machine netkit's server runs on, and this driver is
the usual thin loop around it.
"""

from __future__ import annotations

import h11
import trio

from ..errors import ConnectionClosed, RemoteProtocolError
from ..http import Headers

_READ_SIZE = 64 * 1024


class H1ClientConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, transport: trio.abc.Stream) -> None:
        self.transport = transport
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.broken = False

    @property
    def reusable(self) -> bool:
        """The last exchange ended cleanly and both sides allow another one."""
        if self.broken:
            return False
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            self.broken = True
            raise ConnectionClosed(f"cannot send to the backend: {exc}") from exc
        if data:
            try:
                await self.transport.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.broken = True
                self._h11.send_failed()
                raise ConnectionClosed(f"the backend connection broke: {exc}") from exc

    async def _next_event(self) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self.broken = True
                raise RemoteProtocolError(f"the backend broke HTTP/1.1: {exc}") from exc
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self.transport.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.broken = True
                raise ConnectionClosed(f"the backend connection broke: {exc}") from exc
            if not data and self._h11.their_state is h11.SEND_RESPONSE:
                self.broken = True
                raise ConnectionClosed("the backend closed the connection before answering")
            self._h11.receive_data(bytes(data))

    async def send_head(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        await self._send(h11.Request(method=method, target=target, headers=headers))

    async def send_data(self, data: bytes) -> None:
        if data:
            await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def receive_head(self, *, switch: bool = False) -> tuple[int, Headers]:
        """The final response head (1xx skipped; with ``switch``, a 101 is returned)."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.InformationalResponse):
                if switch and event.status_code == 101:
                    return 101, Headers(list(event.headers))
                continue
            if isinstance(event, h11.Response):
                return event.status_code, Headers(list(event.headers))
            if isinstance(event, h11.ConnectionClosed):
                self.broken = True
                raise ConnectionClosed("the backend closed the connection before answering")
            raise RemoteProtocolError(f"unexpected {type(event).__name__} from the backend")

    async def receive_data(self) -> bytes:
        """The next body chunk, ``b""`` at the end of the response."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
                continue
            if isinstance(event, h11.EndOfMessage):
                return b""
            if isinstance(event, h11.ConnectionClosed):
                self.broken = True
                raise ConnectionClosed("the backend closed the connection mid-response")
            raise RemoteProtocolError(f"unexpected {type(event).__name__} from the backend")

    def leftover(self) -> bytes:
        """Bytes h11 read past a ``101`` response: the start of the tunnel."""
        data, _closed = self._h11.trailing_data
        return bytes(data)

    async def aclose(self) -> None:
        self.broken = True
        await trio.aclose_forcefully(self.transport)
