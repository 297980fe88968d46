"""The orders service on one port: REST (httpx), WebSocket (websockets) and gRPC (netkit's
channel) share one store; an order made over one protocol is seen over the others, and its
event reaches WebSocket subscribers and StreamOrders watchers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import trio
from google.rpc import error_details_pb2, status_pb2
from websockets.trio.client import connect

from netkit.examples.order_service import OrderStore, make_app
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.orders.v1 import orders_pb2 as pb
from netkit.protos.orders.v1.orders_netkit import OrderServiceStub
from tests.helpers import running_server

pytestmark = pytest.mark.interop

ORDER = {
    "customer_id": "alice",
    "items": [{"sku": "book", "quantity": 2, "unit_price_cents": 1250}],
}


SCHEMA = json.loads(
    (Path(__file__).parents[2] / "protocols/orders/v1/events.v1.schema.json").read_text()
)


def conforms(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` after checking it against the checked-in WebSocket contract."""
    jsonschema.validate(message, SCHEMA)
    return message


async def ws_request(ws: Any, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"v": 1, **fields}))
    reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


async def test_one_order_across_three_protocols() -> None:
    async with running_server(make_app(OrderStore())) as server:
        base = f"http://127.0.0.1:{server.port}"
        with trio.fail_after(15):
            async with (
                httpx.AsyncClient(base_url=base) as http,
                connect(f"ws://127.0.0.1:{server.port}/v1/events") as ws,
                open_channel("127.0.0.1", server.port) as channel,
            ):
                stub = OrderServiceStub(channel)
                assert await ws_request(ws, type="subscribe", id=1, topic="order.*") == {
                    "v": 1,
                    "type": "ack",
                    "id": 1,
                }
                async with stub.StreamOrders(pb.StreamOrdersRequest()) as watch:
                    first = await watch.__anext__()
                    assert first.kind == pb.OrderEvent.CAUGHT_UP

                    # REST creates (idempotently) ...
                    headers = {"idempotency-key": "k-1"}
                    created = await http.post("/v1/orders", json=ORDER, headers=headers)
                    assert created.status_code == 201, created.text
                    again = await http.post("/v1/orders", json=ORDER, headers=headers)
                    assert again.headers["idempotent-replayed"] == "true"
                    order = created.json()
                    assert order["status"] == "pending" and order["total_cents"] == 2500
                    assert created.headers["etag"] == '"v1"'

                    # ... gRPC and WebSocket see it ...
                    got = await stub.GetOrder(pb.GetOrderRequest(id=order["id"]))
                    assert got.customer_id == "alice" and got.items[0].quantity == 2
                    event = json.loads(await ws.recv())
                    assert event["topic"] == "order.created" and event["data"] == order
                    live = await watch.__anext__()
                    assert live.kind == pb.OrderEvent.CREATED and live.order.id == order["id"]

                    # ... a status change with If-Match reaches both watchers ...
                    stale = await http.patch(
                        f"/v1/orders/{order['id']}",
                        json={"status": "confirmed"},
                        headers={"if-match": '"v9"'},
                    )
                    assert stale.status_code == 412
                    changed = await http.patch(
                        f"/v1/orders/{order['id']}",
                        json={"status": "confirmed"},
                        headers={"if-match": '"v1"'},
                    )
                    assert changed.json()["version"] == 2
                    bad_move = await http.patch(
                        f"/v1/orders/{order['id']}", json={"status": "delivered"}
                    )
                    assert bad_move.status_code == 409
                    assert json.loads(await ws.recv())["topic"] == "order.updated"
                    assert (await watch.__anext__()).order.status == pb.CONFIRMED

                    # WebSocket creates; REST lists it, paged and filtered.
                    # The store publishes as it creates: the event comes before the reply.
                    event = await ws_request(ws, type="create_order", id="w1", order=ORDER)
                    made = conforms(json.loads(await ws.recv()))
                    conforms(event)
                    assert made["type"] == "order" and made["order"]["status"] == "pending"
                    assert event["topic"] == "order.created" and event["data"] == made["order"]
                    page = await http.get("/v1/orders", params={"customer_id": "alice"})
                    assert [o["id"] for o in page.json()["orders"]] == [
                        order["id"],
                        made["order"]["id"],
                    ]
                    first_page = (await http.get("/v1/orders", params={"page_size": 1})).json()
                    token = first_page["next_page_token"]
                    second = await http.get("/v1/orders", params={"page_token": token})
                    assert [o["id"] for o in second.json()["orders"]] == [made["order"]["id"]]
                    pending = await http.get("/v1/orders", params={"status": "pending"})
                    assert [o["id"] for o in pending.json()["orders"]] == [made["order"]["id"]]

                    gone = await http.delete(f"/v1/orders/{order['id']}")
                    assert gone.status_code == 204
                    assert (await http.get(f"/v1/orders/{order['id']}")).status_code == 404
                    assert (await watch.__anext__()).kind == pb.OrderEvent.CREATED
                    assert (await watch.__anext__()).kind == pb.OrderEvent.DELETED


async def test_bad_orders_get_each_protocols_own_error() -> None:
    bad = {"customer_id": "", "items": [{"sku": "pen", "quantity": 0, "unit_price_cents": 5}]}
    async with running_server(make_app(OrderStore())) as server:
        with trio.fail_after(10):
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
                connect(f"ws://127.0.0.1:{server.port}/v1/events") as ws,
                open_channel("127.0.0.1", server.port) as channel,
            ):
                answer = await http.post("/v1/orders", json=bad)
                assert answer.status_code == 422
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["errors"] == [
                    {"pointer": "#/customer_id", "detail": "required"},
                    {"pointer": "#/items/0/quantity", "detail": "must be at least 1"},
                ]
                typed = await http.post("/v1/orders", json={"customer_id": 5, "items": []})
                assert typed.status_code == 422
                assert typed.json()["errors"][0]["pointer"] == "#/customer_id"

                with pytest.raises(GRPCError) as caught:
                    await OrderServiceStub(channel).CreateOrder(
                        pb.CreateOrderRequest(
                            customer_id="",
                            items=[pb.OrderItem(sku="pen", quantity=0, unit_price_cents=5)],
                        )
                    )
                assert caught.value.code is StatusCode.INVALID_ARGUMENT
                assert caught.value.details is not None
                status = status_pb2.Status.FromString(caught.value.details)
                detail = error_details_pb2.BadRequest()
                assert status.details[0].Unpack(detail)
                assert [(v.field, v.description) for v in detail.field_violations] == [
                    ("customer_id", "required"),
                    ("items[0].quantity", "must be at least 1"),
                ]

                reply = conforms(await ws_request(ws, type="create_order", id=7, order=bad))
                assert reply["type"] == "error" and reply["code"] == "invalid_order"
                assert reply["errors"][1] == {
                    "pointer": "#/items/0/quantity",
                    "detail": "must be at least 1",
                }
                forged = await ws_request(ws, type="publish", id=8, topic="order.created", data={})
                assert forged["code"] == "forbidden"
                assert (await ws_request(ws, type="get_order", id=9, order_id="ord-1"))[
                    "code"
                ] == "not_found"
                assert (await http.get("/v1/orders")).json()["orders"] == []


async def test_import_and_track_orders() -> None:
    async with running_server(make_app(OrderStore())) as server:
        with trio.fail_after(10):
            async with open_channel("127.0.0.1", server.port) as channel:
                stub = OrderServiceStub(channel)

                async def orders() -> Any:
                    for quantity in (1, 0, 3):
                        yield pb.CreateOrderRequest(
                            customer_id="carol",
                            items=[pb.OrderItem(sku="x", quantity=quantity, unit_price_cents=1)],
                        )

                summary = await stub.ImportOrders(orders())
                assert (summary.received, summary.created) == (3, 2)
                assert list(summary.order_ids) == ["ord-1", "ord-2"]
                assert summary.failures[0].index == 1
                assert list(summary.failures[0].violations) == [
                    "items[0].quantity: must be at least 1"
                ]

                async with stub.TrackOrders() as track:
                    await track.send_message(pb.TrackRequest(add=["ord-1", "ord-3"]))
                    existing = await track.recv_message()
                    assert existing is not None and existing.kind == pb.OrderEvent.EXISTING
                    assert existing.order.id == "ord-1"
                    await stub.CreateOrder(
                        pb.CreateOrderRequest(
                            customer_id="dave",
                            items=[pb.OrderItem(sku="y", quantity=1, unit_price_cents=1)],
                        )
                    )  # ord-3: tracked before it existed
                    created = await track.recv_message()
                    assert created is not None
                    assert (created.kind, created.order.id) == (pb.OrderEvent.CREATED, "ord-3")
                    await track.send_message(pb.TrackRequest(remove=["ord-3"], add=["ord-2"]))
                    added = await track.recv_message()
                    assert added is not None and added.order.id == "ord-2"
                    await track.end()  # half-close: the server ends the call with OK
                    assert await track.recv_message() is None
