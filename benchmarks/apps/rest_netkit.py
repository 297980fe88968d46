"""The REST benchmark resource on netkit: ``POST /v1/orders`` (validated), ``GET /v1/orders/{id}``.

Served with ``netkit serve rest_netkit:app`` (``benchmarks/apps`` on ``PYTHONPATH``).
The same resource as ``rest_starlette.py``: the body must be an object with ``sku`` (a
non-empty string), ``quantity`` (an integer > 0) and optionally ``note`` (a string or
null), nothing else; 422 otherwise. Created orders go to a store bounded at 1000
entries; order 1 exists from the start so GETs always find it.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from netkit import App
from netkit.rest import Problem, Response, RestRequest


@attrs.frozen
class CreateOrder:
    sku: str = attrs.field(validator=v.min_len(1))
    quantity: int = attrs.field(validator=v.gt(0))
    note: str | None = None


@attrs.frozen
class Order:
    id: int
    sku: str
    quantity: int
    note: str | None = None


MAX_ORDERS = 1000
orders: dict[int, Order] = {1: Order(1, "book-1", 2, None)}
counter = [1]
app = App()


@app.rest.post("/v1/orders", body=CreateOrder, response=Order, status=201)
async def create_order(request: RestRequest[CreateOrder]) -> Response:
    counter[0] += 1
    order_id = 2 + counter[0] % MAX_ORDERS
    body = request.body
    order = Order(order_id, body.sku, body.quantity, body.note)
    orders[order_id] = order
    return Response(order, status=201, headers=[("location", f"/v1/orders/{order_id}")])


@app.rest.get("/v1/orders/{order_id:int}", response=Order)
async def get_order(request: RestRequest[None]) -> Order:
    order = orders.get(request.params["order_id"])
    if order is None:
        raise Problem(404, "no such order")
    return order
