"""The sans-I/O LoadBalancer: a RuleBasedStateMachine over membership, health, ejection
and requests in flight, plus panic, slow start, outlier detection and the retry budget."""

from __future__ import annotations

import random

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from netkit.balance import (
    Backend,
    BalancerConfig,
    LeastOutstanding,
    LoadBalancer,
    Outcome,
    OutlierConfig,
    PeakEWMA,
    RoundRobin,
    make_strategy,
)

POOL = [Backend("10.0.0.1", 8000 + i) for i in range(6)]


class BalancerMachine(RuleBasedStateMachine):
    """Backends join, leave, fail checks, recover, get ejected; requests start and end."""

    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.lb: LoadBalancer | None = None
        self.members: set[Backend] = set()
        self.in_flight: list = []

    @rule(
        name=st.sampled_from(["round_robin", "least_outstanding", "peak_ewma", "maglev"]),
        seed=st.integers(0, 1000),
    )
    @precondition(lambda self: self.lb is None)
    def create(self, name: str, seed: int) -> None:
        kwargs: dict = {"rng": random.Random(seed)}
        if name == "maglev":
            kwargs["table_size"] = 251
        config = BalancerConfig(
            outlier=OutlierConfig(consecutive_failures=2, max_ejection_percent=50)
        )
        self.lb = LoadBalancer(make_strategy(name, **kwargs), config)

    @precondition(lambda self: self.lb is not None)
    @rule(chosen=st.sets(st.sampled_from(POOL)))
    def snapshot(self, chosen: set[Backend]) -> None:
        assert self.lb is not None
        change = self.lb.update(sorted(chosen, key=lambda b: b.port), self.now)
        assert {s.backend for s in change.added} == chosen - self.members
        assert {s.backend for s in change.removed} == self.members - chosen
        self.members = chosen

    @precondition(lambda self: self.lb is not None and self.members)
    @rule(backend=st.sampled_from(POOL), healthy=st.booleans())
    def health(self, backend: Backend, healthy: bool) -> None:
        assert self.lb is not None
        self.lb.set_healthy(backend, healthy)

    @precondition(lambda self: self.lb is not None)
    @rule(seconds=st.floats(0.0, 100.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: self.lb is not None)
    @rule(target=requests, key=st.integers(0, 2**64 - 1))
    def start(self, key: int):
        assert self.lb is not None
        state = self.lb.pick(self.now, key=key)
        if state is None:
            assert not self.lb.candidates(self.now)
            return None
        assert not state.removed, "a removed backend got a new request"
        if not self.lb.in_panic(self.now):
            assert state.available(self.now), "an unhealthy or ejected backend got a request"
        self.lb.start(state, self.now)
        entry = [state, self.now]
        self.in_flight.append(entry)
        return entry

    @rule(entry=requests, outcome=st.sampled_from(list(Outcome)), latency=st.floats(0, 5))
    def end(self, entry, outcome: Outcome, latency: float) -> None:
        if entry is None or entry not in self.in_flight:
            return
        assert self.lb is not None
        state = entry[0]
        before = len(self.lb.ejected(self.now))
        # In-flight requests complete normally even if their backend left meanwhile.
        self.lb.end(state, self.now, outcome, latency=latency)
        self.in_flight.remove(entry)
        after = len(self.lb.ejected(self.now))
        if after > before:
            # An ejection never takes the count past the cap. (Afterwards it can be: the
            # backends that were not ejected may leave while the ejected ones stay.)
            percent = self.lb.config.outlier.max_ejection_percent
            assert after <= max(1, len(self.lb.members) * percent // 100)

    @invariant()
    def outstanding_counts_match(self) -> None:
        if self.lb is None:
            return
        for state in self.lb.members:
            assert state.outstanding == sum(1 for s, _ in self.in_flight if s is state)
        assert self.lb.active == len(self.in_flight)


TestBalancerMachine = BalancerMachine.TestCase


def lb_with(n: int, **config) -> tuple[LoadBalancer, list]:
    lb = LoadBalancer(RoundRobin(random.Random(1)), BalancerConfig(**config))
    lb.update(POOL[:n], 0.0)
    return lb, lb.members


def test_panic_balances_over_all_when_fewer_than_half_are_healthy() -> None:
    lb, members = lb_with(4)
    lb.set_healthy(members[0].backend, False)
    lb.set_healthy(members[1].backend, False)
    assert not lb.in_panic(0.0)  # 2 of 4 is not fewer than half
    assert {id(lb.pick(0.0)) for _ in range(20)} == {id(members[2]), id(members[3])}
    lb.set_healthy(members[2].backend, False)
    assert lb.in_panic(0.0)
    assert {id(lb.pick(0.0)) for _ in range(20)} == {id(m) for m in members}


def test_without_panic_no_backend_means_none() -> None:
    lb, members = lb_with(2, panic_threshold=0.0)
    for m in members:
        lb.set_healthy(m.backend, False)
    assert lb.pick(0.0) is None


def test_outlier_ejection_grows_with_repeats_and_is_capped() -> None:
    outlier = OutlierConfig(
        consecutive_failures=3,
        base_ejection_time=10,
        max_ejection_time=25,
        max_ejection_percent=100,
    )
    lb, members = lb_with(3, outlier=outlier)
    bad = members[0]
    now = 0.0
    durations = []
    for _ in range(4):
        for _ in range(3):
            lb.start(bad, now)
            lb.end(bad, now, Outcome.SERVER_ERROR)
        assert bad.ejected(now)
        durations.append(bad.ejected_until - now)
        now = bad.ejected_until
    assert durations == [10, 20, 25, 25]


def test_a_success_resets_the_consecutive_count() -> None:
    lb, members = lb_with(
        3, outlier=OutlierConfig(consecutive_failures=3, max_ejection_percent=100)
    )
    bad = members[0]
    for outcome in [
        Outcome.LOCAL_FAILURE,
        Outcome.SERVER_ERROR,
        Outcome.SUCCESS,
        Outcome.LOCAL_FAILURE,
        Outcome.SERVER_ERROR,
        Outcome.CANCELLED,
    ]:
        lb.start(bad, 0.0)
        lb.end(bad, 0.0, outcome)
    assert not bad.ejected(0.0)


def test_never_eject_more_than_the_maximum_percentage() -> None:
    lb, members = lb_with(6, outlier=OutlierConfig(consecutive_failures=1, max_ejection_percent=34))
    for m in members:
        lb.start(m, 0.0)
        lb.end(m, 0.0, Outcome.LOCAL_FAILURE)
    assert len(lb.ejected(0.0)) == 2  # floor(6 x 34%)


def test_slow_start_ramps_a_new_backends_weight() -> None:
    lb = LoadBalancer(LeastOutstanding(), BalancerConfig(slow_start_window=10.0))
    lb.update(POOL[:1], 0.0)
    lb.update(POOL[:2], 100.0)
    old, new = lb.members
    assert lb.effective_weight(old, 100.0) == 1.0  # the first snapshot starts at full weight
    assert lb.effective_weight(new, 100.0) == pytest.approx(0.1)
    assert lb.effective_weight(new, 105.0) == pytest.approx(0.5)
    assert lb.effective_weight(new, 110.0) == 1.0


def test_retry_budget_is_twenty_percent_of_active_with_a_floor_of_three() -> None:
    lb, members = lb_with(1)
    for _ in range(20):
        lb.start(members[0], 0.0)
    for _ in range(5):
        assert lb.may_retry()
        lb.start(members[0], 0.0, retry=True)
    assert not lb.may_retry()  # 5 retries of 25 active: not under 20%
    lb2, m2 = lb_with(1)
    for _ in range(3):
        assert lb2.may_retry()
        lb2.start(m2[0], 0.0, retry=True)
    assert not lb2.may_retry()


def test_exclude_for_retries_and_nothing_else_left() -> None:
    lb, members = lb_with(2)
    assert lb.pick(0.0, exclude=[members[0]]) is members[1]
    assert lb.pick(0.0, exclude=members) is None


def test_peak_ewma_learns_from_end() -> None:
    lb = LoadBalancer(PeakEWMA(random.Random(0)))
    lb.update(POOL[:2], 0.0)
    slow = lb.members[0]
    lb.start(slow, 0.0)
    lb.end(slow, 1.0, Outcome.SUCCESS, latency=1.0)
    assert all(lb.pick(1.0) is lb.members[1] for _ in range(20))
