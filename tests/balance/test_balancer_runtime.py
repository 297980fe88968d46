"""``Balancer``: the trio driver around ``LoadBalancer`` (health-check tasks, observer)."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

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


class Recorder:
    def __init__(self) -> None:
        self.ends: list[tuple[Backend, str, float, bool]] = []

    def picked(self, backend: Backend) -> None:
        pass

    def ended(self, backend: Backend, outcome: str, latency: float, ejected: bool) -> None:
        self.ends.append((backend, outcome, latency, ejected))

    def health_changed(self, backend: Backend, healthy: bool) -> None:
        pass


async def test_an_observer_sees_a_rest_responses_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import httpx

    from netkit.balance import BalancedTransport, StaticBackends

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"hello"

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(0.25)  # the time to the response head
        return httpx.Response(200, stream=Body())

    balancer = Balancer(StaticBackends([A]), RoundRobin())
    recorder = Recorder()
    balancer.observer = recorder
    transport = BalancedTransport(balancer, httpx.MockTransport(handler))
    response = await transport.handle_async_request(httpx.Request("GET", "http://svc/x"))
    assert recorder.ends == []  # outstanding until the body is closed
    await trio.sleep(1.0)
    assert await response.aread() == b"hello"  # read to the end, then closed
    assert recorder.ends == [(A, "success", 0.25, False)]
    assert balancer.lb.members[0].outstanding == 0
