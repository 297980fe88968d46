"""``netkit.registry.v1.Registry`` served by netkit's gRPC server over any backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from ..grpc import GRPCError, ServerCall, StatusCode
from ..protos.registry.v1 import registry_pb2 as pb
from ..protos.registry.v1.registry_netkit import RegistryBase
from ._backend import RegistryBackend
from ._convert import event_to_pb, health_from_pb, instance_to_pb, spec_from_pb
from ._types import (
    InstanceNotFound,
    InvalidRegistration,
    RegistryBackendError,
    RegistryUnavailable,
)

#: Registrations accepted in one RegisterMany call.
MAX_REGISTER_MANY = 1000


@contextmanager
def grpc_errors() -> Iterator[None]:
    """Registry errors as gRPC statuses (the one boundary where they are converted)."""
    try:
        yield
    except InstanceNotFound as exc:
        raise GRPCError(StatusCode.NOT_FOUND, str(exc)) from None
    except InvalidRegistration as exc:
        raise GRPCError(StatusCode.INVALID_ARGUMENT, str(exc)) from None
    except RegistryUnavailable as exc:
        raise GRPCError(StatusCode.UNAVAILABLE, str(exc)) from None
    except RegistryBackendError as exc:
        raise GRPCError(StatusCode.INTERNAL, str(exc)) from None


class RegistryService(RegistryBase):
    """``app.grpc.add_service(RegistryService(registry))``."""

    def __init__(self, registry: RegistryBackend) -> None:
        self.registry = registry

    async def Register(self, request: pb.RegisterRequest, call: ServerCall) -> pb.RegisterResponse:
        with grpc_errors():
            spec = spec_from_pb(request.instance)
            revision, instance = await self.registry.register(spec, request.ttl or None)
        return pb.RegisterResponse(
            revision=revision, instance=instance_to_pb(instance, self.registry.to_unix)
        )

    async def RegisterMany(
        self, request: pb.RegisterManyRequest, call: ServerCall
    ) -> pb.RegisterManyResponse:
        if len(request.registrations) > MAX_REGISTER_MANY:
            raise GRPCError(
                StatusCode.INVALID_ARGUMENT,
                f"at most {MAX_REGISTER_MANY} registrations per call, "
                f"got {len(request.registrations)}",
            )
        config = self.registry.config
        with grpc_errors():
            # All checked before any is applied: a bad entry changes nothing.
            batch = []
            for n, item in enumerate(request.registrations):
                try:
                    spec = spec_from_pb(item.instance)
                    ttl = config.check_ttl(item.ttl)
                except InvalidRegistration as exc:
                    raise InvalidRegistration(f"registrations[{n}]: {exc}") from None
                batch.append((spec, ttl))
            revision, instances = 0, []
            for spec, ttl in batch:
                revision, instance = await self.registry.register(spec, ttl)
                instances.append(instance_to_pb(instance, self.registry.to_unix))
        return pb.RegisterManyResponse(revision=revision, instances=instances)

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, call: ServerCall
    ) -> pb.HeartbeatResponse:
        with grpc_errors():
            health = health_from_pb(request.health)
            revision = await self.registry.heartbeat(request.service, request.id, health)
        return pb.HeartbeatResponse(revision=revision)

    async def KeepAlive(
        self, requests: AsyncIterator[pb.HeartbeatRequest], call: ServerCall
    ) -> None:
        async for request in requests:
            with grpc_errors():
                health = health_from_pb(request.health)
                try:
                    revision = await self.registry.heartbeat(request.service, request.id, health)
                    found = True
                except InstanceNotFound:
                    revision, found = self.registry.revision, False
            await call.send(
                pb.KeepAliveResponse(
                    service=request.service, id=request.id, found=found, revision=revision
                )
            )

    async def Deregister(
        self, request: pb.DeregisterRequest, call: ServerCall
    ) -> pb.DeregisterResponse:
        with grpc_errors():
            revision, existed = await self.registry.deregister(request.service, request.id)
        return pb.DeregisterResponse(revision=revision, existed=existed)

    async def Discover(self, request: pb.DiscoverRequest, call: ServerCall) -> pb.DiscoverResponse:
        if not request.service:
            raise GRPCError(StatusCode.INVALID_ARGUMENT, "service is required")
        with grpc_errors():
            revision, found = await self.registry.discover(
                request.service,
                healthy_only=not request.include_unhealthy,
                tags=tuple(request.tags),
            )
        return pb.DiscoverResponse(
            revision=revision,
            instances=[instance_to_pb(i, self.registry.to_unix) for i in found],
            self_preservation=self.registry.preserving,
        )

    async def Watch(self, request: pb.WatchRequest, call: ServerCall) -> None:
        with grpc_errors():
            async with self.registry.watch(request.service or None, request.since_revision) as w:
                async for event in w:
                    await call.send(event_to_pb(event, self.registry.to_unix))
