"""etcd backend faults, each with an etcd of its own: etcd restarts (the registry says
UNAVAILABLE meanwhile, then reloads), the registry process restarts (agents carry on),
two registry processes share one view, and a compaction forces a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from netkit.discovery import (
    Change,
    ChangeKind,
    EtcdRegistry,
    RegistrationAgent,
    RegistryUnavailable,
    Snapshot,
)
from netkit.grpc import open_channel
from netkit.protos.etcd.v3 import etcd_pb2 as epb
from netkit.protos.etcd.v3.etcd_netkit import KVStub
from tests.discovery.conftest import REAL_TIME
from tests.discovery.etcd import Etcd
from tests.discovery.test_backends import eventually, ids
from tests.discovery.test_registry_grpc import registry_server, spec


async def test_etcd_restart_is_reported_then_recovered(tmp_path: Path) -> None:
    etcd = Etcd(tmp_path / "etcd").start()
    try:
        registry = EtcdRegistry("127.0.0.1", etcd.port, prefix="/r/", config=REAL_TIME)
        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            await registry.register(spec("orders", "o1"), ttl=30)
            await trio.to_thread.run_sync(etcd.stop)
            await eventually(lambda: not registry.available)
            with pytest.raises(RegistryUnavailable):
                await registry.discover("orders")
            with pytest.raises(RegistryUnavailable):
                await registry.register(spec("orders", "o2"), ttl=30)
            await trio.to_thread.run_sync(etcd.start)
            await eventually(lambda: registry.available, seconds=10)
            assert await ids(registry) == ["o1"]  # the lease survived the restart
            await registry.heartbeat("orders", "o1")
            nursery.cancel_scope.cancel()
    finally:
        etcd.stop()


async def test_registry_processes_share_etcd_and_agents_survive_a_restart(
    etcd: Etcd,
) -> None:
    first = EtcdRegistry("127.0.0.1", etcd.port, prefix="/shared/", config=REAL_TIME)
    second = EtcdRegistry("127.0.0.1", etcd.port, prefix="/shared/", config=REAL_TIME)
    async with trio.open_nursery() as outer:
        await outer.start(second.run)
        async with registry_server(first) as server:
            port = server.port
            agent = RegistrationAgent("127.0.0.1", port, spec("orders", "a1"), ttl=1)
            await outer.start(agent.run)
            await eventually(lambda: [i.id for i in second.snapshot("orders").instances] == ["a1"])
        # The registry process is gone for longer than the TTL; a new one comes up.
        await trio.sleep(1.5)
        third = EtcdRegistry("127.0.0.1", etcd.port, prefix="/shared/", config=REAL_TIME)
        async with registry_server(third, port):
            # Critical or even removed meanwhile: the agent heartbeats (re-registering if
            # needed) through the new process, and every process sees it passing again.
            await eventually(
                lambda: (
                    [(i.id, i.healthy) for i in second.snapshot("orders").instances]
                    == [("a1", True)]
                ),
                seconds=8,
            )
            assert [i.id for i in (await third.discover("orders"))[1]] == ["a1"]
            outer.cancel_scope.cancel()


async def test_resume_after_compaction_gets_a_snapshot(etcd: Etcd) -> None:
    registry = EtcdRegistry("127.0.0.1", etcd.port, prefix="/compact/", config=REAL_TIME)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        old, _ = await registry.register(spec("orders", "c1"), ttl=30)
        await registry.register(spec("orders", "c2"), ttl=30)
        async with registry.watch("orders", since=old) as watcher:
            event = await watcher.__anext__()
            assert isinstance(event, Change) and event.kind is ChangeKind.ADDED
        # A registry whose log no longer reaches back answers with a snapshot.
        registry._log.reset(registry.revision)
        async with open_channel("127.0.0.1", etcd.port) as channel:
            await KVStub(channel).Compact(epb.CompactionRequest(revision=registry.revision))
        async with registry.watch("orders", since=old) as watcher:
            snap = await watcher.__anext__()
        assert isinstance(snap, Snapshot)
        assert [i.id for i in snap.instances] == ["c1", "c2"]
        nursery.cancel_scope.cancel()
