"""An agent with many instances registers (and deregisters) them concurrently, bounded,
and after a failure retries only the ones still missing."""

from __future__ import annotations

import trio

from netkit.discovery import (
    Instance,
    InstanceSpec,
    MemoryRegistry,
    RegistrationAgent,
    RegistryUnavailable,
)
from tests.discovery.test_registry_grpc import registry_server, spec


class SlowRegistry(MemoryRegistry):
    """Each registration takes ``delay``; counts the calls in flight (and can fail some)."""

    def __init__(self, delay: float, fail_first: int = 0) -> None:
        super().__init__()
        self.delay = delay
        self.fail_first = fail_first
        self.in_flight = self.most_in_flight = self.calls = 0
        self.deregistered = 0

    async def register(self, spec: InstanceSpec, ttl: float | None = None) -> tuple[int, Instance]:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(self.delay)
            if self.fail_first:
                self.fail_first -= 1
                raise RegistryUnavailable("not yet")
            return await super().register(spec, ttl)
        finally:
            self.in_flight -= 1

    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(self.delay)
            self.deregistered += 1
            return await super().deregister(service, instance_id)
        finally:
            self.in_flight -= 1


SPECS = [spec("orders", f"o{n:03}") for n in range(200)]


async def test_registrations_run_concurrently_up_to_the_limit() -> None:
    registry = SlowRegistry(delay=0.02)
    async with registry_server(registry) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, *SPECS, ttl=30, concurrency=20)
        start = trio.current_time()
        with trio.fail_after(10):
            await nursery.start(agent.run)
        # 200 calls of 20 ms one at a time would take 4 s; 20 at a time about 0.2 s.
        assert trio.current_time() - start < 2.0
        assert registry.most_in_flight == 20
        assert len(registry.core.instances()) == 200 and agent.registrations == 200
        registry.most_in_flight = 0
        nursery.cancel_scope.cancel()
    # Deregistration on exit is concurrent too (200 × 20 ms would not fit in 2 s).
    assert registry.core.instances() == [] and registry.deregistered == 200
    assert registry.most_in_flight == 20


async def test_a_failed_batch_is_retried_for_the_missing_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    registry = SlowRegistry(delay=0.01, fail_first=3)
    async with registry_server(registry) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, *SPECS[:50], ttl=30, concurrency=8)
        await nursery.start(agent.run)
        assert len(registry.core.instances()) == 50
        assert agent.registrations == 50
        # Three calls failed; the first failure cancelled calls in flight (at most 8,
        # counting the failed ones), and only those missing were sent again.
        assert 50 + 3 <= registry.calls <= 50 + 3 * 8
        nursery.cancel_scope.cancel()
