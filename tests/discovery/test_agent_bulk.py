"""An agent with many instances registers them in RegisterMany batches (or, with a
registry without RegisterMany, one call each, concurrently and bounded), deregisters them
concurrently, and after a failure retries only the ones still missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import netkit
from netkit.discovery import (
    Instance,
    InstanceSpec,
    MemoryRegistry,
    RegistrationAgent,
    RegistryBackend,
    RegistryService,
    RegistryUnavailable,
)
from netkit.grpc import GRPCError, ServerCall, StatusCode, open_channel
from netkit.protos.registry.v1 import registry_pb2 as pb
from netkit.protos.registry.v1.registry_netkit import RegistryStub
from tests.discovery.test_registry_grpc import spec


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


class CountingService(RegistryService):
    """Counts RegisterMany calls; ``batches=False`` plays a registry that predates it."""

    def __init__(self, registry: RegistryBackend, *, batches: bool = True) -> None:
        super().__init__(registry)
        self.batches = batches
        self.register_many_calls = 0

    async def RegisterMany(
        self, request: pb.RegisterManyRequest, call: ServerCall
    ) -> pb.RegisterManyResponse:
        if not self.batches:
            raise GRPCError(StatusCode.UNIMPLEMENTED, "no RegisterMany here")
        self.register_many_calls += 1
        return await super().RegisterMany(request, call)


@asynccontextmanager
async def registry_server(service: RegistryService) -> AsyncIterator[netkit.Server]:
    app = netkit.App()
    app.grpc.add_service(service)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.registry.run)  # type: ignore[attr-defined]
        server: netkit.Server = await nursery.start(netkit.serve, app, "127.0.0.1", 0)
        yield server
        nursery.cancel_scope.cancel()


SPECS = [spec("orders", f"o{n:03}") for n in range(200)]


async def test_instances_are_registered_in_batches(autojump_clock: trio.abc.Clock) -> None:
    registry = SlowRegistry(delay=0)
    service = CountingService(registry)
    async with registry_server(service) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, *SPECS, ttl=30, batch_size=64)
        await nursery.start(agent.run)
        assert service.register_many_calls == 4  # 64 + 64 + 64 + 8
        assert registry.calls == 200 and agent.registrations == 200
        assert [i.id for i in registry.core.instances()] == [s.id for s in SPECS]
        await trio.sleep(30)  # and they stay alive on the one KeepAlive stream
        assert len((await registry.discover("orders"))[1]) == 200
        nursery.cancel_scope.cancel()
    assert registry.core.instances() == []


async def test_register_many_checks_every_entry_before_applying_any() -> None:
    registry = MemoryRegistry()
    async with (
        registry_server(RegistryService(registry)) as server,
        open_channel("127.0.0.1", server.port) as channel,
    ):
        stub = RegistryStub(channel)
        good = pb.RegisterRequest(
            instance=pb.Instance(service="s", id="a", address=pb.Address(host="h", port=1)),
            ttl=10,
        )
        no_host = pb.RegisterRequest(instance=pb.Instance(service="s", id="b"))
        short = pb.RegisterRequest(instance=good.instance, ttl=0.01)
        for bad, where in ((no_host, "registrations[1]"), (short, "registrations[1]: ttl")):
            with pytest.raises(GRPCError) as raised:
                await stub.RegisterMany(pb.RegisterManyRequest(registrations=[good, bad]))
            assert raised.value.code is StatusCode.INVALID_ARGUMENT
            assert where in str(raised.value)
        with pytest.raises(GRPCError) as raised:
            await stub.RegisterMany(pb.RegisterManyRequest(registrations=[good] * 1001))
        assert raised.value.code is StatusCode.INVALID_ARGUMENT
        assert registry.revision == 0  # nothing was applied
        reply = await stub.RegisterMany(pb.RegisterManyRequest(registrations=[good]))
        assert reply.revision == 1 and [i.id for i in reply.instances] == ["a"]


async def test_without_register_many_calls_run_concurrently_up_to_the_limit() -> None:
    registry = SlowRegistry(delay=0.02)
    service = CountingService(registry, batches=False)
    async with registry_server(service) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, *SPECS, ttl=30, concurrency=20)
        with trio.fail_after(30):
            await nursery.start(agent.run)
        # Concurrency is shown by the calls in flight at once, not by wall time (which a
        # loaded machine stretches): several at once, never more than the limit of 20.
        assert 2 <= registry.most_in_flight <= 20
        assert len(registry.core.instances()) == 200 and agent.registrations == 200
        registry.most_in_flight = 0
        nursery.cancel_scope.cancel()
    # Deregistration on exit is concurrent too (200 calls of 20 ms would not fit in 2 s).
    assert registry.core.instances() == [] and registry.deregistered == 200
    assert 2 <= registry.most_in_flight <= 20


async def test_a_failed_batch_is_retried_for_the_missing_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    registry = SlowRegistry(delay=0.01, fail_first=3)
    service = CountingService(registry, batches=False)
    async with registry_server(service) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, *SPECS[:50], ttl=30, concurrency=8)
        await nursery.start(agent.run)
        assert len(registry.core.instances()) == 50
        assert agent.registrations == 50
        # Three calls failed; the first failure cancelled calls in flight (at most 8,
        # counting the failed ones), and only those missing were sent again.
        assert 50 + 3 <= registry.calls <= 50 + 3 * 8
        nursery.cancel_scope.cancel()
