"""The orders service: one contract (protocols/orders/v1/), three protocols, one store.

``make_app(store)`` serves it on one port: REST ``/v1/orders``, gRPC
``netkit.orders.v1.OrderService`` and WebSocket ``/v1/events``, all over one
:class:`OrderStore`, so an order created over one protocol is visible over the others and
its ``order.created`` event reaches WebSocket subscribers and ``StreamOrders`` watchers.
``netkit up`` runs three instances of it behind the balancer. See docs/orders.md.

    netkit serve netkit.examples.order_service:app
"""

from ._app import EVENTS_PATH as EVENTS_PATH
from ._app import make_app as make_app
from ._app import publish_events as publish_events
from ._grpc import OrderService as OrderService
from ._model import TRANSITIONS as TRANSITIONS
from ._model import EventKind as EventKind
from ._model import InvalidOrder as InvalidOrder
from ._model import InvalidTransition as InvalidTransition
from ._model import Item as Item
from ._model import Order as Order
from ._model import OrderError as OrderError
from ._model import OrderEvent as OrderEvent
from ._model import OrderNotFound as OrderNotFound
from ._model import RequestIdReused as RequestIdReused
from ._model import Status as Status
from ._model import StoreFull as StoreFull
from ._model import Violation as Violation
from ._model import validate_order as validate_order
from ._rest import add_order_routes as add_order_routes
from ._rest import contract_api as contract_api
from ._store import OrderStore as OrderStore
from ._store import Query as Query
from ._watch import Watch as Watch
from ._watch import WatchOverflow as WatchOverflow

__all__ = [
    "EVENTS_PATH",
    "TRANSITIONS",
    "EventKind",
    "InvalidOrder",
    "InvalidTransition",
    "Item",
    "Order",
    "OrderError",
    "OrderEvent",
    "OrderNotFound",
    "OrderService",
    "OrderStore",
    "Query",
    "RequestIdReused",
    "Status",
    "StoreFull",
    "Violation",
    "Watch",
    "WatchOverflow",
    "add_order_routes",
    "app",
    "contract_api",
    "make_app",
    "publish_events",
    "validate_order",
]

app = make_app()
