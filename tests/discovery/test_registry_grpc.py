"""The registry over gRPC with netkit's channel: the service, the agent, the discovery
client, and faults (registry restart with and without a snapshot, watcher resume)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import netkit
from netkit.discovery import (
    Address,
    DiscoveryClient,
    Health,
    InstanceSpec,
    MemoryRegistry,
    Metadata,
    RegistrationAgent,
    RegistryBackend,
    RegistryConfig,
    RegistryService,
)
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.registry.v1 import registry_pb2 as pb
from netkit.protos.registry.v1.registry_netkit import RegistryStub


def spec(service: str = "orders", instance_id: str = "o1", port: int = 8001) -> InstanceSpec:
    return InstanceSpec(
        service,
        instance_id,
        Address("127.0.0.1", port, ("grpc",)),
        Metadata(version="1.2", zone="eu-1", weight=5, tags=("primary",)),
    )


@asynccontextmanager
async def registry_server(registry: RegistryBackend, port: int = 0) -> AsyncIterator[netkit.Server]:
    app = netkit.App()
    app.grpc.add_service(RegistryService(registry))
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        server: netkit.Server = await nursery.start(netkit.serve, app, "127.0.0.1", port)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


async def test_operations_over_grpc() -> None:
    with trio.fail_after(10):
        async with (
            registry_server(MemoryRegistry()) as server,
            open_channel("127.0.0.1", server.port) as channel,
        ):
            stub = RegistryStub(channel)
            pb_spec = pb.Instance(
                service="orders",
                id="o1",
                address=pb.Address(host="10.0.0.1", port=80, protocols=["rest"]),
                metadata=pb.Metadata(tags=["a", "b"], weight=3),
            )
            reply = await stub.Register(pb.RegisterRequest(instance=pb_spec, ttl=5))
            assert reply.revision == 1
            assert reply.instance.health == pb.PASSING and reply.instance.ttl == 5
            assert reply.instance.registered_at > 1.6e9  # a Unix time

            found = await stub.Discover(pb.DiscoverRequest(service="orders", tags=["a"]))
            assert [i.id for i in found.instances] == ["o1"]
            none = await stub.Discover(pb.DiscoverRequest(service="orders", tags=["zzz"]))
            assert list(none.instances) == []

            await stub.Heartbeat(pb.HeartbeatRequest(service="orders", id="o1", health=pb.CRITICAL))
            healthy = await stub.Discover(pb.DiscoverRequest(service="orders"))
            everyone = await stub.Discover(
                pb.DiscoverRequest(service="orders", include_unhealthy=True)
            )
            assert list(healthy.instances) == []
            assert [i.health for i in everyone.instances] == [pb.CRITICAL]

            with pytest.raises(GRPCError) as missing:
                await stub.Heartbeat(pb.HeartbeatRequest(service="orders", id="nope"))
            assert missing.value.code == StatusCode.NOT_FOUND
            with pytest.raises(GRPCError) as bad:
                await stub.Register(pb.RegisterRequest(instance=pb.Instance(service="x")))
            assert bad.value.code == StatusCode.INVALID_ARGUMENT
            with pytest.raises(GRPCError) as bad_ttl:
                await stub.Register(pb.RegisterRequest(instance=pb_spec, ttl=0.001))
            assert bad_ttl.value.code == StatusCode.INVALID_ARGUMENT

            async with stub.KeepAlive() as call:
                await call.send_message(pb.HeartbeatRequest(service="orders", id="o1"))
                await call.send_message(pb.HeartbeatRequest(service="orders", id="ghost"))
                first, second = await call.recv_message(), await call.recv_message()
                assert first is not None and first.found
                assert second is not None and not second.found
                await call.end()

            gone = await stub.Deregister(pb.DeregisterRequest(service="orders", id="o1"))
            assert gone.existed
            again = await stub.Deregister(pb.DeregisterRequest(service="orders", id="o1"))
            assert not again.existed


async def test_watch_stream_resumes_from_a_revision() -> None:
    registry = MemoryRegistry()
    with trio.fail_after(10):
        async with (
            registry_server(registry) as server,
            open_channel("127.0.0.1", server.port) as channel,
        ):
            stub = RegistryStub(channel)
            await registry.register(spec("orders", "o1"))
            async with stub.Watch(pb.WatchRequest(service="orders")) as call:
                first = await call.recv_message()
                assert first is not None and first.WhichOneof("event") == "snapshot"
                seen = first.revision
                await registry.register(spec("orders", "o2"))
                await registry.register(spec("other", "x"))  # filtered out
                added = await call.recv_message()
                assert added is not None and added.change.kind == pb.Change.ADDED
                assert added.change.instance.id == "o2"
            # Disconnected: two changes happen; resuming gives exactly them.
            await registry.deregister("orders", "o1")
            await registry.heartbeat("orders", "o2", Health.WARNING)
            async with stub.Watch(
                pb.WatchRequest(service="orders", since_revision=added.revision)
            ) as call:
                one, two = await call.recv_message(), await call.recv_message()
            assert one is not None and two is not None
            assert [one.change.kind, two.change.kind] == [pb.Change.REMOVED, pb.Change.HEALTH]
            assert one.revision > added.revision > seen


async def test_agent_registers_heartbeats_and_deregisters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = MemoryRegistry(RegistryConfig(deregister_critical_after=5))
    async with registry_server(registry) as server, trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", server.port, spec(), ttl=3)
        await nursery.start(agent.run)
        assert [i.id for i in (await registry.discover("orders"))[1]] == ["o1"]
        await trio.sleep(30)  # ten TTLs: still passing thanks to the heartbeats
        assert [i.health for i in (await registry.discover("orders"))[1]] == [Health.PASSING]
        assert agent.heartbeats >= 9
        agent.set_health("orders", "o1", Health.WARNING)
        await trio.sleep(1.5)
        assert [i.health for i in (await registry.discover("orders"))[1]] == [Health.WARNING]
        nursery.cancel_scope.cancel()
    # cancelled -> deregistered at once (not after the TTL)
    assert registry.core.instances() == []


async def test_agent_reregisters_after_a_registry_restart_without_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as outer:
        async with registry_server(MemoryRegistry()) as first:
            port = first.port
            agent = RegistrationAgent("127.0.0.1", port, spec(), ttl=3)
            await outer.start(agent.run)
        # The registry is down (and forgot everything); it comes back on the same port.
        await trio.sleep(5)
        second = MemoryRegistry()
        async with registry_server(second, port):
            await trio.sleep(5)
            assert [i.id for i in second.core.instances()] == ["o1"]
            assert agent.registrations >= 2
            outer.cancel_scope.cancel()


async def test_snapshot_keeps_registrations_across_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "registry.json"
    first = MemoryRegistry(snapshot_path=path)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first.register(spec("orders", "o1"), ttl=30)
        await first.register(spec("orders", "o2"), ttl=30)
        await first.deregister("orders", "o2")
        nursery.cancel_scope.cancel()
    assert path.exists()
    second = MemoryRegistry(snapshot_path=path)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        assert [i.id for i in (await second.discover("orders"))[1]] == ["o1"]
        assert second.revision == first.revision == 3  # revisions never go back
        # The TTL still runs: no heartbeat -> critical after what was left of it.
        await trio.sleep(31)
        assert (await second.discover("orders"))[1] == []
        nursery.cancel_scope.cancel()


async def test_discovery_client_follows_changes_and_survives_a_disconnect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = MemoryRegistry()
    async with trio.open_nursery() as outer:
        async with registry_server(registry) as server:
            port = server.port
            await registry.register(spec("orders", "o1"))
            client = DiscoveryClient("127.0.0.1", port, "orders")
            await outer.start(client.run)
            assert [i.id for i in client.instances("orders")] == ["o1"]
            await registry.register(spec("orders", "o2"))
            await client.wait_until(lambda c: len(c.instances("orders")) == 2)
        # The server is gone (the registry object and its state live on): changes
        # made meanwhile reach the client when it reconnects, from its revision.
        await registry.deregister("orders", "o1")
        async with registry_server(registry, port):
            with trio.fail_after(30):
                await client.wait_until(lambda c: [i.id for i in c.instances("orders")] == ["o2"])
            assert client.reconnects >= 1
            assert client.revision == registry.revision
            outer.cancel_scope.cancel()
