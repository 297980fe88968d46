"""``Balancer``: the trio driver around ``LoadBalancer`` (health-check tasks, observer)."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Sequence

import trio
import trio.lowlevel
import trio.testing

from netkit.balance import Backend, Balancer, HealthCheckConfig, RoundRobin
from netkit.balance._source import BackendSource

A = Backend("10.0.0.1", 8000)
B = Backend("10.0.0.2", 8000)


class Flapping(BackendSource):
    """B joins and leaves again and again, sometimes before its check task has run."""

    async def snapshots(self) -> AsyncGenerator[Sequence[Backend], None]:
        for i in range(20):
            yield [A, B]
            if i % 2:
                await trio.lowlevel.checkpoint()  # the check task may or may not run first
            yield [A]
        await trio.sleep_forever()


async def test_a_backend_removed_before_its_check_runs_is_not_checked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    members: list[set[Backend]] = []
    stray: list[Backend] = []

    def probe_factory(backend: Backend):  # type: ignore[no-untyped-def]
        async def probe() -> bool:
            await trio.lowlevel.checkpoint()  # a real probe's I/O: a cancelled check stops
            if backend not in {s.backend for s in balancer.lb.members}:
                stray.append(backend)
            return True

        return probe

    balancer = Balancer(
        Flapping(),
        RoundRobin(),
        health=HealthCheckConfig(interval=1.0),
        probe_factory=probe_factory,
        rng=random.Random(0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(balancer.run)
        while balancer.snapshots_applied < 40:
            await balancer.wait_changed()
        members.append({s.backend for s in balancer.lb.members})
        await trio.sleep(10)  # ten intervals: a leftover check would probe B again
        assert set(balancer._checks) == {A}
        nursery.cancel_scope.cancel()
    assert members == [{A}]
    assert stray == []
