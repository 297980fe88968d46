"""grpcio against ``netkit up``'s balancer, with stubs generated from protocols/orders/v1.

Run as a script (its own process: the generated ``orders/v1/orders_pb2`` registers the
same proto file as netkit's checked-in code, and one descriptor pool holds one of them):

    python up_grpcio_client.py STUB_DIR HOST:PORT ORDER_ID

Checks GetOrder of an order made over REST, CreateOrder, StreamOrders (existing, then
live), INVALID_ARGUMENT with BadRequest details; prints "ok" and the created order's id.
"""

from __future__ import annotations

import sys

import grpc
from google.rpc import error_details_pb2, status_pb2

sys.path.insert(0, sys.argv[1])
from orders.v1 import orders_pb2 as pb
from orders.v1 import orders_pb2_grpc as rpc


def main(target: str, rest_order_id: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = rpc.OrderServiceStub(channel)
        seen = stub.GetOrder(pb.GetOrderRequest(id=rest_order_id), timeout=5)
        assert seen.customer_id == "alice", seen

        watch = stub.StreamOrders(
            pb.StreamOrdersRequest(query=pb.OrderQuery(customer_id="grpc-carol")), timeout=10
        )
        assert next(watch).kind == pb.OrderEvent.CAUGHT_UP
        created = stub.CreateOrder(
            pb.CreateOrderRequest(
                customer_id="grpc-carol",
                items=[pb.OrderItem(sku="lamp", quantity=1, unit_price_cents=4000)],
            ),
            timeout=5,
        )
        event = next(watch)
        assert event.kind == pb.OrderEvent.CREATED and event.order.id == created.id, event
        watch.cancel()

        try:
            stub.CreateOrder(pb.CreateOrderRequest(customer_id="x"), timeout=5)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT, exc
            raw = dict(exc.trailing_metadata() or ())["grpc-status-details-bin"]
            status = status_pb2.Status.FromString(raw)
            detail = error_details_pb2.BadRequest()
            assert status.details[0].Unpack(detail)
            fields = [v.field for v in detail.field_violations]
            assert fields == ["items"], fields
        else:
            raise AssertionError("an order without items was accepted")
        print("ok", created.id, flush=True)


if __name__ == "__main__":
    main(sys.argv[2], sys.argv[3])
