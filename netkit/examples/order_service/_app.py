"""One orders instance: REST, gRPC and WebSocket on one App, over a (shared) store."""

from __future__ import annotations

from collections.abc import Callable

from netkit.app import App
from netkit.grpc.health import HealthService
from netkit.grpc.reflection import enable_reflection
from netkit.rest import IdempotencyStore, RestAPI
from netkit.ws import Hub

from ._grpc import OrderService
from ._model import OrderEvent
from ._rest import add_order_routes
from ._store import OrderStore
from ._ws import OrderEvents, order_message

EVENTS_PATH = "/v1/events"


def publish_events(hub: Hub, store: OrderStore) -> Callable[[], None]:
    """Publish every change of ``store`` on ``hub``; returns the function that stops it."""

    def listener(event: OrderEvent) -> None:
        hub.publish(event.topic, order_message(event))

    store.listen(listener)
    return lambda: store.unlisten(listener)


def make_app(
    store: OrderStore | None = None,
    *,
    idempotency_store: IdempotencyStore | None = None,
    events: bool = True,
) -> App:
    """An App serving the orders service on all three protocols.

    Instances behind one balancer pass the same ``store`` and ``idempotency_store`` (a
    retried POST may land on another instance). ``events=False`` leaves connecting the
    store to ``app.ws.hub`` to the caller (``publish_events``), who can then undo it.
    """
    store = store if store is not None else OrderStore()
    app = App()
    app.rest = RestAPI(idempotency_store=idempotency_store, title="netkit orders", version="1.0.0")
    add_order_routes(app.rest, store)
    app.grpc.add_service(OrderService(store))
    app.grpc.add_service(HealthService([OrderService(store)]))
    enable_reflection(app)
    app.ws.endpoint(EVENTS_PATH, OrderEvents(app.ws.hub, store))
    if events:
        publish_events(app.ws.hub, store)
    return app
