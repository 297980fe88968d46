"""The orders service: a REST example with two API versions side by side.

Run it with ``netkit serve netkit.examples.orders:app``, then::

    curl -X POST localhost:8080/v1/orders -H 'content-type: application/json' \\
         -d '{"sku": "book-1", "quantity": 2}'
    curl localhost:8080/v1/orders/1
    curl localhost:8080/openapi.json

Its OpenAPI document is checked in as ``protocols/rest/orders/openapi.json``
(regenerate with ``scripts/gen-openapi``; a test fails when the two drift apart).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import attrs
import trio
from attrs import validators as v

from netkit import App
from netkit.rest import Problem, Response, RestAPI, RestRequest, StreamingResponse, etag_for


@attrs.frozen
class CreateOrder:
    """What a client sends to create (or replace) an order."""

    sku: str = attrs.field(validator=v.min_len(1))
    quantity: int = attrs.field(validator=v.gt(0))
    note: str | None = None


@attrs.frozen
class PatchOrder:
    """The fields of an order a PATCH may change; absent fields stay as they are."""

    quantity: int | None = attrs.field(default=None, validator=v.optional(v.gt(0)))
    note: str | None = None


@attrs.frozen
class Order:
    """An order (API v1)."""

    id: int
    sku: str
    quantity: int
    note: str | None = None


@attrs.frozen
class Line:
    sku: str = attrs.field(validator=v.min_len(1))
    quantity: int = attrs.field(validator=v.gt(0))


@attrs.frozen
class CreateOrderV2:
    """API v2: an order has several lines."""

    lines: list[Line] = attrs.field(validator=v.min_len(1))
    priority: Literal["normal", "express"] = "normal"


@attrs.frozen
class OrderV2:
    """An order (API v2)."""

    id: int
    lines: list[Line]
    priority: Literal["normal", "express"]


class OrderStore:
    """Orders in memory; ``max_orders`` bounds it (the oldest is dropped first)."""

    def __init__(self, max_orders: int = 100_000) -> None:
        self.orders: dict[int, OrderV2] = {}
        self.next_id = 1
        self.max_orders = max_orders

    def add(self, lines: list[Line], priority: Literal["normal", "express"]) -> OrderV2:
        order = OrderV2(self.next_id, lines, priority)
        self.next_id += 1
        self.orders[order.id] = order
        while len(self.orders) > self.max_orders:
            del self.orders[next(iter(self.orders))]
        return order

    def get(self, order_id: int) -> OrderV2:
        order = self.orders.get(order_id)
        if order is None:
            raise Problem(404, f"order {order_id} does not exist", title="Order not found")
        return order


def as_v1(order: OrderV2) -> Order:
    line = order.lines[0]
    return Order(order.id, line.sku, line.quantity, None if len(order.lines) == 1 else "more")


def make_api(store: OrderStore | None = None) -> RestAPI:
    """The orders API on its own (``make_app`` mounts it on an ``App``)."""
    api = RestAPI(title="orders", version="1.0.0")
    add_routes(api, store or OrderStore())
    return api


def add_routes(api: RestAPI, store: OrderStore) -> None:
    async def current_etag(request: RestRequest[object]) -> str | None:
        order = store.orders.get(request.params["order_id"])
        return None if order is None else etag_for(as_v1(order))

    @api.get("/v1/orders", response=list[Order], tags=["v1"])
    async def list_orders(request: RestRequest[None]) -> Response:
        """List orders (at most `limit` of them, a query parameter; default 100)."""
        limit_text = request.query_value("limit", "100") or "100"
        if not limit_text.isdigit():
            raise Problem(400, "limit must be a non-negative integer")
        orders = list(store.orders.values())[: int(limit_text)]
        return Response([as_v1(o) for o in orders], cache_control="no-cache")

    @api.post("/v1/orders", body=CreateOrder, response=Order, status=201, tags=["v1"])
    async def create_order(request: RestRequest[CreateOrder]) -> Response:
        """Create an order."""
        body = request.body
        order = as_v1(store.add([Line(body.sku, body.quantity)], "normal"))
        return Response(order, status=201, headers=[("location", f"/v1/orders/{order.id}")])

    @api.get("/v1/orders/{order_id:int}", response=Order, tags=["v1"])
    async def get_order(request: RestRequest[None]) -> Order:
        """Read one order."""
        return as_v1(store.get(request.params["order_id"]))

    @api.put(
        "/v1/orders/{order_id:int}",
        body=CreateOrder,
        response=Order,
        etag=current_etag,
        tags=["v1"],
    )
    async def replace_order(request: RestRequest[CreateOrder]) -> Order:
        """Replace an order (If-Match with its ETag guards against lost updates)."""
        old = store.get(request.params["order_id"])
        body = request.body
        new = OrderV2(old.id, [Line(body.sku, body.quantity)], old.priority)
        store.orders[old.id] = new
        return as_v1(new)

    @api.patch(
        "/v1/orders/{order_id:int}", body=PatchOrder, response=Order, etag=current_etag, tags=["v1"]
    )
    async def update_order(request: RestRequest[PatchOrder]) -> Order:
        """Change an order's quantity."""
        old = store.get(request.params["order_id"])
        quantity = request.body.quantity or old.lines[0].quantity
        new = OrderV2(old.id, [Line(old.lines[0].sku, quantity), *old.lines[1:]], old.priority)
        store.orders[old.id] = new
        return as_v1(new)

    @api.delete("/v1/orders/{order_id:int}", status=204, etag=current_etag, tags=["v1"])
    async def delete_order(request: RestRequest[None]) -> None:
        """Delete an order."""
        store.get(request.params["order_id"])
        del store.orders[request.params["order_id"]]

    @api.get("/v1/orders/{order_id:int}/events", tags=["v1"])
    async def order_events(request: RestRequest[None]) -> StreamingResponse:
        """The order's history as newline-delimited JSON, streamed as it is produced."""
        order = as_v1(store.get(request.params["order_id"]))
        count_text = request.query_value("count", "3") or "3"
        count = min(int(count_text) if count_text.isdigit() else 3, 10_000)

        async def events() -> AsyncIterator[bytes]:
            for n in range(count):
                yield b'{"order":%d,"event":%d,"state":"packed"}\n' % (order.id, n)
                await trio.lowlevel.checkpoint()

        return StreamingResponse(events(), content_type="application/x-ndjson")

    @api.post("/v2/orders", body=CreateOrderV2, response=OrderV2, status=201, tags=["v2"])
    async def create_order_v2(request: RestRequest[CreateOrderV2]) -> Response:
        """Create an order with several lines."""
        order = store.add(request.body.lines, request.body.priority)
        return Response(order, status=201, headers=[("location", f"/v2/orders/{order.id}")])

    @api.get("/v2/orders/{order_id:int}", response=OrderV2, tags=["v2"])
    async def get_order_v2(request: RestRequest[None]) -> OrderV2:
        """Read one order with all its lines."""
        return store.get(request.params["order_id"])


def make_app(store: OrderStore | None = None) -> App:
    app = App()
    app.rest.title = "orders"
    app.rest.version = "1.0.0"
    add_routes(app.rest, store or OrderStore())
    return app


app = make_app()
