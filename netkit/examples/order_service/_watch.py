"""``Watch``: one watcher's bounded queue of store events (StreamOrders, TrackOrders).

The store calls listeners synchronously; a watch turns that into a bounded trio channel
the watcher's task reads at its own pace. A watcher that falls ``capacity`` events
behind is cut off (``WatchOverflow``) rather than letting the queue grow: the client
starts again and gets a fresh snapshot, as a Kubernetes watch that is "too old" does.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import trio

from ._model import Order, OrderEvent
from ._store import OrderStore, Query

#: ``existing`` (part of a snapshot), ``created``, ``updated`` or ``deleted``.
WatchItem = tuple[str, Order]


class WatchOverflow(Exception):
    """The watcher fell too far behind and was cut off."""


class Watch:
    """Events for orders that ``accept`` (called on the order after the change)."""

    def __init__(
        self, store: OrderStore, accept: Callable[[Order], bool], *, capacity: int = 1000
    ) -> None:
        self.store = store
        self.accept = accept
        self._send, self._receive = trio.open_memory_channel[WatchItem](capacity)
        self.overflowed = False
        self._listening = False

    def snapshot(self, query: Query) -> list[Order]:
        """Start listening and return the matching orders of this instant (no gap)."""
        self._listening = True
        return self.store.snapshot_and_listen(query, self._on_event)

    def listen(self) -> None:
        self._listening = True
        self.store.listen(self._on_event)

    def push(self, kind: str, order: Order) -> None:
        """Queue an item in line with the live events (TrackOrders' ``existing``)."""
        if self.overflowed:
            return
        try:
            self._send.send_nowait((kind, order))
        except trio.WouldBlock:
            self.overflowed = True
            self._send.close()

    def _on_event(self, event: OrderEvent) -> None:
        if self.accept(event.order):
            self.push(event.kind.value, event.order)

    def close(self) -> None:
        if self._listening:
            self._listening = False
            self.store.unlisten(self._on_event)
        self._send.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchItem:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self.overflowed:
                raise WatchOverflow("the watcher fell behind and was cut off") from None
            raise StopAsyncIteration from None
