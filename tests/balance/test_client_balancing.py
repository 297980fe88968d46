"""Client-side balancing without a network: gRPC's reconnect backoff on the MockClock,
the subchannel's connectivity states, the channel's aggregate state, target parsing
and how call statuses count for outlier detection."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import cast

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from netkit.balance import (
    Backend,
    Backoff,
    BackoffConfig,
    BalancedChannel,
    Balancer,
    Connectivity,
    RegistryBackends,
    StaticBackends,
    Subchannel,
    parse_target,
)
from netkit.balance._balancer import Outcome
from netkit.balance._connectivity import aggregate
from netkit.balance._grpc_client import outcome_of
from netkit.grpc import ChannelConfig, StatusCode
from netkit.http import H2ClientConnection


class FakeConnection:
    """Stands in for an H2ClientConnection: usable until ``drop``."""

    def __init__(self) -> None:
        self.is_usable = True
        self._slots = trio.lowlevel.ParkingLot()

    def drop(self) -> None:
        self.is_usable = False
        self._slots.unpark_all()


class ScriptedSubchannel(Subchannel):
    """Connection attempts fail while ``failing``; otherwise give a FakeConnection."""

    def __init__(self, nursery: trio.Nursery, rng: random.Random) -> None:
        self.states: list[Connectivity] = []
        super().__init__(
            nursery,
            Backend("10.0.0.1", 50051),
            on_change=self._note,
            backoff=Backoff(BackoffConfig(), rng),
        )
        self.failing = True
        self.connections: list[FakeConnection] = []
        self.changed = trio.Event()

    def _note(self) -> None:
        self.states.append(self.state)
        self.changed.set()
        self.changed = trio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()

    async def _open(self) -> H2ClientConnection:
        await trio.sleep(0.01)  # a connect takes a moment
        if self.failing:
            raise OSError("connection refused")
        conn = FakeConnection()
        self.connections.append(conn)
        return cast(H2ClientConnection, conn)


def expected_gaps(seed: int, count: int, config: BackoffConfig) -> list[float]:
    """gRPC's schedule, computed independently: delay_k = min(initial x mult^k, max),
    jittered by a factor uniform in [1 - jitter, 1 + jitter]."""
    rng = random.Random(seed)
    gaps = []
    for k in range(count):
        base = min(config.initial * config.multiplier**k, config.maximum)
        gaps.append(base * (1 + rng.uniform(-config.jitter, config.jitter)))
    return gaps


async def test_reconnect_backoff_schedule(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        sub = ScriptedSubchannel(nursery, random.Random(7))
        nursery.start_soon(sub.run)
        await trio.sleep(5)
        assert sub.attempts == [] and sub.state is Connectivity.IDLE  # idle until asked
        sub.request_connection()
        await sub.until(lambda: len(sub.attempts) >= 16)
        gaps = [b - a for a, b in zip(sub.attempts, sub.attempts[1:], strict=False)]
        config = BackoffConfig()
        assert gaps == pytest.approx(expected_gaps(7, len(gaps), config), abs=1e-6)
        # The defaults are grpcio's: 1 s, x1.6, jitter 0.2, capped at 120 s.
        assert 0.8 <= gaps[0] <= 1.2 and 1.28 <= gaps[1] <= 1.92
        assert all(96 <= g <= 144 for g in gaps[11:]), gaps
        assert max(gaps) <= 144

        # It connects at last: READY, and the backoff starts over after the next drop.
        sub.failing = False
        await sub.until(lambda: sub.state is Connectivity.READY)
        sub.states.clear()
        sub.failing = True
        ready_at = len(sub.attempts)
        sub.connections[-1].drop()
        await sub.until(lambda: len(sub.attempts) >= ready_at + 3)
        assert sub.states[:3] == [
            Connectivity.IDLE,  # the connection dropped...
            Connectivity.CONNECTING,  # ...and the subchannel reconnects at once
            Connectivity.TRANSIENT_FAILURE,
        ]
        restarted = sub.attempts[ready_at + 1] - sub.attempts[ready_at]
        assert 0.8 <= restarted <= 1.2
        await sub.shutdown()
        assert sub.state is Connectivity.SHUTDOWN
        nursery.cancel_scope.cancel()


@given(st.lists(st.sampled_from(list(Connectivity))))
def test_aggregate_state_follows_round_robin(states: list[Connectivity]) -> None:
    live = [s for s in states if s is not Connectivity.SHUTDOWN]
    result = aggregate(states)
    if Connectivity.READY in live:
        assert result is Connectivity.READY
    elif Connectivity.CONNECTING in live:
        assert result is Connectivity.CONNECTING
    elif Connectivity.IDLE in live or not live:
        assert result is Connectivity.IDLE
    else:
        assert result is Connectivity.TRANSIENT_FAILURE


@given(st.integers(0, 2**32), st.integers(1, 40))
def test_backoff_grows_within_jitter_and_cap(seed: int, n: int) -> None:
    config = BackoffConfig()
    backoff = Backoff(config, random.Random(seed))
    delays = [backoff.next_delay() for _ in range(n)]
    for k, delay in enumerate(delays):
        base = min(config.initial * config.multiplier**k, config.maximum)
        assert base * (1 - config.jitter) <= delay <= base * (1 + config.jitter)
    backoff.reset()
    assert backoff.next_delay() <= config.initial * (1 + config.jitter)


def test_targets() -> None:
    target = parse_target("registry://10.0.0.5:7000/orders?strategy=peak_ewma&tags=a,b")
    assert isinstance(target.source, RegistryBackends)
    assert (target.source.host, target.source.port, target.source.service) == (
        "10.0.0.5",
        7000,
        "orders",
    )
    assert target.source.tags == ("a", "b") and target.strategy == "peak_ewma"
    assert target.name == "orders"
    static = parse_target("static://h1:1,h2:2;weight=3")
    assert isinstance(static.source, StaticBackends) and static.strategy == "round_robin"
    assert static.source.backends == [Backend("h1", 1), Backend("h2", 2, weight=3)]
    listed = parse_target(["h1:1", Backend("h2", 2)])
    assert isinstance(listed.source, StaticBackends) and len(listed.source.backends) == 2
    for bad in (
        "registry://10.0.0.5/orders",
        "registry://10.0.0.5:7000",
        "static://",
        "static://h1:1?tags=x",
        "static://h1:1?color=red",
        "dns://h1:1",
    ):
        with pytest.raises(ValueError):
            parse_target(bad)
    with pytest.raises(ValueError):
        parse_target([])


def test_call_statuses_as_outcomes() -> None:
    assert outcome_of(None) is Outcome.CANCELLED
    assert outcome_of(StatusCode.CANCELLED) is Outcome.CANCELLED
    assert outcome_of(StatusCode.OK) is Outcome.SUCCESS
    assert outcome_of(StatusCode.NOT_FOUND) is Outcome.SUCCESS  # the backend worked
    for code in (StatusCode.UNAVAILABLE, StatusCode.INTERNAL, StatusCode.DEADLINE_EXCEEDED):
        assert outcome_of(code).failed


async def test_a_balanced_channel_takes_its_backoff_from_the_channel_config() -> None:
    config = ChannelConfig(
        backoff_initial=0.5, backoff_multiplier=2.0, backoff_max=30.0, backoff_jitter=0.1
    )
    async with trio.open_nursery() as nursery:
        balancer = Balancer(StaticBackends([]))
        channel = BalancedChannel(nursery, balancer, config=config)
        assert channel.backoff_config == BackoffConfig(
            initial=0.5, multiplier=2.0, jitter=0.1, maximum=30.0
        )
        assert BalancedChannel(nursery, balancer).backoff_config == BackoffConfig()
        given = BackoffConfig(initial=3.0)
        assert (
            BalancedChannel(nursery, balancer, config=config, backoff=given).backoff_config is given
        )


class HangingSubchannel(Subchannel):
    """Never gets a connection: stays CONNECTING."""

    async def _open(self) -> H2ClientConnection:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("call_timeout", "config", "code", "after"),
    [
        (1.0, ChannelConfig(), StatusCode.DEADLINE_EXCEEDED, 1.0),
        (None, ChannelConfig(connect_timeout=2), StatusCode.UNAVAILABLE, 2.0),
    ],
)
async def test_a_call_waiting_for_a_ready_subchannel_gives_up(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    call_timeout: float | None,
    config: ChannelConfig,
    code: StatusCode,
    after: float,
) -> None:
    from google.protobuf.empty_pb2 import Empty

    from netkit.balance import _grpc_client
    from netkit.grpc import GRPCError

    monkeypatch.setattr(_grpc_client, "Subchannel", HangingSubchannel)
    async with trio.open_nursery() as nursery:
        balancer = Balancer(StaticBackends([Backend("10.0.0.1", 50051)]))
        channel = BalancedChannel(nursery, balancer, config=config)
        await nursery.start(balancer.run)
        start = trio.current_time()
        with pytest.raises(GRPCError) as raised:
            async with channel.call("/x.Y/Z", Empty, Empty, timeout=call_timeout):
                pass
        assert raised.value.code is code
        assert trio.current_time() - start == pytest.approx(after)
        assert channel.state is Connectivity.CONNECTING
        nursery.cancel_scope.cancel()
