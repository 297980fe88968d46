"""Self-preservation as a story, on trio's MockClock: twelve instances heartbeat, ten go
silent at once (as if the registry were cut off from them), expiry is held and every
face says so; heartbeats come back, expiry resumes, and the one instance that really
died turns critical and is removed on the usual schedule."""

from __future__ import annotations

from typing import Any

import trio

from netkit.discovery import (
    Change,
    Health,
    MemoryRegistry,
    RegistryConfig,
    RegistryService,
    WatchEvent,
)
from netkit.protos.registry.v1 import registry_pb2 as pb
from tests.discovery.test_registry_grpc import spec
from tests.discovery.test_registry_rest import rest_registry

TTL = 10.0
CONFIG = RegistryConfig(
    deregister_critical_after=30.0,
    self_preservation_threshold=0.85,
    self_preservation_min_instances=10,
    self_preservation_recheck=1.0,
)
IDS = [f"o{n:02}" for n in range(12)]


async def heartbeats(registry: MemoryRegistry, alive: set[str]) -> None:
    """Every TTL/3, a heartbeat for each instance currently in ``alive``."""
    while True:
        for instance_id in sorted(alive):
            await registry.heartbeat("orders", instance_id)
        await trio.sleep(TTL / 3)


async def discover(registry: MemoryRegistry, **kw: Any) -> list[tuple[str, Health]]:
    return [(i.id, i.health) for i in (await registry.discover("orders", **kw))[1]]


async def test_mass_silence_holds_expiry_until_heartbeats_return(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with (
        rest_registry(config=CONFIG) as (registry, client),
        trio.open_nursery() as nursery,
    ):
        for instance_id in IDS:
            await registry.register(spec("orders", instance_id), ttl=TTL)
        alive = set(IDS)
        nursery.start_soon(heartbeats, registry, alive)
        await trio.sleep(20)
        assert not registry.preserving

        seen: list[WatchEvent] = []

        async def watch() -> None:
            async with registry.watch("orders", since=registry.revision) as events:
                async for event in events:
                    seen.append(event)

        nursery.start_soon(watch)
        alive.difference_update(IDS[2:])  # ten of twelve go silent at once
        await trio.sleep(TTL + 1)
        assert registry.preserving

        # Held well past the TTL and even past deregister_critical_after: nobody expires.
        await trio.sleep(CONFIG.deregister_critical_after + 5)
        assert registry.preserving
        assert [i for i, _ in await discover(registry)] == IDS
        assert seen == []
        reply = await RegistryService(registry).Discover(
            pb.DiscoverRequest(service="orders"),
            None,  # type: ignore[arg-type]
        )
        assert reply.self_preservation and len(reply.instances) == 12
        status, _, body = await client.request("GET", "/v1/services/orders")
        assert status == 200 and body["self_preservation"] is True
        assert len(body["instances"]) == 12

        # Nine come back: 11 of 12 live is above the threshold, so expiry resumes and
        # the one still silent turns critical at the next re-examination after their
        # heartbeats (within one heartbeat round and one re-examination period).
        alive.update(IDS[2:11])
        await trio.sleep(TTL / 3 + CONFIG.self_preservation_recheck + 0.1)
        assert not registry.preserving
        assert await discover(registry, healthy_only=False) == [
            *((i, Health.PASSING) for i in IDS[:11]),
            (IDS[11], Health.CRITICAL),
        ]
        assert [i for i, _ in await discover(registry)] == IDS[:11]
        _, _, body = await client.request("GET", "/v1/services/orders")
        assert body["self_preservation"] is False and len(body["instances"]) == 11
        changes = [e for e in seen if isinstance(e, Change)]
        assert [(c.instance.id, c.instance.health) for c in changes] == [(IDS[11], Health.CRITICAL)]

        # It gets its full grace from the release, then it is removed.
        await trio.sleep(CONFIG.deregister_critical_after)
        assert [i for i, _ in await discover(registry, healthy_only=False)] == IDS[:11]

        # Expiry is back to normal: one more silent instance (10 of 11 live) expires at
        # its TTL without any hold.
        alive.discard(IDS[10])
        await trio.sleep(TTL + 1)
        assert not registry.preserving
        assert (IDS[10], Health.CRITICAL) in await discover(registry, healthy_only=False)
        nursery.cancel_scope.cancel()
