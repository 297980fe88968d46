"""The REST face: ``/v1/orders`` over the shared store (contract: protocols/orders/v1/openapi.json).

The REST layer checks the JSON shapes (types, missing and unknown fields); the order
rules are the store's, reported the same way: 422 problem+json with one
``{"pointer", "detail"}`` per violation. ``If-Match`` on PATCH and DELETE is checked in
the handler, right before the change and with no await in between, so two writers
racing with the same ETag cannot both win.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from netkit.rest import Problem, Response, RestAPI, RestRequest

from ._model import (
    InvalidOrder,
    InvalidTransition,
    Item,
    Order,
    OrderError,
    OrderNotFound,
    RequestIdReused,
    Status,
    StoreFull,
)
from ._store import OrderStore, Query

#: Largest page a list request may ask for, and the default.
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@attrs.frozen
class ItemBody:
    """One line: ``quantity`` units of ``sku`` at ``unit_price_cents`` each."""

    sku: str
    quantity: int
    unit_price_cents: int


@attrs.frozen
class CreateOrderBody:
    """What a client sends to create an order."""

    customer_id: str
    items: list[ItemBody]


@attrs.frozen
class StatusChange:
    """PATCH body: the status to move to (see the allowed changes in orders.proto)."""

    status: Status


@attrs.frozen
class OrderView:
    """An order as REST returns it."""

    id: str
    customer_id: str
    items: list[ItemBody]
    status: Status
    total_cents: int
    version: int
    created_at: float
    updated_at: float


@attrs.frozen
class ListQuery:
    """The filters and paging of ``GET /v1/orders`` (all optional)."""

    customer_id: str | None = attrs.field(
        default=None, metadata={"description": "Only this customer's orders."}
    )
    status: Status | None = attrs.field(
        default=None, metadata={"description": "Only orders in this status."}
    )
    page_size: int = attrs.field(
        default=DEFAULT_PAGE_SIZE,
        validator=[v.ge(1), v.le(MAX_PAGE_SIZE)],
        metadata={"description": f"Orders per page, 1 to {MAX_PAGE_SIZE}."},
    )
    page_token: str | None = attrs.field(
        default=None, metadata={"description": "The `next_page_token` of the previous page."}
    )


@attrs.frozen
class OrderPage:
    """One page of a list; pass ``next_page_token`` as ``page_token`` for the next."""

    orders: list[OrderView]
    next_page_token: str | None


def view(order: Order) -> OrderView:
    return OrderView(
        order.id,
        order.customer_id,
        [ItemBody(i.sku, i.quantity, i.unit_price_cents) for i in order.items],
        order.status,
        order.total_cents,
        order.version,
        order.created_at,
        order.updated_at,
    )


def order_items(body: CreateOrderBody) -> list[Item]:
    """The store's items for a decoded create-order body (REST and WebSocket)."""
    return [Item(i.sku, i.quantity, i.unit_price_cents) for i in body.items]


def violation_errors(exc: InvalidOrder) -> list[dict[str, str]]:
    """An invalid order's violations as ``errors`` entries (REST and WebSocket)."""
    return [{"pointer": v.pointer, "detail": v.detail} for v in exc.violations]


def problem(exc: OrderError) -> Problem:
    if isinstance(exc, InvalidOrder):
        return Problem(422, "the order is not valid", errors=violation_errors(exc))
    if isinstance(exc, OrderNotFound):
        return Problem(404, str(exc), title="Order not found")
    if isinstance(exc, InvalidTransition):
        return Problem(409, str(exc), title="Status change not allowed")
    if isinstance(exc, RequestIdReused):
        return Problem(422, str(exc))
    if isinstance(exc, StoreFull):
        return Problem(503, str(exc), headers=[("retry-after", "60")])
    return Problem(400, str(exc))


def add_order_routes(api: RestAPI, store: OrderStore) -> None:
    """Register the orders resource on ``api`` (an ``App``'s ``app.rest``, or alone)."""

    @api.post("/v1/orders", body=CreateOrderBody, response=OrderView, status=201, tags=["orders"])
    async def create_order(request: RestRequest[CreateOrderBody]) -> Response:
        """Create an order (PENDING). Send `Idempotency-Key` to make retries safe."""
        body = request.body
        items = order_items(body)
        try:
            order = store.create(body.customer_id, items)
        except OrderError as exc:
            raise problem(exc) from None
        return Response(
            view(order),
            status=201,
            etag=order.etag,
            headers=[("location", f"/v1/orders/{order.id}")],
        )

    @api.get("/v1/orders/{order_id}", response=OrderView, tags=["orders"])
    async def get_order(request: RestRequest[None]) -> Response:
        """Read one order; its `ETag` is `"v<version>"`."""
        try:
            order = store.get(request.params["order_id"])
        except OrderError as exc:
            raise problem(exc) from None
        return Response(view(order), etag=order.etag, cache_control="no-cache")

    @api.get("/v1/orders", query=ListQuery, response=OrderPage, tags=["orders"])
    async def list_orders(request: RestRequest[None]) -> OrderPage:
        """List orders in creation order, filtered by `customer_id` and `status`, paged
        by `page_size` (default 50, at most 500) and `page_token`."""
        args: ListQuery = request.query_args
        token = args.page_token or "0"
        if not token.isdigit() or len(token) > 18:
            raise Problem(400, "page_token is not one this service gave out")
        query = Query(args.customer_id or None, args.status)
        orders, cursor = store.list(query, after=int(token), limit=args.page_size)
        return OrderPage([view(o) for o in orders], None if cursor is None else str(cursor))

    @api.patch("/v1/orders/{order_id}", body=StatusChange, response=OrderView, tags=["orders"])
    async def change_status(request: RestRequest[StatusChange]) -> Response:
        """Change an order's status; `If-Match: "v<version>"` guards against lost updates
        (412 when the order changed since), 409 when the change is not allowed."""
        order_id = request.params["order_id"]
        try:
            request.check_preconditions(store.get(order_id).etag)
            order = store.set_status(order_id, request.body.status)
        except OrderError as exc:
            raise problem(exc) from None
        return Response(view(order), etag=order.etag)

    @api.delete("/v1/orders/{order_id}", status=204, tags=["orders"])
    async def delete_order(request: RestRequest[None]) -> None:
        """Delete an order (`If-Match` is honoured as for PATCH)."""
        order_id = request.params["order_id"]
        try:
            request.check_preconditions(store.get(order_id).etag)
            store.delete(order_id)
        except OrderError as exc:
            raise problem(exc) from None


def contract_api() -> RestAPI:
    """The orders REST API alone, for scripts/gen-openapi (protocols/orders/v1/openapi.json)."""
    api = RestAPI(title="netkit orders", version="1.0.0")
    add_order_routes(api, OrderStore())
    return api
