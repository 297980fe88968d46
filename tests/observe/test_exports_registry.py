"""Observability at the top level, and the registry's metrics on a scrape."""

from __future__ import annotations

import trio

import netkit
from netkit.discovery import Address, InstanceSpec, MemoryRegistry, RegistryConfig
from netkit.observe import Observability

from .apps import parse, value


def test_observability_reaches_the_top_level() -> None:
    # The export list itself: tests/test_exports.py.
    assert netkit.Observability is Observability


async def test_registry_instances_heartbeats_expirations_watchers(autojump_clock: object) -> None:
    registry = MemoryRegistry(RegistryConfig())
    obs = Observability()
    obs.watch_registry(registry)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        for i in range(3):
            await registry.register(
                InstanceSpec(service="orders", id=f"o{i}", address=Address("10.0.0.1", 80 + i)),
                ttl=10,
            )
        await registry.register(
            InstanceSpec(service="users", id="u0", address=Address("10.0.0.2", 80)), ttl=10
        )
        for _ in range(5):
            await registry.heartbeat("orders", "o0")
        async with registry.watch("orders") as _watcher:
            samples = parse(obs.exposition()[0].decode())
            assert value(samples, "netkit_registry_watchers") == 1
        await trio.sleep(11)  # o1, o2 and u0 miss their TTL; o0 too (heartbeats stopped)
        samples = parse(obs.exposition()[0].decode())
        nursery.cancel_scope.cancel()
    assert value(samples, "netkit_registry_heartbeats_total") == 5
    assert value(samples, "netkit_registry_expirations_total") == 4
    assert value(samples, "netkit_registry_instances", service="orders", health="critical") == 3
    assert value(samples, "netkit_registry_instances", service="users", health="critical") == 1
    assert samples["netkit_registry_watchers", ()] == 0  # present, and back to zero
