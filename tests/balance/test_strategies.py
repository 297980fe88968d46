"""Strategies against their definitions, with hypothesis (no network, no trio)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.balance import (
    Backend,
    BackendState,
    LeastOutstanding,
    Maglev,
    PeakEWMA,
    Random,
    RingHash,
    RoundRobin,
    WeightedRoundRobin,
    key_hash,
    make_strategy,
    strategy_names,
)


def states(weights: list[int]) -> list[BackendState]:
    return [BackendState(Backend(f"10.0.0.{i}", 8000 + i, weight=w)) for i, w in enumerate(weights)]


weight_lists = st.lists(st.integers(1, 10), min_size=1, max_size=8)


@given(weight_lists, st.integers(0, 2**32))
def test_smooth_wrr_gives_each_backend_exactly_its_weight_per_cycle(weights, seed) -> None:
    members = states(weights)
    wrr = WeightedRoundRobin(random.Random(seed))
    wrr.rebuild(members)
    total = sum(weights)
    for _ in range(3):  # every cycle of sum(weights) picks, not just the first
        counts = Counter(id(wrr.pick(members, [float(w) for w in weights])) for _ in range(total))
        assert [counts[id(m)] for m in members] == weights


def test_smooth_wrr_interleaves_like_nginx() -> None:
    members = states([5, 1, 1])
    wrr = WeightedRoundRobin()
    order = [members.index(wrr.pick(members, [5.0, 1.0, 1.0])) for _ in range(7)]
    assert order == [0, 0, 1, 0, 2, 0, 0]


@given(st.integers(1, 8), st.integers(0, 2**32))
def test_round_robin_visits_every_candidate_in_turn(n, seed) -> None:
    members = states([1] * n)
    rr = RoundRobin(random.Random(seed))
    picks = [rr.pick(members, [1.0] * n) for _ in range(3 * n)]
    assert all(Counter(id(p) for p in picks)[id(m)] == 3 for m in members)
    assert all(picks[i] is not picks[i + 1] for i in range(len(picks) - 1)) or n == 1


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5), st.integers(0, 2**32))
def test_random_follows_weights_within_tolerance(weights, seed) -> None:
    members = states(weights)
    strategy = Random(random.Random(seed))
    n = 4000
    counts = Counter(id(strategy.pick(members, [float(w) for w in weights])) for _ in range(n))
    total = sum(weights)
    for member, weight in zip(members, weights, strict=True):
        expected = n * weight / total
        # 5 standard deviations of a binomial: fails by chance about once in 3 million.
        sigma = (n * (weight / total) * (1 - weight / total)) ** 0.5
        assert abs(counts[id(member)] - expected) <= 5 * sigma + 1


class SpyRandom(random.Random):
    """Records the indexes ``randrange`` returned, to know which two were sampled."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.drawn: list[int] = []

    def randrange(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        value = super().randrange(*args, **kwargs)
        self.drawn.append(value)
        return value


@given(st.lists(st.integers(0, 20), min_size=2, max_size=10), st.integers(0, 2**32))
def test_p2c_never_picks_the_strictly_busier_of_the_two_sampled(loads, seed) -> None:
    members = states([1] * len(loads))
    for member, load in zip(members, loads, strict=True):
        member.outstanding = load
    rng = SpyRandom(seed)
    strategy = LeastOutstanding(rng)
    for _ in range(20):
        rng.drawn.clear()
        chosen = strategy.pick(members, [1.0] * len(members))
        a, b = rng.drawn
        b += b >= a
        assert chosen in (members[a], members[b])
        other = members[b] if chosen is members[a] else members[a]
        assert chosen.outstanding <= other.outstanding


@given(st.integers(0, 2**32))
def test_peak_ewma_avoids_a_slow_backend_and_tries_it_again_later(seed) -> None:
    members = states([1, 1, 1])
    strategy = PeakEWMA(random.Random(seed), decay=1.0, default_rtt=0.01)
    for m in members:
        strategy.observe(m, 0.0, 0.01)
    strategy.observe(members[0], 0.0, 1.0)  # one slow answer: the peak counts at once
    assert strategy.estimate(members[0], 0.0) == pytest.approx(1.0)
    picks = Counter(id(strategy.pick(members, [1.0] * 3, now=0.0)) for _ in range(200))
    assert picks[id(members[0])] == 0  # the cheaper of any pair is never the slow one
    # Decay toward zero without observations: after a while it is cheap again.
    assert strategy.estimate(members[0], 10.0) < strategy.estimate(members[1], 0.0)


def test_peak_ewma_blends_faster_observations() -> None:
    state = states([1])[0]
    strategy = PeakEWMA(decay=1.0)
    strategy.observe(state, 0.0, 1.0)
    strategy.observe(state, 1.0, 0.0)
    assert 0.0 < state.ewma < 0.5


def test_strategies_by_name() -> None:
    for name in strategy_names():
        assert make_strategy(name).name == name
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("fastest")


# -- consistent hashing ----------------------------------------------------------------

KEYS = [key_hash(f"client-{i}") for i in range(2000)]


def assignment(strategy: RingHash | Maglev, members: list[BackendState]) -> dict[int, str]:
    strategy.rebuild(members)
    weights = [float(m.weight) for m in members]
    return {k: strategy.pick(members, weights, key=k).backend.address for k in KEYS}


@pytest.mark.parametrize("kind", ["ring", "maglev"])
@given(n=st.integers(3, 10), removed=st.integers(0, 9))
def test_removing_one_of_n_moves_about_one_nth_of_the_keys(kind, n, removed) -> None:
    make = (lambda: RingHash()) if kind == "ring" else (lambda: Maglev(table_size=4099))
    members = states([1] * n)
    before = assignment(make(), members)
    gone = members[removed % n]
    after = assignment(make(), [m for m in members if m is not gone])
    moved = sum(1 for k in KEYS if before[k] != after[k])
    owned = sum(1 for k in KEYS if before[k] == gone.backend.address)
    # The removed backend's keys all move (they must), and in all about 1/N move.
    assert all(after[k] != gone.backend.address for k in KEYS)
    if kind == "ring":
        assert moved == owned  # exactly the leaving backend's keys
    assert moved <= len(KEYS) * (1 / n) * 1.5 + 40


@pytest.mark.parametrize("kind", ["ring", "maglev"])
@given(weights=st.lists(st.integers(1, 4), min_size=2, max_size=5))
def test_hashing_shares_follow_weights(kind, weights) -> None:
    strategy = RingHash() if kind == "ring" else Maglev(table_size=4099)
    members = states(weights)
    counts = Counter(assignment(strategy, members).values())
    total = sum(weights)
    for member, weight in zip(members, weights, strict=True):
        share = counts[member.backend.address] / len(KEYS)
        assert abs(share - weight / total) < 0.12


def test_ring_has_at_least_1024_points_and_maglev_the_default_table() -> None:
    members = states([1, 2, 3])
    ring = RingHash()
    ring.rebuild(members)
    assert ring.ring_size >= 1024
    maglev = Maglev()
    maglev.rebuild(members)
    assert maglev.table_size == 65537
    counts = Counter(m.backend.address for m in maglev._table)
    assert [counts[m.backend.address] for m in members] == pytest.approx(
        [65537 / 6, 2 * 65537 / 6, 3 * 65537 / 6], rel=0.01
    )


def test_a_key_whose_backend_is_unavailable_moves_and_comes_back() -> None:
    members = states([1, 1, 1])
    for strategy in (RingHash(), Maglev(table_size=4099)):
        strategy.rebuild(members)
        key = KEYS[0]
        home = strategy.pick(members, [1.0] * 3, key=key)
        others = [m for m in members if m is not home]
        assert strategy.pick(others, [1.0] * 2, key=key) in others
        assert strategy.pick(members, [1.0] * 3, key=key) is home


def test_maglev_table_size_must_be_prime() -> None:
    with pytest.raises(ValueError, match="prime"):
        Maglev(table_size=65536)
