"""``LoadBalancer``: the sans-I/O core that every driver (proxy, client channels) uses.

It holds the membership (``BackendState`` per backend), the active-health verdicts
that checkers report, passive outlier detection, the panic threshold, slow start and
the retry budget, and asks a :class:`Strategy` to choose among the candidates. It
never awaits and never reads a clock: callers pass ``now`` (trio's clock), so the
whole thing is tested with hypothesis, and a driver decides synchronously before it
does any I/O.

The life of one request: ``state = lb.pick(now, key=..., exclude=...)`` (None: no
backend may take it), ``lb.start(state, now)``, the I/O, then
``lb.end(state, now, outcome)``. ``start``/``end`` keep the outstanding counts that
least-outstanding and peak-EWMA read, and ``end`` feeds outlier detection. A backend
removed while requests are in flight is marked ``removed``: no new request reaches it,
and the requests in flight end normally.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence

import attrs

from ._backend import Backend, BackendState
from ._config import BalancerConfig
from ._strategies import Strategy


class Outcome(enum.Enum):
    """How a request ended, as outlier detection counts it."""

    SUCCESS = "success"
    #: The backend answered 5xx (502, 503 and 504 included).
    SERVER_ERROR = "server_error"
    #: Connect failure, reset, broken connection or timeout: the backend, not the request.
    LOCAL_FAILURE = "local_failure"
    #: The client went away or the request was refused locally: says nothing of the backend.
    CANCELLED = "cancelled"

    @property
    def failed(self) -> bool:
        return self in (Outcome.SERVER_ERROR, Outcome.LOCAL_FAILURE)


@attrs.frozen
class MembershipChange:
    """What ``update`` did: the states it created and the ones it marked removed."""

    added: tuple[BackendState, ...]
    removed: tuple[BackendState, ...]


class LoadBalancer:
    """Membership, health, ejection, panic, slow start, retry budget and a strategy."""

    def __init__(self, strategy: Strategy, config: BalancerConfig | None = None) -> None:
        self.strategy = strategy
        self.config = config or BalancerConfig()
        self._members: dict[Backend, BackendState] = {}
        self._initialised = False
        #: Requests and retries in flight (the retry budget compares them).
        self.active = 0
        self.active_retries = 0
        #: Retries the retry budget refused (metrics).
        self.retry_budget_exhausted = 0

    # -- membership -----------------------------------------------------------------
    @property
    def members(self) -> list[BackendState]:
        return list(self._members.values())

    def state_of(self, backend: Backend) -> BackendState | None:
        return self._members.get(backend)

    def update(self, backends: Iterable[Backend], now: float) -> MembershipChange:
        """Replace the membership with ``backends`` (a full snapshot from a source).

        Backends that stay keep their state (counts, estimates, health). The first
        snapshot's backends start at full weight; later arrivals get slow start.
        """
        wanted = list(dict.fromkeys(backends))
        added: list[BackendState] = []
        removed: list[BackendState] = []
        start = -math.inf if not self._initialised else now
        keep = set(wanted)
        for backend, state in list(self._members.items()):
            if backend not in keep:
                state.removed = True
                removed.append(state)
                del self._members[backend]
        for backend in wanted:
            if backend not in self._members:
                state = BackendState(backend, added_at=start)
                self._members[backend] = state
                added.append(state)
        self._initialised = True
        if added or removed:
            self.strategy.rebuild(self.members)
        return MembershipChange(tuple(added), tuple(removed))

    def set_healthy(self, backend: Backend, healthy: bool) -> None:
        """An active health check's verdict (ignored for a backend no longer a member)."""
        state = self._members.get(backend)
        if state is not None:
            state.healthy = healthy

    # -- choosing -------------------------------------------------------------------
    def available(self, now: float) -> list[BackendState]:
        return [s for s in self._members.values() if s.available(now)]

    def in_panic(self, now: float) -> bool:
        """Too few backends available: balance over all of them (Envoy's panic mode)."""
        total = len(self._members)
        if total == 0 or self.config.panic_threshold == 0:
            return False
        return len(self.available(now)) < self.config.panic_threshold * total

    def effective_weight(self, state: BackendState, now: float) -> float:
        """The configured weight, scaled down during slow start."""
        window = self.config.slow_start_window
        age = now - state.added_at
        if window <= 0 or age >= window:
            return float(state.weight)
        floor = self.config.slow_start_min_weight
        return state.weight * max(floor, age / window)

    def candidates(self, now: float, exclude: Iterable[BackendState] = ()) -> list[BackendState]:
        """The backends that may take a new request now (before the strategy chooses).

        One pass over the members serves both the panic test (over all of them) and the
        answer: this runs for every request.
        """
        members = list(self._members.values())
        available = [s for s in members if s.available(now)]
        threshold = self.config.panic_threshold
        if threshold and members and len(available) < threshold * len(members):
            available = members  # panic: balance over all of them
        if exclude:
            skip = set(exclude)
            return [s for s in available if s not in skip]
        return available

    def pick(
        self, now: float, *, key: int | None = None, exclude: Iterable[BackendState] = ()
    ) -> BackendState | None:
        """The backend for a new request, or None when no backend may take it."""
        found = self.candidates(now, exclude)
        if not found:
            return None
        weights = [self.effective_weight(s, now) for s in found]
        return self.strategy.pick(found, weights, key=key, now=now)

    # -- one request ------------------------------------------------------------------
    def start(self, state: BackendState, now: float, *, retry: bool = False) -> None:
        state.outstanding += 1
        self.active += 1
        if retry:
            self.active_retries += 1
        self.strategy.on_start(state, now)

    def end(
        self,
        state: BackendState,
        now: float,
        outcome: Outcome,
        *,
        latency: float = 0.0,
        retry: bool = False,
    ) -> None:
        state.outstanding -= 1
        self.active -= 1
        if retry:
            self.active_retries -= 1
        if outcome is not Outcome.CANCELLED:
            self.strategy.on_end(state, now, latency, not outcome.failed)
            self.record(state, outcome, now)

    def may_retry(self) -> bool:
        """Whether the retry budget allows one more retry now."""
        allowed = max(self.config.min_retry_concurrency, self.config.retry_budget * self.active)
        if self.active_retries < allowed:
            return True
        self.retry_budget_exhausted += 1
        return False

    # -- passive outlier detection ------------------------------------------------------
    def record(self, state: BackendState, outcome: Outcome, now: float) -> bool:
        """Count a request's outcome; True if this ejected the backend."""
        config = self.config.outlier
        if not config.enabled or outcome is Outcome.CANCELLED:
            return False
        if not outcome.failed:
            state.consecutive_failures = 0
            if state.ejections and now >= state.ejected_until + config.max_ejection_time:
                state.ejections = 0  # well behaved for a long while: forgive
            return False
        state.consecutive_failures += 1
        if state.consecutive_failures < config.consecutive_failures or state.ejected(now):
            return False
        if state.removed or not self._may_eject(now):
            return False
        state.ejections += 1
        duration = min(
            config.base_ejection_time * state.ejections,
            max(config.max_ejection_time, config.base_ejection_time),
        )
        state.ejected_until = now + duration
        state.consecutive_failures = 0
        return True

    def _may_eject(self, now: float) -> bool:
        total = len(self._members)
        ejected = sum(1 for s in self._members.values() if s.ejected(now))
        limit = max(1, math.floor(total * self.config.outlier.max_ejection_percent / 100.0))
        return ejected < limit

    def ejected(self, now: float) -> list[BackendState]:
        return [s for s in self._members.values() if s.ejected(now)]


def strategy_names() -> Sequence[str]:
    """The names ``make_strategy`` knows."""
    return list(_registry())


def _registry() -> dict[str, type[Strategy]]:
    from ._hashing import Maglev, RingHash
    from ._strategies import LeastOutstanding, PeakEWMA, Random, RoundRobin, WeightedRoundRobin

    kinds: list[type[Strategy]] = [
        RoundRobin,
        WeightedRoundRobin,
        Random,
        LeastOutstanding,
        PeakEWMA,
        RingHash,
        Maglev,
    ]
    return {kind.name: kind for kind in kinds}


def make_strategy(name: str, **kwargs: object) -> Strategy:
    """A strategy by name (``"peak_ewma"``, ``"maglev"``...); ValueError if unknown."""
    kinds = _registry()
    if name not in kinds:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(kinds)}")
    return kinds[name](**kwargs)  # type: ignore[arg-type]
