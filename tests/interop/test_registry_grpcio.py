"""The registry's gRPC face called by grpcio (a client we did not write).

grpcio's synchronous client runs in a worker thread while the registry and the netkit
server run in the test's trio loop; messages are netkit's generated registry_pb2 (one
descriptor pool, no clash).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import pytest
import trio

from netkit.discovery import MemoryRegistry
from netkit.protos.registry.v1 import registry_pb2 as pb
from tests.discovery.test_registry_grpc import registry_server, spec

pytestmark = pytest.mark.interop

T = TypeVar("T")
PREFIX = "/netkit.registry.v1.Registry/"


async def in_thread(fn: Callable[[], T]) -> T:
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


def method(channel: grpc.Channel, kind: str, name: str, request: Any, response: Any) -> Any:
    factory = getattr(channel, kind)
    return factory(
        PREFIX + name,
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


async def test_grpcio_client_registers_heartbeats_discovers_and_watches() -> None:
    registry = MemoryRegistry()
    async with registry_server(registry) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            register = method(
                channel, "unary_unary", "Register", pb.RegisterRequest, pb.RegisterResponse
            )
            discover = method(
                channel, "unary_unary", "Discover", pb.DiscoverRequest, pb.DiscoverResponse
            )
            heartbeat = method(
                channel, "unary_unary", "Heartbeat", pb.HeartbeatRequest, pb.HeartbeatResponse
            )
            keep_alive = method(
                channel, "stream_stream", "KeepAlive", pb.HeartbeatRequest, pb.KeepAliveResponse
            )
            watch = method(channel, "unary_stream", "Watch", pb.WatchRequest, pb.WatchEvent)

            instance = pb.Instance(
                service="orders",
                id="g1",
                address=pb.Address(host="10.1.1.1", port=9000, protocols=["grpc"]),
                metadata=pb.Metadata(version="2", zone="z", weight=2, tags=["canary"]),
            )
            reply = await in_thread(lambda: register(pb.RegisterRequest(instance=instance, ttl=10)))
            assert reply.revision == 1 and reply.instance.ttl == 10

            found = await in_thread(
                lambda: discover(pb.DiscoverRequest(service="orders", tags=["canary"]))
            )
            assert [(i.id, i.address.port, i.metadata.zone) for i in found.instances] == [
                ("g1", 9000, "z")
            ]
            assert not found.self_preservation

            def missing() -> grpc.StatusCode:
                try:
                    heartbeat(pb.HeartbeatRequest(service="orders", id="nobody"))
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return]
                raise AssertionError("heartbeat for an unknown instance succeeded")

            assert await in_thread(missing) == grpc.StatusCode.NOT_FOUND

            def beats() -> Iterator[pb.HeartbeatRequest]:
                yield pb.HeartbeatRequest(service="orders", id="g1", health=pb.WARNING)
                yield pb.HeartbeatRequest(service="orders", id="ghost")

            answers = await in_thread(lambda: list(keep_alive(beats())))
            assert [(a.id, a.found) for a in answers] == [("g1", True), ("ghost", False)]

            # A watch from revision 1 replays exactly the health change, then follows.
            stream = watch(pb.WatchRequest(service="orders", since_revision=1))
            first = await in_thread(lambda: next(stream))
            assert (
                first.change.kind == pb.Change.HEALTH and first.change.instance.health == pb.WARNING
            )
            await registry.register(spec("orders", "o9"))
            second = await in_thread(lambda: next(stream))
            assert second.change.kind == pb.Change.ADDED and second.change.instance.id == "o9"
            stream.cancel()
            # From scratch: a snapshot with both.
            snap_stream = watch(pb.WatchRequest(service="orders"))
            snap = await in_thread(lambda: next(snap_stream))
            snap_stream.cancel()
            assert sorted(i.id for i in snap.snapshot.instances) == ["g1", "o9"]
        finally:
            await trio.to_thread.run_sync(channel.close)


async def test_grpcio_client_registers_many() -> None:
    registry = MemoryRegistry()
    async with registry_server(registry) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            register_many = method(
                channel,
                "unary_unary",
                "RegisterMany",
                pb.RegisterManyRequest,
                pb.RegisterManyResponse,
            )
            batch = pb.RegisterManyRequest(
                registrations=[
                    pb.RegisterRequest(
                        instance=pb.Instance(
                            service="orders", id=f"m{n}", address=pb.Address(host="h", port=n)
                        ),
                        ttl=10,
                    )
                    for n in range(300)
                ]
            )
            reply = await in_thread(lambda: register_many(batch))
            assert reply.revision == 300
            assert [i.id for i in reply.instances] == [f"m{n}" for n in range(300)]
            assert len(registry.core.instances("orders")) == 300

            def refused() -> grpc.StatusCode:
                fresh = pb.RegisterRequest(
                    instance=pb.Instance(service="orders", id="new", address=pb.Address(host="h"))
                )
                bad = pb.RegisterManyRequest(registrations=[fresh, pb.RegisterRequest()])
                try:
                    register_many(bad)
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return]
                raise AssertionError("a batch with an empty registration succeeded")

            assert await in_thread(refused) == grpc.StatusCode.INVALID_ARGUMENT
            assert registry.revision == 300 and registry.core.get("orders", "new") is None
        finally:
            await trio.to_thread.run_sync(channel.close)
