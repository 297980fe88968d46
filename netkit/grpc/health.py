"""The standard gRPC health service, ``grpc.health.v1.Health``.

Probes (grpcio's health client, ``grpc_health_probe``, Kubernetes gRPC probes, Envoy)
ask ``Check`` or ``Watch`` for a service name; the empty name means the whole server.
The application sets statuses with :meth:`HealthService.set`; ``Watch`` streams every
change, and on graceful shutdown :meth:`HealthService.enter_shutdown` marks everything
NOT_SERVING so balancers stop sending calls before the server stops answering.

Importing this module registers the ``grpc.health.v1`` messages in protobuf's default
pool, so it cannot share a process with grpcio-health-checking's own module (the
message names clash); netkit's tests run grpcio's health client in a subprocess.
"""

from __future__ import annotations

import trio

from ..protos.grpc_health.v1 import health_pb2
from ..protos.grpc_health.v1.health_netkit import HealthBase
from ..wire import StatusCode
from ._errors import GRPCError
from ._server_call import ServerCall
from ._service import Service

Status = health_pb2.HealthCheckResponse.ServingStatus
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthService(HealthBase):
    """Serving status per service name; ``""`` is the server as a whole (SERVING)."""

    def __init__(self, services: list[Service] | None = None) -> None:
        self._statuses: dict[str, Status] = {"": SERVING}
        for service in services or ():
            self._statuses[service.SERVICE_NAME] = SERVING
        self._changed = trio.Event()
        self._shutting_down = False

    def set(self, service: str, status: Status) -> None:
        """Set ``service``'s status; watchers hear about it at once."""
        if self._shutting_down:
            return  # after enter_shutdown everything stays NOT_SERVING
        self._statuses[service] = status
        self._changed.set()
        self._changed = trio.Event()

    def status(self, service: str) -> Status | None:
        return self._statuses.get(service)

    def enter_shutdown(self) -> None:
        """Everything NOT_SERVING, for good: balancers drain us before we stop."""
        for name in self._statuses:
            self._statuses[name] = NOT_SERVING
        self._shutting_down = True
        self._changed.set()
        self._changed = trio.Event()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, call: ServerCall
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            raise GRPCError(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, call: ServerCall
    ) -> health_pb2.HealthListResponse:
        response = health_pb2.HealthListResponse()
        for name, status in self._statuses.items():
            response.statuses[name].status = status
        return response

    async def Watch(self, request: health_pb2.HealthCheckRequest, call: ServerCall) -> None:
        last: Status | None = None
        while True:
            changed = self._changed
            status = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                await call.send(health_pb2.HealthCheckResponse(status=status))
                last = status
            await changed.wait()
