"""etcd backend faults, each with an etcd of its own: etcd restarts (the registry says
UNAVAILABLE meanwhile, then reloads), the registry process restarts (agents carry on),
two registry processes share one view, and a compaction forces a snapshot."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

import netkit
from netkit.discovery import (
    Change,
    ChangeKind,
    EtcdRegistry,
    RegistrationAgent,
    RegistryBackendError,
    RegistryService,
    RegistryUnavailable,
    Snapshot,
    add_registry_routes,
)
from netkit.discovery._rest import rest_errors
from netkit.discovery._service import grpc_errors
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.etcd.v3 import etcd_pb2 as epb
from netkit.protos.etcd.v3.etcd_netkit import KVStub
from netkit.protos.registry.v1 import registry_pb2 as pb
from netkit.protos.registry.v1.registry_netkit import RegistryStub
from netkit.rest import Problem
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


async def test_etcd_going_down_ends_watches_and_wakes_blocked_queries(tmp_path: Path) -> None:
    """Open watches (in process and over gRPC) end with UNAVAILABLE and blocked REST
    queries answer 503, instead of going quiet and looking fresh."""
    etcd = Etcd(tmp_path / "etcd").start()
    try:
        registry = EtcdRegistry("127.0.0.1", etcd.port, prefix="/down/", config=REAL_TIME)
        app = netkit.App()
        app.grpc.add_service(RegistryService(registry))
        add_registry_routes(app.rest, registry)
        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            server = await nursery.start(netkit.serve, app, "127.0.0.1", 0)
            index, _ = await registry.register(spec("orders", "o1"), ttl=30)
            outcomes: dict[str, object] = {}

            async def in_process() -> None:
                async with registry.watch("orders") as watcher:
                    try:
                        async for _ in watcher:
                            pass
                    except RegistryUnavailable as exc:
                        outcomes["watch"] = exc

            async def over_grpc(task_status: trio.TaskStatus[None]) -> None:
                async with open_channel("127.0.0.1", server.port) as channel:
                    request = pb.WatchRequest(service="orders")
                    try:
                        async with RegistryStub(channel).Watch(request) as call:
                            await call.recv_message()  # the snapshot: the watch is open
                            task_status.started()
                            async for _ in call:
                                pass
                            outcomes["grpc"] = call.code  # ended by the server
                    except GRPCError as exc:
                        outcomes["grpc"] = exc.code

            async def blocked_rest() -> None:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
                    outcomes["rest"] = await c.get(
                        "/v1/services/orders",
                        params={"index": index, "wait": "20s"},
                        timeout=15,
                    )

            with trio.fail_after(12):
                async with trio.open_nursery() as clients:
                    clients.start_soon(in_process)
                    await clients.start(over_grpc)
                    clients.start_soon(blocked_rest)
                    await trio.sleep(0.3)
                    assert outcomes == {}
                    await trio.to_thread.run_sync(etcd.stop)
            assert isinstance(outcomes["watch"], RegistryUnavailable)
            assert outcomes["grpc"] is StatusCode.UNAVAILABLE
            rest = outcomes["rest"]
            assert isinstance(rest, httpx.Response) and rest.status_code == 503
            assert rest.headers["content-type"] == "application/problem+json"
            assert rest.headers["retry-after"] == "1"
            assert "etcd" in rest.json()["detail"]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
                assert (await c.get("/v1/services")).status_code == 503
                put = await c.put(
                    "/v1/services/orders/o2", json={"address": {"host": "h", "port": 1}}
                )
                assert put.status_code == 503
            nursery.cancel_scope.cancel()
    finally:
        etcd.stop()


async def test_etcd_refusals_are_registry_backend_errors(etcd: Etcd) -> None:
    """A status etcd gives for a request it will never accept is not "unavailable"."""
    registry = EtcdRegistry("127.0.0.1", etcd.port, prefix="/refused/", config=REAL_TIME)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        with pytest.raises(RegistryBackendError, match="key is not provided"):
            async with registry._etcd() as channel:
                await KVStub(channel).Put(epb.PutRequest(key=b"", value=b"x"))
        # The faces' answers to it: gRPC INTERNAL, HTTP 502, both with etcd's words.
        refused = RegistryBackendError("etcd refused the operation: permission denied")
        with pytest.raises(GRPCError) as raised, grpc_errors():
            raise refused
        assert raised.value.code is StatusCode.INTERNAL and "permission" in str(raised.value)
        with pytest.raises(Problem) as problem, rest_errors():
            raise refused
        assert problem.value.status == 502 and "permission" in problem.value.detail
        nursery.cancel_scope.cancel()
