"""``RegistryMachine``: a service registry against a model of TTLs, health and watches.

Rules: ``register`` (a service/instance id, a TTL, an initial health), ``heartbeat``
(with or without a health report), ``deregister``, ``advance`` (mock time passes while
the registry's own expiry task runs -- started once per example with
``nursery.start(registry.run)`` and kept running between rules), and ``watch_from``
(replay a watch from any revision seen so far).

Invariants, checked after every rule:

1. **The registry is the model.** Every instance and its health equal the model's:
   an instance whose heartbeats stop turns CRITICAL exactly when its TTL lapses, and
   is removed ``deregister_critical_after`` seconds after it turned critical.
2. **Discovery returns exactly the healthy instances** of each service.
3. **Nothing is healthy past its TTL.**
4. **Watches replay.** A watch resumed from any revision seen (with or without a
   service filter) rebuilds the current state: a snapshot when the change log no
   longer reaches back, ADDED only for new keys, every revision above the one resumed
   from.

Run it against another registry (a backend of your own) by overriding
:meth:`RegistryMachine.make_registry`; the model assumes ``self_preservation_threshold``
is off.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from ..discovery import (
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
from ._machine import TrioStateMachine

Key = tuple[str, str]


@attrs.define
class ModelInstance:
    """The model's view of one instance."""

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
    """Apply watch ``events`` to ``start`` (the state at revision ``since``)."""
    state = dict(start)
    for event in events:
        if isinstance(event, Snapshot):
            state = {i.key: i for i in event.instances}
            continue
        assert isinstance(event, Change)
        assert event.revision > since, f"change {event.revision} is not above {since}"
        if event.kind is ChangeKind.REMOVED:
            del state[event.instance.key]
        else:
            added = event.kind is ChangeKind.ADDED
            assert added == (event.instance.key not in state), (
                f"{event.kind} for {event.instance.key}"
            )
            state[event.instance.key] = event.instance
    return state


class RegistryMachine(TrioStateMachine):
    """See the module docstring. Class attributes set the scenario's size and timing."""

    SERVICES: ClassVar[tuple[str, ...]] = ("a", "b")
    IDS: ClassVar[tuple[str, ...]] = ("1", "2", "3")
    TTLS: ClassVar[tuple[float, ...]] = (1.0, 2.0, 5.0)
    ADVANCES: ClassVar[tuple[float, ...]] = (0.25, 1.0, 2.5, 7.0)
    #: ``deregister_critical_after`` of the default config.
    DCA: ClassVar[float] = 4.0
    config: ClassVar[RegistryConfig] = RegistryConfig(
        deregister_critical_after=4.0, self_preservation_threshold=None
    )

    def make_registry(self) -> Any:
        """The registry under test: anything with MemoryRegistry's API and ``run``."""
        return MemoryRegistry(self.config)

    @initialize()
    async def start_registry(self) -> None:
        self.registry = self.make_registry()
        self.model: dict[Key, ModelInstance] = {}
        #: The full state at every revision seen, for watch replays.
        self.states: dict[int, dict[Key, Instance]] = {0: {}}
        await self.start(self.registry.run)

    # -- model time -----------------------------------------------------------------------
    def model_advance(self, now: float) -> None:
        """Lapse and remove model instances as the clock reaches ``now``."""
        for key, m in list(self.model.items()):
            if not m.lapsed and m.last_heartbeat + m.ttl <= now:
                m.lapsed = True
                if m.critical_since is None:
                    m.critical_since = m.last_heartbeat + m.ttl
            if m.critical_since is not None and m.critical_since + self.DCA <= now:
                del self.model[key]

    # -- rules ----------------------------------------------------------------------------
    @rule(
        service=st.sampled_from(SERVICES),
        instance_id=st.sampled_from(IDS),
        ttl=st.sampled_from(TTLS),
        health=st.sampled_from(list(Health)),
        port=st.integers(1, 3),
    )
    async def register(
        self, service: str, instance_id: str, ttl: float, health: Health, port: int
    ) -> None:
        spec = InstanceSpec(service, instance_id, Address("10.0.0.1", port), Metadata(), health)
        await self.registry.register(spec, ttl)
        at = trio.current_time()
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
    async def heartbeat(self, service: str, instance_id: str, health: Health | None) -> None:
        try:
            await self.registry.heartbeat(service, instance_id, health)
            at: float | None = trio.current_time()
        except InstanceNotFound:
            at = None
        m = self.model.get((service, instance_id))
        assert (at is None) == (m is None), f"heartbeat found={at is not None}, model={m}"
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
    async def deregister(self, service: str, instance_id: str) -> None:
        existed = (await self.registry.deregister(service, instance_id))[1]
        assert existed == ((service, instance_id) in self.model)
        self.model.pop((service, instance_id), None)

    @rule(dt=st.sampled_from(ADVANCES))
    async def advance(self, dt: float) -> None:
        await trio.sleep(dt)
        await trio.testing.wait_all_tasks_blocked()  # the expiry task has caught up
        self.model_advance(trio.current_time())

    @precondition(lambda self: len(self.states) > 1)
    @rule(data=st.data(), service=st.none() | st.sampled_from(SERVICES))
    async def watch_from(self, data: st.DataObject, service: str | None) -> None:
        since = data.draw(st.sampled_from(sorted(self.states)))
        events: list[Any] = []
        async with self.registry.watch(service, since) as watcher:

            async def collect() -> None:
                async for event in watcher:
                    events.append(event)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        start = {k: i for k, i in self.states[since].items() if service in (None, k[0])}
        if since == 0:
            assert isinstance(events[0], Snapshot), "a watch from 0 starts with a snapshot"
        replayed = replay(start, since, events)
        current = {i.key: i for i in self.registry.core.instances(service)}
        assert replayed.keys() == current.keys(), (replayed.keys(), current.keys())
        for key, instance in current.items():
            assert replayed[key].same_state(instance), key

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def record_state(self) -> None:
        self.states[self.registry.revision] = {i.key: i for i in self.registry.core.instances()}

    @invariant()
    def matches_the_model(self) -> None:
        core = self.registry.core
        actual = {i.key: i.health for i in core.instances()}
        expected = {k: m.health for k, m in self.model.items()}
        assert actual == expected, f"registry {actual} != model {expected}"
        for service in self.SERVICES:
            healthy = {i.key for i in core.discover(service)}
            assert healthy == {
                k
                for k, m in self.model.items()
                if k[0] == service and m.health is not Health.CRITICAL
            }, f"discover({service!r}) = {healthy}"

    @invariant()
    def nothing_healthy_past_its_ttl(self) -> None:
        now = self.clock.current_time()
        for instance in self.registry.core.instances():
            if instance.healthy:
                assert instance.last_heartbeat + instance.ttl > now, instance
