"""The WebSocket face: ``/v1/events`` (contract: protocols/orders/v1/events.v1.md).

The connection speaks netkit's events protocol (protocols/ws/events.v1.md): ``subscribe``
and ``unsubscribe`` to ``order.created``, ``order.updated``, ``order.deleted`` or a
pattern such as ``order.*``, answered with ``ack``, then ``message`` for each event. Two
message types are added for orders: ``create_order`` and ``get_order``, answered with
``order`` or ``error``. Clients may not ``publish``: order events come from the store
only (an attempt gets a ``forbidden`` error, and the connection stays open).
"""

from __future__ import annotations

import json
from typing import Any

from netkit.rest._shapes import Shapes, jsonable
from netkit.wire import ws_envelope as env
from netkit.ws import Hub, Overflow, WebSocket

from ._model import InvalidOrder, OrderError, OrderEvent, OrderNotFound
from ._rest import CreateOrderBody, order_items, view, violation_errors
from ._store import OrderStore

_shapes = Shapes()
_decode_order = _shapes.decoder(CreateOrderBody)
_dumps = env._dumps  # the envelope's encoder: the same bytes as the hub's messages


def order_message(event: OrderEvent) -> Any:
    """The ``data`` of an ``order.*`` message: the order as REST returns it."""
    return jsonable(view(event.order))


def _error(
    id: str | int | None, code: str, detail: str, errors: list[dict[str, str]] | None = None
) -> str:
    if errors is None:
        return env.encode_error(id, code, detail)
    message = {"v": 1, "type": "error", "id": id, "code": code, "detail": detail, "errors": errors}
    return _dumps(message)


def _order(id: str | int, order: Any) -> str:
    return _dumps({"v": 1, "type": "order", "id": id, "order": order})


def _forbid_publish(principal: object, action: str, topic: str) -> bool:
    return action != "publish"


class OrderEvents:
    """The ``/v1/events`` handler of one instance: its ``hub`` and the shared store."""

    def __init__(self, hub: Hub, store: OrderStore) -> None:
        self.hub = hub
        self.store = store

    async def __call__(self, ws: WebSocket) -> None:
        subscriber = self.hub.add(ws, ws.principal)
        try:
            async for raw in ws:
                ws.send_nowait(self.answer(subscriber, raw), Overflow.DROP_OLDEST)
        finally:
            self.hub.remove(subscriber)

    def answer(self, subscriber: Any, raw: str | bytes) -> str:
        """The reply to one client message (synchronous: the store never waits)."""
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _error(None, env.BAD_JSON, "not JSON")
        if not isinstance(message, dict):
            return _error(None, env.BAD_REQUEST, "a message is a JSON object")
        kind = message.get("type")
        if kind not in ("create_order", "get_order"):
            return self.hub.handle(subscriber, raw, _forbid_publish)
        id = message.get("id")
        if not isinstance(id, str | int) or isinstance(id, bool):
            return _error(None, env.BAD_REQUEST, "id must be a string or an integer")
        if message.get("v") != 1:
            return _error(id, env.UNSUPPORTED_VERSION, "this server speaks version 1")
        if kind == "get_order":
            order_id = message.get("order_id")
            if not isinstance(order_id, str):
                return _error(id, env.BAD_REQUEST, "order_id must be a string")
            order = self.store.find(order_id)
            if order is None:
                return _error(id, "not_found", str(OrderNotFound(order_id)))
            return _order(id, jsonable(view(order)))
        errors: list[dict[str, str]] = []
        body = _decode_order(message.get("order"), "#", errors)
        if errors:
            return _error(id, "invalid_order", "the order is not valid", errors)
        try:
            order = self.store.create(body.customer_id, order_items(body))
        except InvalidOrder as exc:
            return _error(id, "invalid_order", "the order is not valid", violation_errors(exc))
        except OrderError as exc:
            return _error(id, "refused", str(exc))
        return _order(id, jsonable(view(order)))
