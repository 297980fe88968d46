"""The orders domain, free of any protocol: orders, items, statuses, events, validation.

REST, gRPC and WebSocket each translate to and from these types at their edge, so the
rules (what a valid order is, which status changes are allowed) live in one place and
every protocol answers a bad order the same way, in its own dialect. A violation carries
its field as a path (``("items", 0, "quantity")``); each protocol spells it its own way:
a JSON pointer ``#/items/0/quantity`` for REST and WebSocket, ``items[0].quantity`` for
gRPC's ``google.rpc.BadRequest``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs


class Status(enum.Enum):
    """Where an order is in its life (the ``OrderStatus`` of orders.proto)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return not TRANSITIONS[self]


#: The status changes allowed from each status (the same table as in orders.proto).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.CONFIRMED, Status.CANCELLED}),
    Status.CONFIRMED: frozenset({Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPED: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
}


@attrs.frozen
class Item:
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price_cents`` each."""

    sku: str
    quantity: int
    unit_price_cents: int


@attrs.frozen
class Order:
    """An order as the store keeps it (immutable: a change makes a new version)."""

    id: str
    customer_id: str
    items: tuple[Item, ...]
    status: Status
    #: 1 when created, one more at each change; REST's ETag is ``"v<version>"``.
    version: int
    created_at: float
    updated_at: float

    @property
    def total_cents(self) -> int:
        return sum(item.quantity * item.unit_price_cents for item in self.items)

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'


class EventKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@attrs.frozen
class OrderEvent:
    """A change to the store; ``topic`` is its WebSocket topic (``order.created``...)."""

    kind: EventKind
    order: Order

    @property
    def topic(self) -> str:
        return f"order.{self.kind.value}"


Path = tuple[str | int, ...]


@attrs.frozen
class Violation:
    """One thing wrong with an order: where (``path``) and what (``detail``)."""

    path: Path
    detail: str

    @property
    def pointer(self) -> str:
        """RFC 6901 JSON pointer in URI fragment form, as the REST layer writes them."""
        return "#/" + "/".join(str(part) for part in self.path)

    @property
    def field(self) -> str:
        """``items[0].quantity``: the path form of ``google.rpc.BadRequest.FieldViolation``."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


class OrderError(Exception):
    """Base of the store's refusals; each protocol maps them to its own status."""


class InvalidOrder(OrderError):
    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.detail}" for v in self.violations))


class OrderNotFound(OrderError):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} does not exist")


class InvalidTransition(OrderError):
    def __init__(self, order: Order, wanted: Status) -> None:
        self.order, self.wanted = order, wanted
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[order.status])) or "none"
        super().__init__(
            f"order {order.id} is {order.status.value}: cannot become {wanted.value} "
            f"(allowed: {allowed})"
        )


class RequestIdReused(OrderError):
    """The same idempotency key came with a different order."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request_id {request_id!r} was already used for a different order")


class StoreFull(OrderError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the order store is full ({limit} orders)")


#: Longest customer id and SKU, and most items per order (bounded input, bounded memory).
MAX_ID_LENGTH = 128
MAX_ITEMS = 1000
#: Quantities and prices stay far from int64's edge, so totals cannot overflow.
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE_CENTS = 1_000_000_000


def validate_order(customer_id: str, items: Sequence[Item]) -> list[Violation]:
    """Every violation of the order rules, in field order (empty: the order is valid).

    A customer id, at least one item, each with a SKU, a quantity of at least 1 and a
    unit price of at least 1 cent (upper bounds keep totals within int64).
    """
    found: list[Violation] = []
    if not customer_id.strip():
        found.append(Violation(("customer_id",), "required"))
    elif len(customer_id) > MAX_ID_LENGTH:
        found.append(Violation(("customer_id",), f"at most {MAX_ID_LENGTH} characters"))
    if not items:
        found.append(Violation(("items",), "at least one item is required"))
    elif len(items) > MAX_ITEMS:
        found.append(Violation(("items",), f"at most {MAX_ITEMS} items"))
    else:
        for n, item in enumerate(items):
            if not item.sku.strip():
                found.append(Violation(("items", n, "sku"), "required"))
            elif len(item.sku) > MAX_ID_LENGTH:
                found.append(Violation(("items", n, "sku"), f"at most {MAX_ID_LENGTH} characters"))
            if item.quantity < 1:
                found.append(Violation(("items", n, "quantity"), "must be at least 1"))
            elif item.quantity > MAX_QUANTITY:
                found.append(Violation(("items", n, "quantity"), f"at most {MAX_QUANTITY}"))
            if item.unit_price_cents < 1:
                found.append(Violation(("items", n, "unit_price_cents"), "must be at least 1"))
            elif item.unit_price_cents > MAX_UNIT_PRICE_CENTS:
                found.append(
                    Violation(("items", n, "unit_price_cents"), f"at most {MAX_UNIT_PRICE_CENTS}")
                )
    return found
