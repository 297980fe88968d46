"""Balancing strategies: sans-I/O, each a small class with one ``pick`` and two hooks.

The balancer hands a strategy the candidates (the backends that may take this request,
after health, ejection, panic and retry exclusions) with their effective weights (the
configured weight scaled by slow start); the strategy returns one. ``on_start`` and
``on_end`` bracket every request it picked, with the latency and outcome, for the
strategies that learn from traffic. ``rebuild`` is told the full membership whenever it
changes (the hashing strategies build their ring or table there, not per pick).

None of this touches trio or a socket: time comes in as ``now`` (trio's clock in the
drivers, any number in tests) and randomness from the ``random.Random`` given at
construction, so every strategy can be tested with hypothesis directly.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Sequence
from typing import ClassVar

from ._backend import BackendState


class Strategy(abc.ABC):
    """Picks a backend for a request; learns from ``on_start``/``on_end`` if it wants."""

    #: The name used by configs and the CLI (``--strategy``).
    name: ClassVar[str]
    #: Whether ``pick`` needs a request key (the hashing strategies).
    uses_key: ClassVar[bool] = False

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    @abc.abstractmethod
    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        """One of ``candidates`` (never empty); ``weights[i]`` belongs to ``candidates[i]``."""

    def rebuild(self, members: Sequence[BackendState]) -> None:
        """The membership changed (joined or left; not health): rebuild derived state."""
        return None

    def on_start(self, state: BackendState, now: float) -> None:
        """A request picked by this strategy was sent to ``state``."""
        return None

    def on_end(self, state: BackendState, now: float, latency: float, ok: bool) -> None:
        """That request ended after ``latency`` seconds (``ok``: not a failure)."""
        return None


class RoundRobin(Strategy):
    """Each candidate in turn, weights ignored (plain round robin)."""

    name = "round_robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        # Start at a random place so that many proxies do not march in step.
        self._next = self.rng.randrange(1 << 30)

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen


class WeightedRoundRobin(Strategy):
    """nginx's smooth weighted round robin: weights respected, picks interleaved.

    Each pick adds every candidate's weight to its running score, takes the highest,
    and subtracts the total from the winner; with weights 5, 1, 1 the order is
    a a b a c a a, not a a a a a b c. Over any ``sum(weights)`` consecutive picks among a
    stable set, each backend gets exactly its weight.
    """

    name = "weighted_round_robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._current: dict[int, float] = {}

    def rebuild(self, members: Sequence[BackendState]) -> None:
        alive = {id(m) for m in members}
        self._current = {k: v for k, v in self._current.items() if k in alive}

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        total = 0.0
        best = 0
        best_score = -math.inf
        current = self._current
        for i, (state, weight) in enumerate(zip(candidates, weights, strict=True)):
            score = current.get(id(state), 0.0) + weight
            current[id(state)] = score
            total += weight
            if score > best_score:
                best, best_score = i, score
        winner = candidates[best]
        current[id(winner)] -= total
        return winner


class Random(Strategy):
    """A candidate at random, in proportion to its weight."""

    name = "random"

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        return self.rng.choices(candidates, weights)[0]


def _two(rng: random.Random, n: int) -> tuple[int, int]:
    """Two distinct indexes below ``n`` (n >= 2), uniformly."""
    a = rng.randrange(n)
    b = rng.randrange(n - 1)
    return a, b + (b >= a)


class _TwoChoices(Strategy):
    """Power of two choices: sample two distinct candidates, take the cheaper by ``cost``
    (ties go to the first sampled). O(1), and unlike "the global minimum" it does not
    send every new request of a burst to the one backend that just freed up."""

    @abc.abstractmethod
    def cost(self, state: BackendState, weight: float, now: float) -> float:
        """What sending one more request to ``state`` costs (lower is better)."""

    def pick(
        self,
        candidates: Sequence[BackendState],
        weights: Sequence[float],
        *,
        key: int | None = None,
        now: float = 0.0,
    ) -> BackendState:
        if len(candidates) == 1:
            return candidates[0]
        a, b = _two(self.rng, len(candidates))
        cost_a = self.cost(candidates[a], weights[a], now)
        cost_b = self.cost(candidates[b], weights[b], now)
        return candidates[b] if cost_b < cost_a else candidates[a]


class LeastOutstanding(_TwoChoices):
    """Power of two choices on requests in flight (Envoy's least-request).

    The cost of a backend is its outstanding requests per unit of weight,
    ``(outstanding + 1) / weight``.
    """

    name = "least_outstanding"

    def cost(self, state: BackendState, weight: float, now: float) -> float:
        return (state.outstanding + 1) / weight


class PeakEWMA(_TwoChoices):
    """Power of two choices on peak-EWMA latency x load (Finagle's and Linkerd's).

    Each backend's latency estimate jumps *up* to any slower observation at once and
    decays with time constant ``decay`` seconds (the old value keeps a share
    ``exp(-elapsed / decay)``, toward the new observations and, with no observations,
    toward zero, as tower's ``PeakEwma`` does, so an avoided backend gets tried again
    after a while). The cost of a backend is
    ``estimate * (outstanding + 1) / weight``; of two sampled candidates the cheaper
    wins. A backend without observations yet is estimated at ``default_rtt``. A
    backend that turns slow is therefore avoided after its first slow answer, and
    earns its traffic back as its estimate decays.
    """

    name = "peak_ewma"

    def __init__(
        self, rng: random.Random | None = None, *, decay: float = 10.0, default_rtt: float = 0.03
    ) -> None:
        super().__init__(rng)
        if decay <= 0 or default_rtt < 0:
            raise ValueError("decay must be positive and default_rtt not negative")
        self.decay = decay
        self.default_rtt = default_rtt

    def estimate(self, state: BackendState, now: float) -> float:
        """The latency estimate as of ``now`` (decayed since the last observation)."""
        if state.ewma_stamp == -math.inf:
            return self.default_rtt
        elapsed = max(now - state.ewma_stamp, 0.0)
        return state.ewma * math.exp(-elapsed / self.decay)

    def cost(self, state: BackendState, weight: float, now: float) -> float:
        return self.estimate(state, now) * (state.outstanding + 1) / weight

    def on_end(self, state: BackendState, now: float, latency: float, ok: bool) -> None:
        self.observe(state, now, latency)

    def observe(self, state: BackendState, now: float, rtt: float) -> None:
        """Fold one latency sample into the backend's peak-EWMA estimate."""
        if state.ewma_stamp == -math.inf:
            state.ewma = rtt
        else:
            elapsed = max(now - state.ewma_stamp, 0.0)
            keep = math.exp(-elapsed / self.decay)
            current = state.ewma * keep
            # The peak: a slower observation counts at once; faster ones blend in.
            state.ewma = rtt if rtt > current else current + rtt * (1.0 - keep)
        state.ewma_stamp = now
