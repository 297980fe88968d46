"""``Balancer``: the sans-I/O :class:`LoadBalancer` kept up to date by trio tasks.

``await nursery.start(balancer.run)`` follows the source's snapshots (returning once
the first one is applied), runs one health-check task per backend (started when the
backend joins, cancelled when it leaves) and tells listeners (the proxy's pools, a
client's subchannels) about membership changes within the same snapshot. Requests
use the synchronous core directly: ``pick``/``start``/``end`` with ``trio.current_time()``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import aclosing
from typing import Protocol

import trio

from ._backend import Backend, BackendState
from ._balancer import LoadBalancer, MembershipChange, Outcome
from ._config import BalancerConfig
from ._health import HealthCheckConfig, Probe, run_health_checks
from ._source import BackendSource
from ._strategies import PeakEWMA, Strategy

Listener = Callable[[MembershipChange], None]


class BalancerObserver(Protocol):
    """What a :class:`Balancer` reports to metrics (``netkit.observe.watch_balancer``)."""

    def picked(self, backend: Backend) -> None: ...
    def ended(self, backend: Backend, outcome: str, latency: float, ejected: bool) -> None: ...
    def health_changed(self, backend: Backend, healthy: bool) -> None: ...


class Balancer:
    """A :class:`LoadBalancer` fed by a :class:`BackendSource`, with active health checks.

    ``health=None`` runs no active checks (passive outlier detection still applies).
    ``probe_factory`` replaces the probes (tests): it gets a backend, returns a probe.
    """

    def __init__(
        self,
        source: BackendSource,
        strategy: Strategy | None = None,
        config: BalancerConfig | None = None,
        *,
        health: HealthCheckConfig | None = None,
        probe_factory: Callable[[Backend], Probe] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.lb = LoadBalancer(strategy or PeakEWMA(), config)
        self.health = health
        self._probe_factory = probe_factory
        self._rng = rng or random.Random()
        self._checks: dict[Backend, trio.CancelScope] = {}
        self._listeners: list[Listener] = []
        #: Set each time a snapshot has been applied (tests and tools wait on it).
        self.snapshots_applied = 0
        self._changed = trio.Event()
        #: Told about picks, request ends and health verdicts (``netkit.observe``).
        self.observer: BalancerObserver | None = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(change)`` after every membership change."""
        self._listeners.append(listener)

    async def run(
        self, *, task_status: trio.TaskStatus[Balancer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery, aclosing(self.source.snapshots()) as snapshots:
            started = False
            async for snapshot in snapshots:
                change = self.lb.update(snapshot, trio.current_time())
                for state in change.removed:
                    scope = self._checks.pop(state.backend, None)
                    if scope is not None:
                        scope.cancel()
                if self.health is not None:
                    for state in change.added:
                        # The scope exists before the task runs, so a snapshot that
                        # removes the backend before then still finds it to cancel.
                        scope = self._checks[state.backend] = trio.CancelScope()
                        nursery.start_soon(self._check, state.backend, scope)
                for listener in self._listeners:
                    listener(change)
                self.snapshots_applied += 1
                self._changed.set()
                self._changed = trio.Event()
                if not started:
                    started = True
                    task_status.started(self)
            nursery.cancel_scope.cancel()

    async def wait_changed(self) -> None:
        """Wait for the next applied snapshot."""
        await self._changed.wait()

    async def _check(self, backend: Backend, scope: trio.CancelScope) -> None:
        assert self.health is not None
        with scope:
            probe = self._probe_factory(backend) if self._probe_factory else None
            await run_health_checks(backend, self.health, self._verdict, probe=probe, rng=self._rng)

    def _verdict(self, backend: Backend, healthy: bool) -> None:
        self.lb.set_healthy(backend, healthy)
        if self.observer is not None:
            self.observer.health_changed(backend, healthy)

    # -- the per-request API (synchronous, trio's clock) --------------------------------
    def pick(
        self, *, key: int | None = None, exclude: tuple[BackendState, ...] = ()
    ) -> BackendState | None:
        state = self.lb.pick(trio.current_time(), key=key, exclude=exclude)
        if state is not None and self.observer is not None:
            self.observer.picked(state.backend)
        return state

    def start(self, state: BackendState, *, retry: bool = False) -> float:
        """Count a request as started on ``state``; returns the start time."""
        now = trio.current_time()
        self.lb.start(state, now, retry=retry)
        return now

    def end(
        self,
        state: BackendState,
        started: float,
        outcome: Outcome,
        *,
        latency: float | None = None,
        retry: bool = False,
    ) -> None:
        """Count the request started at ``started`` as ended now.

        ``latency`` is what peak-EWMA and the observer get; by default the time since
        ``started`` (a REST response passes the time to its head instead).
        """
        now = trio.current_time()
        if latency is None:
            latency = now - started
        ejections = state.ejections
        self.lb.end(state, now, outcome, latency=latency, retry=retry)
        if self.observer is not None:
            self.observer.ended(state.backend, outcome.value, latency, state.ejections > ejections)
