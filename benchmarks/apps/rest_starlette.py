"""The REST benchmark resource on Starlette (served by hypercorn-trio and by uvicorn).

The same resource as ``rest_netkit.py``, validated by hand to the same rules (Starlette
has no validation of its own): an object with ``sku`` (a non-empty string), ``quantity``
(an integer > 0, not a boolean) and optionally ``note`` (a string or null), nothing else;
422 with a problem body otherwise, 400 for malformed JSON. Starlette's ``int`` path
convertor parses the id.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_ORDERS = 1000
orders: dict[int, dict[str, Any]] = {1: {"id": 1, "sku": "book-1", "quantity": 2, "note": None}}
counter = [1]
FIELDS = {"sku", "quantity", "note"}


def _problem(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body), status, media_type="application/problem+json")


def _validate(data: Any) -> list[dict[str, str]]:
    if not isinstance(data, dict):
        return [{"pointer": "#", "detail": "expected object"}]
    errors = [{"pointer": f"#/{k}", "detail": "unknown field"} for k in data if k not in FIELDS]
    sku = data.get("sku")
    if not isinstance(sku, str) or not sku:
        errors.append({"pointer": "#/sku", "detail": "expected non-empty string"})
    quantity = data.get("quantity")
    if type(quantity) is not int or quantity <= 0:
        errors.append({"pointer": "#/quantity", "detail": "expected integer > 0"})
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        errors.append({"pointer": "#/note", "detail": "expected string or null"})
    return errors


async def create_order(request: Request) -> Response:
    if request.headers.get("content-type", "").split(";")[0] != "application/json":
        return _problem(415, "content-type must be application/json")
    try:
        data = json.loads(await request.body())
    except ValueError:
        return _problem(400, "malformed JSON")
    errors = _validate(data)
    if errors:
        return _problem(422, "request body does not match CreateOrder", errors)
    counter[0] += 1
    order_id = 2 + counter[0] % MAX_ORDERS
    order = {"id": order_id, "sku": data["sku"], "quantity": data["quantity"]}
    order["note"] = data.get("note")
    orders[order_id] = order
    return JSONResponse(order, 201, headers={"location": f"/v1/orders/{order_id}"})


async def get_order(request: Request) -> Response:
    order = orders.get(request.path_params["order_id"])
    if order is None:
        return _problem(404, "no such order")
    return JSONResponse(order)


app = Starlette(
    routes=[
        Route("/v1/orders", create_order, methods=["POST"]),
        Route("/v1/orders/{order_id:int}", get_order, methods=["GET"]),
    ]
)
