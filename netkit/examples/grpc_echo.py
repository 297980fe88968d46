"""A gRPC echo service (``netkit.echo.v1.Echo``) in an App of its own.

``netkit serve netkit.examples.grpc_echo:app`` serves it; the tests, the docs and the
benchmarks use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from netkit import App
from netkit.grpc import ServerCall
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoBase


class EchoService(EchoBase):
    async def Unary(self, request: echo_pb2.EchoRequest, call: ServerCall) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=request.payload)

    async def ServerStream(self, request: echo_pb2.EchoStreamRequest, call: ServerCall) -> None:
        reply = echo_pb2.EchoResponse(payload=request.payload)
        for _ in range(request.count):
            await call.send(reply)

    async def ClientStream(
        self, requests: AsyncIterator[echo_pb2.EchoRequest], call: ServerCall
    ) -> echo_pb2.EchoResponse:
        parts = [request.payload async for request in requests]
        return echo_pb2.EchoResponse(payload=b"".join(parts))

    async def Bidi(self, requests: AsyncIterator[echo_pb2.EchoRequest], call: ServerCall) -> None:
        async for request in requests:
            await call.send(echo_pb2.EchoResponse(payload=request.payload))


app = App()
app.grpc.add_service(EchoService())

__all__ = ["EchoService", "app"]
