"""grpc.health.v1 on netkit: Check, List and Watch, and grpcio's own health client agrees."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from netkit import App
from netkit.grpc import GRPCError, GRPCServer, StatusCode, open_channel
from netkit.grpc.health import NOT_SERVING, SERVICE_UNKNOWN, SERVING, HealthService
from netkit.protos.grpc_health.v1 import health_pb2
from netkit.protos.grpc_health.v1.health_netkit import HealthStub
from tests.helpers import running_server

ECHO = "netkit.echo.v1.Echo"

# grpcio's health messages clash with netkit's in protobuf's default pool (same message
# names), so grpcio's client runs in a process of its own.
GRPCIO_PROBE = """
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=sys.argv[2]), timeout=5)
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError as exc:
        print(exc.code().name)
"""


def grpcio_probe(port: int, service: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", GRPCIO_PROBE, f"127.0.0.1:{port}", service],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return result.stdout.decode().strip()


def health_app() -> tuple[App, HealthService]:
    health = HealthService()
    health.set(ECHO, SERVING)
    app = App()
    app.grpc = GRPCServer([health])
    return app, health


async def test_check_and_list() -> None:
    app, health = health_app()
    async with running_server(app) as server, open_channel("127.0.0.1", server.port) as channel:
        stub = HealthStub(channel)
        with trio.fail_after(10):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == SERVING
            health.set(ECHO, NOT_SERVING)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=ECHO))
            assert reply.status == NOT_SERVING
            with pytest.raises(GRPCError) as info:
                await stub.Check(health_pb2.HealthCheckRequest(service="no.Such"))
            assert info.value.code == StatusCode.NOT_FOUND
            listed = await stub.List(health_pb2.HealthListRequest())
            assert {k: v.status for k, v in listed.statuses.items()} == {
                "": SERVING,
                ECHO: NOT_SERVING,
            }


async def test_watch_streams_changes_and_shutdown() -> None:
    app, health = health_app()
    async with running_server(app) as server, open_channel("127.0.0.1", server.port) as channel:
        stub = HealthStub(channel)
        seen = []
        with trio.fail_after(10):
            async with stub.Watch(health_pb2.HealthCheckRequest(service=ECHO)) as updates:
                async for update in updates:
                    seen.append(update.status)
                    if len(seen) == 1:
                        health.set(ECHO, NOT_SERVING)
                    elif len(seen) == 2:
                        health.set(ECHO, SERVING)
                    elif len(seen) == 3:
                        health.enter_shutdown()
                    else:
                        break
            assert seen == [SERVING, NOT_SERVING, SERVING, NOT_SERVING]
            async with stub.Watch(health_pb2.HealthCheckRequest(service="later")) as updates:
                first = await updates.recv_message()
                assert first is not None and first.status == SERVICE_UNKNOWN


async def test_grpcio_health_client_agrees() -> None:
    app, health = health_app()
    health.set("down.Service", NOT_SERVING)
    async with running_server(app) as server:
        probe = await trio.to_thread.run_sync(grpcio_probe, server.port, "")
        assert probe == "SERVING"
        probe = await trio.to_thread.run_sync(grpcio_probe, server.port, "down.Service")
        assert probe == "NOT_SERVING"
        probe = await trio.to_thread.run_sync(grpcio_probe, server.port, "no.Such")
        assert probe == "NOT_FOUND"
