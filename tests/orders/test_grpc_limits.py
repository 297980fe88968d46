"""The gRPC face's bounds: ImportOrders describes at most MAX_DESCRIBED_FAILURES failures,
TrackOrders follows at most MAX_TRACKED orders per call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from netkit.examples.order_service import OrderStore, _grpc, make_app
from netkit.grpc import GRPCError, StatusCode
from netkit.protos.orders.v1 import orders_pb2 as pb
from netkit.protos.orders.v1.orders_netkit import OrderServiceStub
from netkit.testing import open_grpc_channel, serve_in_memory


def request(quantity: int) -> pb.CreateOrderRequest:
    item = pb.OrderItem(sku="x", quantity=quantity, unit_price_cents=1)
    return pb.CreateOrderRequest(customer_id="carol", items=[item])


async def test_import_orders_describes_at_most_max_described_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_grpc, "MAX_DESCRIBED_FAILURES", 2)

    async def orders() -> AsyncIterator[pb.CreateOrderRequest]:
        for quantity in (0, 1, 0, 0, 2):  # quantity 0 is refused
            yield request(quantity)

    with trio.fail_after(10):
        async with (
            serve_in_memory(make_app(OrderStore())) as server,
            open_grpc_channel(server) as channel,
        ):
            summary = await OrderServiceStub(channel).ImportOrders(orders())
    assert (summary.received, summary.created) == (5, 2)
    assert [failure.index for failure in summary.failures] == [0, 2]  # not 3


async def test_track_orders_follows_at_most_max_tracked_orders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_grpc, "MAX_TRACKED", 2)
    with trio.fail_after(10):
        async with (
            serve_in_memory(make_app(OrderStore())) as server,
            open_grpc_channel(server) as channel,
        ):
            stub = OrderServiceStub(channel)
            async with stub.TrackOrders() as track:
                await track.send_message(pb.TrackRequest(add=["ord-1", "ord-2"]))
                await track.send_message(pb.TrackRequest(add=["ord-2"]))  # already tracked
                await track.send_message(pb.TrackRequest(add=["ord-3"]))
                with pytest.raises(GRPCError) as caught:
                    await track.recv_message()
    assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "at most 2 orders" in str(caught.value)
