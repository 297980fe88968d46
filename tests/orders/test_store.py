"""The orders store and validator: examples, properties, and a state machine against a model."""

from __future__ import annotations

import itertools

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from netkit.examples.order_service import (
    TRANSITIONS,
    InvalidOrder,
    InvalidTransition,
    Item,
    OrderNotFound,
    OrderStore,
    Query,
    RequestIdReused,
    Status,
    StoreFull,
    Violation,
    Watch,
    WatchOverflow,
    validate_order,
)

BOOK = Item("book", 2, 1250)


def test_a_valid_order_has_no_violations_and_is_pending() -> None:
    store = OrderStore(clock=lambda: 100.0)
    order = store.create("alice", [BOOK, Item("pen", 1, 99)])
    assert order.id == "ord-1" and order.status is Status.PENDING and order.version == 1
    assert order.total_cents == 2 * 1250 + 99
    assert store.get("ord-1") == order


def test_every_violation_is_reported_with_its_path() -> None:
    found = validate_order(" ", [Item("", 0, -5), Item("ok", 1, 1)])
    assert found == [
        Violation(("customer_id",), "required"),
        Violation(("items", 0, "sku"), "required"),
        Violation(("items", 0, "quantity"), "must be at least 1"),
        Violation(("items", 0, "unit_price_cents"), "must be at least 1"),
    ]
    assert found[2].pointer == "#/items/0/quantity"
    assert found[2].field == "items[0].quantity"
    assert validate_order("bob", []) == [Violation(("items",), "at least one item is required")]


def test_invalid_orders_are_refused_and_not_stored() -> None:
    store = OrderStore()
    with pytest.raises(InvalidOrder) as caught:
        store.create("alice", [Item("book", 0, 1)])
    assert [v.field for v in caught.value.violations] == ["items[0].quantity"]
    assert len(store) == 0


def test_request_id_makes_create_idempotent() -> None:
    store = OrderStore()
    first = store.create("alice", [BOOK], request_id="k1")
    assert store.create("alice", [BOOK], request_id="k1") == first
    assert len(store) == 1
    with pytest.raises(RequestIdReused):
        store.create("alice", [Item("pen", 1, 1)], request_id="k1")


def test_the_store_is_bounded() -> None:
    store = OrderStore(max_orders=2)
    store.create("a", [BOOK])
    store.create("a", [BOOK])
    with pytest.raises(StoreFull):
        store.create("a", [BOOK])


def test_status_changes_follow_the_table() -> None:
    store = OrderStore()
    order = store.create("alice", [BOOK])
    with pytest.raises(InvalidTransition, match="allowed: cancelled, confirmed"):
        store.set_status(order.id, Status.SHIPPED)
    assert store.set_status(order.id, Status.CONFIRMED).version == 2
    assert store.set_status(order.id, Status.CONFIRMED).version == 2  # no change, no version
    with pytest.raises(OrderNotFound):
        store.set_status("ord-99", Status.CONFIRMED)


def test_pages_are_stable_while_orders_are_added() -> None:
    store = OrderStore()
    for n in range(5):
        store.create("alice" if n % 2 == 0 else "bob", [BOOK])
    page, cursor = store.list(Query("alice"), limit=2)
    assert [o.id for o in page] == ["ord-1", "ord-3"]
    store.create("alice", [BOOK])  # added between two pages: appears on a later one
    rest, last = store.list(Query("alice"), after=cursor or 0, limit=2)
    assert [o.id for o in rest] == ["ord-5", "ord-6"] and last is None


items = st.builds(
    Item,
    st.text(max_size=5),
    st.integers(min_value=-3, max_value=5),
    st.integers(min_value=-3, max_value=5),
)


@given(customer=st.text(max_size=5), order_items=st.lists(items, max_size=4))
def test_validator_agrees_with_the_rules(customer: str, order_items: list[Item]) -> None:
    """Valid exactly when the rules say so; every violation points at a real field."""
    found = validate_order(customer, order_items)
    rules_hold = (
        bool(customer.strip())
        and bool(order_items)
        and all(i.sku.strip() and i.quantity >= 1 and i.unit_price_cents >= 1 for i in order_items)
    )
    assert (found == []) == rules_hold
    for violation in found:
        if violation.path[0] == "items" and len(violation.path) == 3:
            assert 0 <= int(violation.path[1]) < len(order_items)
            assert violation.path[2] in ("sku", "quantity", "unit_price_cents")


class StoreMachine(RuleBasedStateMachine):
    """The store against a dict model; every change emits exactly one event."""

    def __init__(self) -> None:
        super().__init__()
        self.store = OrderStore(clock=itertools.count().__next__)
        self.model: dict[str, Status] = {}
        self.versions: dict[str, int] = {}
        self.events: list[tuple[str, str, Status]] = []
        self.store.listen(lambda e: self.events.append((e.kind.value, e.order.id, e.order.status)))
        self.expected_events: list[tuple[str, str, Status]] = []

    @rule(customer=st.sampled_from(["alice", "bob", ""]), quantity=st.integers(-1, 3))
    def create(self, customer: str, quantity: int) -> None:
        try:
            order = self.store.create(customer, [Item("sku", quantity, 100)])
        except InvalidOrder:
            assert not customer or quantity < 1
            return
        assert customer and quantity >= 1
        self.model[order.id] = Status.PENDING
        self.versions[order.id] = 1
        self.expected_events.append(("created", order.id, Status.PENDING))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), status=st.sampled_from(list(Status)))
    def change(self, data: st.DataObject, status: Status) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.model)))
        before = self.model[order_id]
        try:
            order = self.store.set_status(order_id, status)
        except InvalidTransition:
            assert status is not before and status not in TRANSITIONS[before]
            return
        if status is before:
            assert order.version == self.versions[order_id]
            return
        assert status in TRANSITIONS[before]
        self.model[order_id] = status
        self.versions[order_id] += 1
        assert order.version == self.versions[order_id]
        self.expected_events.append(("updated", order_id, status))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.model)))
        status = self.model.pop(order_id)
        self.store.delete(order_id)
        self.expected_events.append(("deleted", order_id, status))

    @invariant()
    def store_matches_model(self) -> None:
        page, _ = self.store.list(limit=1000)
        assert {o.id: o.status for o in page} == self.model
        for status in Status:
            filtered, _ = self.store.list(Query(status=status), limit=1000)
            assert {o.id for o in filtered} == {i for i, s in self.model.items() if s is status}
        assert self.events == self.expected_events

    @invariant()
    def final_states_stay_final(self) -> None:
        for order_id, status in self.model.items():
            if status.final:
                assert not TRANSITIONS[status]
                with pytest.raises(InvalidTransition):
                    self.store.set_status(order_id, Status.CONFIRMED)


TestStoreMachine = StoreMachine.TestCase


async def test_a_watch_sees_the_snapshot_then_live_changes_without_gap() -> None:
    store = OrderStore()
    store.create("alice", [BOOK])
    store.create("bob", [BOOK])
    query = Query("alice")
    with Watch(store, query.matches, capacity=10) as watch:
        assert [o.id for o in watch.snapshot(query)] == ["ord-1"]
        store.create("alice", [BOOK])
        store.create("bob", [BOOK])
        store.set_status("ord-1", Status.CANCELLED)
        seen = []
        async for kind, order in watch:
            seen.append((kind, order.id))
            if len(seen) == 2:
                break
    assert seen == [("created", "ord-3"), ("updated", "ord-1")]
    assert not store._listeners  # closing the watch unsubscribed it


async def test_a_watcher_that_falls_behind_is_cut_off() -> None:
    store = OrderStore()
    with Watch(store, lambda order: True, capacity=2) as watch:
        watch.listen()
        for _ in range(3):
            store.create("alice", [BOOK])
        received = []
        with pytest.raises(WatchOverflow), trio.fail_after(1):
            async for _kind, order in watch:
                received.append(order.id)
    assert received == ["ord-1", "ord-2"]
