"""``RegistryBackends`` against a real in-process registry (MemoryRegistry served over
gRPC by RegistryService), with registration agents coming and going."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from netkit.balance import Backend, Balancer, RegistryBackends, RoundRobin
from netkit.discovery import (
    Address,
    Health,
    InstanceSpec,
    MemoryRegistry,
    Metadata,
    RegistrationAgent,
)
from tests.discovery.test_registry_grpc import registry_server


def spec(
    instance_id: str, port: int, *, weight: int = 1, tags: tuple[str, ...] = ()
) -> InstanceSpec:
    return InstanceSpec(
        "orders",
        instance_id,
        Address("127.0.0.1", port, ("grpc", "rest")),
        Metadata(weight=weight, tags=tags),
    )


@asynccontextmanager
async def agent(port: int, *specs: InstanceSpec) -> AsyncIterator[RegistrationAgent]:
    """An agent keeping ``specs`` registered for the block; leaving deregisters them."""
    registration = RegistrationAgent("127.0.0.1", port, *specs, ttl=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(registration.run)
        yield registration
        nursery.cancel_scope.cancel()


def members(balancer: Balancer) -> set[tuple[int, int]]:
    return {(s.backend.port, s.backend.weight) for s in balancer.lb.members}


async def after_event(
    balancer: Balancer, source: RegistryBackends, expected: set[tuple[int, int]], revision: int
) -> None:
    """The membership becomes ``expected`` from the snapshot made at the watch event of
    ``revision`` (the registry change that caused it), not a later one."""
    with trio.fail_after(5):
        while members(balancer) != expected:
            await balancer.wait_changed()
    assert source.revision == revision


async def test_backends_follow_agents_and_health_within_one_watch_event() -> None:
    registry = MemoryRegistry()
    async with registry_server(registry) as server, trio.open_nursery() as nursery:
        async with agent(server.port, spec("o1", 9001, weight=3)):
            source = RegistryBackends("127.0.0.1", server.port, "orders")
            balancer = Balancer(source, RoundRobin())
            with trio.fail_after(5):
                await nursery.start(balancer.run)
            assert members(balancer) == {(9001, 3)}

            # A second instance joins with its agent, and leaves (a clean exit deregisters).
            both = {(9001, 3), (9002, 1)}
            async with agent(server.port, spec("o2", 9002)):
                await after_event(balancer, source, both, registry.revision)
            await after_event(balancer, source, {(9001, 3)}, registry.revision)

            # One registered without an agent (no heartbeat of its own races ours) turns
            # critical: out of the balancer with that event; passing again: back in.
            revision, _ = await registry.register(spec("o4", 9004), ttl=30)
            await after_event(balancer, source, {(9001, 3), (9004, 1)}, revision)
            revision = await registry.heartbeat("orders", "o4", Health.CRITICAL)
            await after_event(balancer, source, {(9001, 3)}, revision)
            revision = await registry.heartbeat("orders", "o4", Health.PASSING)
            await after_event(balancer, source, {(9001, 3), (9004, 1)}, revision)
            revision, _ = await registry.deregister("orders", "o4")
            await after_event(balancer, source, {(9001, 3)}, revision)

            # A warning instance still serves; weight 0 means drained.
            before = source.events
            await registry.heartbeat("orders", "o1", Health.WARNING)
            await seen_events(source, before + 1)
            assert members(balancer) == {(9001, 3)}
            before = source.events
            async with agent(server.port, spec("o3", 9003, weight=0)):
                await seen_events(source, before + 1)
                assert members(balancer) == {(9001, 3)}
        nursery.cancel_scope.cancel()


async def seen_events(source: RegistryBackends, count: int) -> None:
    for _ in range(500):  # polled: an event that changes no backend yields no snapshot
        if source.events >= count:
            return
        await trio.sleep(0.01)
    raise AssertionError(f"{source.events} watch events, expected {count}")


async def test_tags_filter_and_an_empty_service() -> None:
    registry = MemoryRegistry()
    async with registry_server(registry) as server, trio.open_nursery() as nursery:
        source = RegistryBackends("127.0.0.1", server.port, "orders", tags=["canary"])
        balancer = Balancer(source, RoundRobin())
        with trio.fail_after(5):
            await nursery.start(balancer.run)  # an empty service is a (first) snapshot too
        assert balancer.lb.members == []
        async with agent(server.port, spec("o1", 9001), spec("o2", 9002, tags=("canary",))):
            with trio.fail_after(5):
                while not balancer.lb.members:
                    await balancer.wait_changed()
            assert [s.backend for s in balancer.lb.members] == [Backend("127.0.0.1", 9002)]
        nursery.cancel_scope.cancel()
