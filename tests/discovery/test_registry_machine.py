"""The registry against a model, driven by hypothesis with trio's MockClock.

Each rule is one ``trio.run`` on the same MockClock (autojump_threshold=0), in which the
registry's real expiry task runs (``nursery.start(registry.run)``) beside the operation;
time only moves through ``advance``, and then the expiry task wakes at each deadline
on its own. After every rule: healthy discovery equals the model's, every instance and
its health equals the model's, nothing is passing or warning past its TTL, and (rule
``watch_from``) replaying a watch from any revision seen reproduces the full state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import pytest
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from netkit.discovery import (
    Address,
    Change,
    ChangeKind,
    Health,
    Instance,
    InstanceNotFound,
    InstanceSpec,
    MemoryRegistry,
    Metadata,
    RegistryConfig,
    Snapshot,
)

T = TypeVar("T")
Key = tuple[str, str]
SERVICES = ("a", "b")
IDS = ("1", "2", "3")
DCA = 4.0


@attrs.define
class ModelInstance:
    spec: InstanceSpec
    ttl: float
    last_heartbeat: float
    reported: Health
    lapsed: bool = False
    critical_since: float | None = None

    @property
    def health(self) -> Health:
        return Health.CRITICAL if self.lapsed else self.reported


def replay(start: dict[Key, Instance], since: int, events: list[Any]) -> dict[Key, Instance]:
    state = dict(start)
    for event in events:
        if isinstance(event, Snapshot):
            state = {i.key: i for i in event.instances}
            continue
        assert isinstance(event, Change)
        assert event.revision > since
        if event.kind is ChangeKind.REMOVED:
            del state[event.instance.key]
        else:
            assert (event.kind is ChangeKind.ADDED) == (event.instance.key not in state)
            state[event.instance.key] = event.instance
    return state


class RegistryMachine(RuleBasedStateMachine):
    config = RegistryConfig(deregister_critical_after=DCA, self_preservation_threshold=None)

    def __init__(self) -> None:
        super().__init__()
        self.clock = trio.testing.MockClock(autojump_threshold=0)
        self.registry = MemoryRegistry(self.config)
        self.model: dict[Key, ModelInstance] = {}
        self.now = 0.0
        #: The full state at every revision seen, for watch replays.
        self.states: dict[int, dict[Key, Instance]] = {0: {}}

    def step(self, op: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.registry.run)
                result = await op()
                await trio.testing.wait_all_tasks_blocked()
                self.now = trio.current_time()
                nursery.cancel_scope.cancel()
            return result

        return trio.run(main, clock=self.clock)

    @initialize()
    def start(self) -> None:
        self.step(trio.lowlevel.checkpoint)

    # -- model time ---------------------------------------------------------------------
    def model_advance(self, now: float) -> None:
        for key, m in list(self.model.items()):
            if not m.lapsed and m.last_heartbeat + m.ttl <= now:
                m.lapsed = True
                if m.critical_since is None:
                    m.critical_since = m.last_heartbeat + m.ttl
            if m.critical_since is not None and m.critical_since + DCA <= now:
                del self.model[key]

    # -- rules ----------------------------------------------------------------------------
    @rule(
        service=st.sampled_from(SERVICES),
        instance_id=st.sampled_from(IDS),
        ttl=st.sampled_from([1.0, 2.0, 5.0]),
        health=st.sampled_from(list(Health)),
        port=st.integers(1, 3),
    )
    def register(
        self, service: str, instance_id: str, ttl: float, health: Health, port: int
    ) -> None:
        spec = InstanceSpec(service, instance_id, Address("10.0.0.1", port), Metadata(), health)

        async def op() -> float:
            await self.registry.register(spec, ttl)
            return trio.current_time()

        at = self.step(op)
        old = self.model.get((service, instance_id))
        m = ModelInstance(spec, ttl, at, health)
        if health is Health.CRITICAL:
            m.critical_since = old.critical_since if old and old.health is Health.CRITICAL else at
        self.model[(service, instance_id)] = m

    @rule(
        service=st.sampled_from(SERVICES),
        instance_id=st.sampled_from(IDS),
        health=st.none() | st.sampled_from(list(Health)),
    )
    def heartbeat(self, service: str, instance_id: str, health: Health | None) -> None:
        async def op() -> float | None:
            try:
                await self.registry.heartbeat(service, instance_id, health)
            except InstanceNotFound:
                return None
            return trio.current_time()

        at = self.step(op)
        m = self.model.get((service, instance_id))
        assert (at is None) == (m is None)
        if m is None or at is None:
            return
        was_critical = m.health is Health.CRITICAL
        m.lapsed = False
        m.reported = health or Health.PASSING
        m.last_heartbeat = at
        if m.health is not Health.CRITICAL:
            m.critical_since = None
        elif not was_critical:
            m.critical_since = at

    @rule(service=st.sampled_from(SERVICES), instance_id=st.sampled_from(IDS))
    def deregister(self, service: str, instance_id: str) -> None:
        async def op() -> bool:
            return (await self.registry.deregister(service, instance_id))[1]

        existed = self.step(op)
        assert existed == ((service, instance_id) in self.model)
        self.model.pop((service, instance_id), None)

    @rule(dt=st.sampled_from([0.25, 1.0, 2.5, 7.0]))
    def advance(self, dt: float) -> None:
        async def op() -> None:
            await trio.sleep(dt)

        self.step(op)
        self.model_advance(self.now)

    @precondition(lambda self: len(self.states) > 1)
    @rule(data=st.data(), service=st.none() | st.sampled_from(SERVICES))
    def watch_from(self, data: st.DataObject, service: str | None) -> None:
        since = data.draw(st.sampled_from(sorted(self.states)))

        async def op() -> list[Any]:
            events: list[Any] = []
            async with self.registry.watch(service, since) as watcher:

                async def collect() -> None:
                    async for event in watcher:
                        events.append(event)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(collect)
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.cancel_scope.cancel()
            return events

        events = self.step(op)
        start = {k: i for k, i in self.states[since].items() if service in (None, k[0])}
        if since == 0:
            assert isinstance(events[0], Snapshot)
        replayed = replay(start, since, events)
        current = {i.key: i for i in self.registry.core.instances(service)}
        assert replayed.keys() == current.keys()
        for key, instance in current.items():
            assert replayed[key].same_state(instance), key

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def record_state(self) -> None:
        self.states[self.registry.revision] = {i.key: i for i in self.registry.core.instances()}

    @invariant()
    def matches_the_model(self) -> None:
        core = self.registry.core
        assert {i.key: i.health for i in core.instances()} == {
            k: m.health for k, m in self.model.items()
        }
        for service in SERVICES:
            healthy = {i.key for i in core.discover(service)}
            assert healthy == {
                k
                for k, m in self.model.items()
                if k[0] == service and m.health is not Health.CRITICAL
            }

    @invariant()
    def nothing_healthy_past_its_ttl(self) -> None:
        for instance in self.registry.core.instances():
            if instance.healthy:
                assert instance.last_heartbeat + instance.ttl > self.now


class ShortLogMachine(RegistryMachine):
    """A change log of 3 entries: resuming from an old revision needs a snapshot."""

    config = RegistryConfig(
        deregister_critical_after=DCA, self_preservation_threshold=None, change_log_size=3
    )


TestRegistryMachine = RegistryMachine.TestCase
TestShortLogMachine = ShortLogMachine.TestCase


@pytest.mark.parametrize("unused", [None])
def test_machine_can_fail(unused: None) -> None:
    """The model check is not vacuous: a registry that forgets to expire is caught."""

    class Broken(RegistryMachine):
        def model_advance(self, now: float) -> None:  # the model expires, the registry not
            for m in self.model.values():
                m.lapsed = True

    state = Broken()
    try:
        state.register("a", "1", 1.0, Health.PASSING, 1)
        state.advance(0.25)
        with pytest.raises(AssertionError):
            state.matches_the_model()
    finally:
        state.teardown()
