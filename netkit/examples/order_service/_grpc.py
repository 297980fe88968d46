"""The gRPC face: ``netkit.orders.v1.OrderService`` over the shared store.

Store refusals become gRPC statuses here: an invalid order is INVALID_ARGUMENT with a
``google.rpc.BadRequest`` (one field violation per problem, fields as
``items[0].quantity``) in ``grpc-status-details-bin``, which grpcio's and every other
gRPC client's rich-status helpers decode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from netkit.grpc import GRPCError, ServerCall, StatusCode
from netkit.protos.orders.v1 import orders_pb2 as pb
from netkit.protos.orders.v1.orders_netkit import OrderServiceBase

from ._model import (
    InvalidOrder,
    Item,
    Order,
    OrderError,
    OrderNotFound,
    RequestIdReused,
    Status,
    StoreFull,
    Violation,
)
from ._store import OrderStore, Query
from ._watch import Watch, WatchOverflow

#: Orders one TrackOrders call may follow at once.
MAX_TRACKED = 10_000
#: Failures an ImportOrders summary describes one by one (all are counted).
MAX_DESCRIBED_FAILURES = 100

_KINDS = {
    "existing": pb.OrderEvent.EXISTING,
    "created": pb.OrderEvent.CREATED,
    "updated": pb.OrderEvent.UPDATED,
    "deleted": pb.OrderEvent.DELETED,
}


def order_to_pb(order: Order) -> pb.Order:
    return pb.Order(
        id=order.id,
        customer_id=order.customer_id,
        items=[
            pb.OrderItem(sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents)
            for i in order.items
        ],
        status=order.status.name,
        total_cents=order.total_cents,
        version=order.version,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def status_from_pb(value: int) -> Status | None:
    if value == pb.ORDER_STATUS_UNSPECIFIED:
        return None
    try:
        return Status[pb.OrderStatus.Name(value)]
    except ValueError:
        raise GRPCError(StatusCode.INVALID_ARGUMENT, f"unknown order status {value}") from None


def items_from_pb(request: pb.CreateOrderRequest) -> list[Item]:
    return [Item(i.sku, i.quantity, i.unit_price_cents) for i in request.items]


def bad_request(violations: list[Violation], message: str = "the order is not valid") -> GRPCError:
    """INVALID_ARGUMENT carrying a ``google.rpc.Status`` with a ``BadRequest``."""
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.detail)
            for v in violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[packed])
    return GRPCError(StatusCode.INVALID_ARGUMENT, message, status.SerializeToString())


def grpc_error(exc: OrderError) -> GRPCError:
    if isinstance(exc, InvalidOrder):
        return bad_request(exc.violations)
    if isinstance(exc, OrderNotFound):
        return GRPCError(StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, RequestIdReused):
        return GRPCError(StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, StoreFull):
        return GRPCError(StatusCode.RESOURCE_EXHAUSTED, str(exc))
    return GRPCError(StatusCode.FAILED_PRECONDITION, str(exc))


def event_pb(kind: str, order: Order) -> pb.OrderEvent:
    return pb.OrderEvent(kind=_KINDS[kind], order=order_to_pb(order))


class OrderService(OrderServiceBase):
    """gRPC handlers; ``watch_capacity`` bounds each watcher's queue."""

    def __init__(self, store: OrderStore, *, watch_capacity: int = 1000) -> None:
        self.store = store
        self.watch_capacity = watch_capacity

    async def CreateOrder(self, request: pb.CreateOrderRequest, call: ServerCall) -> pb.Order:
        try:
            order = self.store.create(
                request.customer_id, items_from_pb(request), request_id=request.request_id
            )
        except OrderError as exc:
            raise grpc_error(exc) from None
        return order_to_pb(order)

    async def GetOrder(self, request: pb.GetOrderRequest, call: ServerCall) -> pb.Order:
        try:
            return order_to_pb(self.store.get(request.id))
        except OrderError as exc:
            raise grpc_error(exc) from None

    async def StreamOrders(self, request: pb.StreamOrdersRequest, call: ServerCall) -> None:
        query = Query(request.query.customer_id or None, status_from_pb(request.query.status))
        with Watch(self.store, query.matches, capacity=self.watch_capacity) as watch:
            for order in watch.snapshot(query):
                await call.send(event_pb("existing", order))
            await call.send(pb.OrderEvent(kind=pb.OrderEvent.CAUGHT_UP))
            try:
                async for kind, order in watch:
                    await call.send(event_pb(kind, order))
            except WatchOverflow as exc:
                raise GRPCError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None

    async def ImportOrders(
        self, requests: AsyncIterator[pb.CreateOrderRequest], call: ServerCall
    ) -> pb.ImportSummary:
        summary = pb.ImportSummary()
        async for request in requests:
            index = summary.received
            summary.received += 1
            try:
                order = self.store.create(
                    request.customer_id, items_from_pb(request), request_id=request.request_id
                )
            except OrderError as exc:
                if len(summary.failures) < MAX_DESCRIBED_FAILURES:
                    lines = (
                        [f"{v.field}: {v.detail}" for v in exc.violations]
                        if isinstance(exc, InvalidOrder)
                        else [str(exc)]
                    )
                    summary.failures.add(index=index, violations=lines)
            else:
                summary.created += 1
                summary.order_ids.append(order.id)
        return summary

    async def TrackOrders(self, requests: AsyncIterator[pb.TrackRequest], call: ServerCall) -> None:
        tracked: set[str] = set()
        # Errors end the call after the nursery (a GRPCError, not an exception group).
        failure: GRPCError | None = None
        with Watch(
            self.store, lambda order: order.id in tracked, capacity=self.watch_capacity
        ) as watch:
            watch.listen()
            async with trio.open_nursery() as nursery:

                async def follow_requests() -> None:
                    nonlocal failure
                    async for request in requests:
                        for order_id in request.remove:
                            tracked.discard(order_id)
                        for order_id in request.add:
                            if order_id in tracked:
                                continue
                            if len(tracked) >= MAX_TRACKED:
                                failure = GRPCError(
                                    StatusCode.RESOURCE_EXHAUSTED,
                                    f"at most {MAX_TRACKED} orders per TrackOrders call",
                                )
                                nursery.cancel_scope.cancel()
                                return
                            tracked.add(order_id)
                            if (order := self.store.find(order_id)) is not None:
                                watch.push("existing", order)
                    # The client has said all it will: the call ends.
                    nursery.cancel_scope.cancel()

                nursery.start_soon(follow_requests)
                try:
                    async for kind, order in watch:
                        await call.send(event_pb(kind, order))
                except WatchOverflow as exc:
                    failure = GRPCError(StatusCode.RESOURCE_EXHAUSTED, str(exc))
                    nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
