"""``OrderStore``: the one store that REST, gRPC and WebSocket share.

Synchronous and in memory: every operation completes without awaiting, so a change and
the events it causes happen at one instant of trio's single thread. That is what lets a
watcher take a snapshot and subscribe in one step (``snapshot_and_listen``), with no gap
in which a change could be missed and no change seen twice. Listeners are plain callbacks
and must not block (the WebSocket hub's ``publish`` and a bounded channel's
``send_nowait`` do not).

Several service instances in one process (``netkit up``) share one store, as instances
of a real service share their database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import attrs

from ._model import (
    TRANSITIONS,
    EventKind,
    InvalidOrder,
    InvalidTransition,
    Item,
    Order,
    OrderEvent,
    OrderNotFound,
    RequestIdReused,
    Status,
    StoreFull,
    validate_order,
)

Listener = Callable[[OrderEvent], None]


@attrs.frozen
class Query:
    """Which orders a list or a watch wants; ``None`` matches everything."""

    customer_id: str | None = None
    status: Status | None = None

    def matches(self, order: Order) -> bool:
        return (self.customer_id is None or order.customer_id == self.customer_id) and (
            self.status is None or order.status is self.status
        )


class OrderStore:
    """Orders in memory, at most ``max_orders`` of them, with change listeners.

    ``request_ids`` remembers the last ``max_request_ids`` idempotency keys of
    ``create`` (gRPC's ``request_id``; REST's Idempotency-Key is handled by the REST layer).
    """

    def __init__(
        self,
        *,
        max_orders: int = 100_000,
        max_request_ids: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_orders = max_orders
        self.max_request_ids = max_request_ids
        self._clock = clock
        self._orders: dict[str, Order] = {}
        #: id -> sequence number (creation order; also the list cursor)
        self._seq: dict[str, int] = {}
        self._next = 1
        self._request_ids: dict[str, tuple[tuple[str, tuple[Item, ...]], str]] = {}
        self._listeners: list[Listener] = []

    # -- listeners --------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def snapshot_and_listen(self, query: Query, listener: Listener) -> list[Order]:
        """The orders matching ``query`` now, and ``listener`` added at the same instant."""
        self._listeners.append(listener)
        return [order for order in self._orders.values() if query.matches(order)]

    def _emit(self, kind: EventKind, order: Order) -> None:
        event = OrderEvent(kind, order)
        for listener in list(self._listeners):
            listener(event)

    # -- reads ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._orders)

    def get(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def find(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def list(
        self, query: Query = Query(), *, after: int = 0, limit: int = 50
    ) -> tuple[list[Order], int | None]:
        """A page of matching orders in creation order, after cursor ``after``.

        Returns the page and the cursor of the next page (``None`` on the last page).
        Cursors are sequence numbers, so pages stay stable while orders are added.
        """
        page: list[Order] = []
        for order_id, order in self._orders.items():
            seq = self._seq[order_id]
            if seq <= after or not query.matches(order):
                continue
            if len(page) == limit:
                return page, self._seq[page[-1].id]
            page.append(order)
        return page, None

    # -- changes ------------------------------------------------------------------------
    def create(
        self, customer_id: str, items: Iterable[Item], *, request_id: str | None = None
    ) -> Order:
        """Validate and add an order (PENDING); a known ``request_id`` returns the first one."""
        items = tuple(items)
        if violations := validate_order(customer_id, items):
            raise InvalidOrder(violations)
        fingerprint = (customer_id, items)
        if request_id:
            known = self._request_ids.get(request_id)
            if known is not None:
                if known[0] != fingerprint:
                    raise RequestIdReused(request_id)
                order = self._orders.get(known[1])
                if order is not None:
                    return order
        if len(self._orders) >= self.max_orders:
            raise StoreFull(self.max_orders)
        now = self._clock()
        seq = self._next
        self._next += 1
        order = Order(f"ord-{seq}", customer_id, items, Status.PENDING, 1, now, now)
        self._orders[order.id] = order
        self._seq[order.id] = seq
        if request_id:
            self._request_ids[request_id] = (fingerprint, order.id)
            while len(self._request_ids) > self.max_request_ids:
                del self._request_ids[next(iter(self._request_ids))]
        self._emit(EventKind.CREATED, order)
        return order

    def set_status(self, order_id: str, status: Status) -> Order:
        """Move an order to ``status`` if ``TRANSITIONS`` allows it (same status: no change)."""
        order = self.get(order_id)
        if status is order.status:
            return order
        if status not in TRANSITIONS[order.status]:
            raise InvalidTransition(order, status)
        new = attrs.evolve(
            order, status=status, version=order.version + 1, updated_at=self._clock()
        )
        self._orders[order_id] = new
        self._emit(EventKind.UPDATED, new)
        return new

    def delete(self, order_id: str) -> Order:
        order = self.get(order_id)
        del self._orders[order_id]
        del self._seq[order_id]
        self._emit(EventKind.DELETED, order)
        return order
