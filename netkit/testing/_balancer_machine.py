"""``BalancerMachine``: a real :class:`~netkit.balance.Balancer` against a model.

The balancer follows a :class:`~netkit.balance.MutableBackends` source and runs its
active health checks (every ``HEALTH_INTERVAL`` mock seconds, thresholds 1, probes the
machine answers) in the example's nursery, kept running between rules. Rules:
``join``/``leave`` (a new membership snapshot), ``set_health`` (the backend's probe
starts passing or failing; the rule waits until a check has seen it), ``start_request``
(``pick`` + ``start``), ``end_request`` (``end`` with an outcome: success, 5xx, local
failure, cancelled), and ``advance`` (mock time passes: ejections lapse).

Invariants, checked at every pick and after every rule:

1. **No pick goes to a removed backend**: the pick is the live state of a member.
2. **No pick goes to an unhealthy or ejected backend outside panic**: when at least
   ``panic_threshold`` of the members are available (healthy and not ejected, as the
   model computes them), the pick is one of those; in panic it is any member; a pick
   is None only when there are no members.
3. **Outstanding counts are exact**: each state's ``outstanding`` (members and removed
   states alike) and the core's ``active`` equal the requests the model has in flight.
4. **At most the max share is ejected**: a failure ejects a backend exactly when the
   model says (``consecutive_failures`` in a row, not already ejected, not removed,
   fewer than ``max(1, floor(members x max_ejection_percent / 100))`` ejected), for the
   model's duration.
5. **In-flight requests on a removed backend complete**: ending them decrements the
   removed state, never touches the state of a backend that rejoined, never ejects.
6. **Membership and health follow the source and the probes**.

Run it against your own setup by overriding :meth:`BalancerMachine.make_balancer`
(another strategy, config or core; it must use the given source and probe factory).
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar

import attrs
import trio
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from ..balance import (
    Backend,
    BackendState,
    Balancer,
    BalancerConfig,
    HealthCheckConfig,
    MutableBackends,
    Outcome,
    OutlierConfig,
    RoundRobin,
)
from ._machine import TrioStateMachine


@attrs.define
class ModelEjection:
    """The model's outlier-detection record of one backend state."""

    consecutive: int = 0
    ejections: int = 0
    until: float = -math.inf


@attrs.define
class InFlight:
    """A request the model has started and not ended."""

    state: BackendState
    started: float


class BalancerMachine(TrioStateMachine):
    """See the module docstring. Class attributes set the scenario's size and timing."""

    BACKENDS: ClassVar[tuple[Backend, ...]] = tuple(
        Backend(f"10.0.0.{i}", 8080) for i in range(1, 4)
    )
    HEALTH_INTERVAL: ClassVar[float] = 1.0
    ADVANCES: ClassVar[tuple[float, ...]] = (0.5, 3.0, 10.0, 40.0)
    config: ClassVar[BalancerConfig] = BalancerConfig(
        panic_threshold=0.5,
        outlier=OutlierConfig(
            consecutive_failures=2,
            base_ejection_time=5.0,
            max_ejection_time=20.0,
            max_ejection_percent=50.0,
        ),
    )

    def make_balancer(
        self, source: MutableBackends, probe_factory: Any, rng: random.Random
    ) -> Balancer:
        """The balancer under test, following ``source`` and probing with ``probe_factory``.

        Take every random choice from ``rng`` (hypothesis draws it, so a failure replays).
        """
        health = HealthCheckConfig(
            interval=self.HEALTH_INTERVAL,
            jitter=0.0,
            unhealthy_threshold=1,
            healthy_threshold=1,
        )
        return Balancer(
            source,
            RoundRobin(rng),
            self.config,
            health=health,
            probe_factory=probe_factory,
            rng=rng,
        )

    @initialize(rng=st.randoms(use_true_random=False))
    async def start_balancer(self, rng: random.Random) -> None:
        self.members: list[Backend] = []
        self.probe_ok: dict[Backend, bool] = {}
        self.inflight: list[InFlight] = []
        self.ejection: dict[BackendState, ModelEjection] = {}
        self.source = MutableBackends()

        def probe_factory(backend: Backend) -> Any:
            async def probe() -> bool:
                return self.probe_ok.get(backend, True)

            return probe

        self.balancer = self.make_balancer(self.source, probe_factory, rng)
        await self.start(self.balancer.run)

    # -- the model ---------------------------------------------------------------------
    @property
    def lb(self) -> Any:
        return self.balancer.lb

    def model_of(self, state: BackendState) -> ModelEjection:
        return self.ejection.setdefault(state, ModelEjection())

    def model_available(self, now: float) -> list[Backend]:
        return [
            b
            for b in self.members
            if self.probe_ok.get(b, True) and not self._ejected(self.lb.state_of(b), now)
        ]

    def _ejected(self, state: BackendState | None, now: float) -> bool:
        return state is not None and now < self.model_of(state).until

    def _record(self, state: BackendState, outcome: Outcome, now: float) -> bool:
        """The model's outlier detection: whether this outcome ejects ``state``."""
        config = self.lb.config.outlier
        m = self.model_of(state)
        if not config.enabled or outcome is Outcome.CANCELLED:
            return False
        if not outcome.failed:
            m.consecutive = 0
            if m.ejections and now >= m.until + config.max_ejection_time:
                m.ejections = 0
            return False
        m.consecutive += 1
        if m.consecutive < config.consecutive_failures or now < m.until or state.removed:
            return False
        live = [self.lb.state_of(b) for b in self.members]
        ejected = sum(1 for s in live if self._ejected(s, now))
        limit = max(1, math.floor(len(live) * config.max_ejection_percent / 100.0))
        if ejected >= limit:
            return False
        m.ejections += 1
        duration = min(
            config.base_ejection_time * m.ejections,
            max(config.max_ejection_time, config.base_ejection_time),
        )
        m.until = now + duration
        m.consecutive = 0
        return True

    async def _apply(self) -> None:
        self.source.set(self.members)
        await trio.testing.wait_all_tasks_blocked()  # the snapshot and first checks ran

    # -- rules -------------------------------------------------------------------------
    @rule(backend=st.sampled_from(BACKENDS))
    async def join(self, backend: Backend) -> None:
        if backend not in self.members:
            self.members.append(backend)
        await self._apply()

    @rule(backend=st.sampled_from(BACKENDS))
    async def leave(self, backend: Backend) -> None:
        if backend in self.members:
            self.members.remove(backend)
        await self._apply()

    @rule(backend=st.sampled_from(BACKENDS), ok=st.booleans())
    async def set_health(self, backend: Backend, ok: bool) -> None:
        self.probe_ok[backend] = ok
        # a check runs within one interval (never exactly now: that one already ran)
        await trio.sleep(self.HEALTH_INTERVAL * 1.5)

    @rule()
    async def start_request(self) -> None:
        now = trio.current_time()
        state = self.balancer.pick()
        if not self.members:
            assert state is None, f"picked {state} with no members"
            return
        assert state is not None, f"no pick among members {self.members}"
        assert not state.removed and self.lb.state_of(state.backend) is state, (
            f"picked removed backend {state.backend.address}"
        )
        assert state.backend in self.members, f"picked non-member {state.backend.address}"
        available = self.model_available(now)
        threshold = self.lb.config.panic_threshold
        panic = threshold > 0 and len(available) < threshold * len(self.members)
        if not panic:
            assert state.backend in available, (
                f"picked unavailable {state.backend.address} outside panic "
                f"(available {[b.address for b in available]})"
            )
        started = self.balancer.start(state)
        self.inflight.append(InFlight(state, started))

    @precondition(lambda self: bool(self.inflight))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(list(Outcome)),
        latency=st.sampled_from([0.0, 0.1, 2.0]),
    )
    async def end_request(self, data: st.DataObject, outcome: Outcome, latency: float) -> None:
        index = data.draw(st.integers(0, len(self.inflight) - 1), label="request")
        request = self.inflight.pop(index)
        await trio.sleep(latency)
        now = trio.current_time()
        state = request.state
        limit_before = self.lb.ejected(now)
        expect_ejection = self._record(state, outcome, now)
        self.balancer.end(state, request.started, outcome)
        newly = state.ejected(now) and state not in limit_before
        assert newly == expect_ejection, (
            f"{outcome.value} on {state.backend.address}: ejected={newly}, "
            f"model says {expect_ejection} (ejected before: {len(limit_before)})"
        )
        if expect_ejection:
            assert state.ejected_until == self.model_of(state).until, "ejection duration"

    @rule(dt=st.sampled_from(ADVANCES))
    async def advance(self, dt: float) -> None:
        await trio.sleep(dt)

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def membership_and_health_follow_the_model(self) -> None:
        actual = [s.backend for s in self.lb.members]
        assert sorted(actual, key=str) == sorted(self.members, key=str), (
            f"members {actual} != model {self.members}"
        )
        for backend in self.members:
            state = self.lb.state_of(backend)
            expected = self.probe_ok.get(backend, True)
            assert state.healthy == expected, f"{backend.address} healthy={state.healthy}"

    @invariant()
    def outstanding_counts_are_exact(self) -> None:
        counts: dict[BackendState, int] = {}
        for request in self.inflight:
            counts[request.state] = counts.get(request.state, 0) + 1
        states = {*counts, *self.lb.members}
        for state in states:
            assert state.outstanding == counts.get(state, 0), (
                f"{state.backend.address} (removed={state.removed}) outstanding "
                f"{state.outstanding}, model {counts.get(state, 0)}"
            )
        assert self.lb.active == len(self.inflight), f"active {self.lb.active}"
