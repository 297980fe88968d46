"""The registry's write permission: with a ``Security`` installed, writes need
``registry:write`` (gRPC PERMISSION_DENIED / REST 403 without it), reads
``registry:read``; the agent presents a bearer token or a client certificate over TLS.
httpx plays the REST client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
import trustme

import netkit
from netkit.discovery import (
    Address,
    InstanceSpec,
    MemoryRegistry,
    RegistrationAgent,
    RegistryService,
    add_registry_routes,
)
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.registry.v1 import registry_pb2 as pb
from netkit.protos.registry.v1.registry_netkit import RegistryStub
from netkit.rest import BearerToken
from netkit.security import (
    REGISTRY_READ,
    REGISTRY_WRITE,
    AnyOf,
    BearerTokens,
    CallCredentials,
    MutualTLS,
    Policy,
    Principal,
    Security,
    client_context,
    server_context,
)
from tests.security import pki

pytestmark = pytest.mark.interop

TOKENS = {
    "writer": Principal("agent", {REGISTRY_WRITE, REGISTRY_READ}),
    "reader": Principal("balancer", {REGISTRY_READ}),
}


@asynccontextmanager
async def secured_registry(
    registry: MemoryRegistry, ca: trustme.CA | None = None
) -> AsyncIterator[netkit.Server]:
    app = netkit.App()
    app.grpc.add_service(RegistryService(registry))
    add_registry_routes(app.rest, registry)
    authn = AnyOf(BearerTokens(TOKENS), MutualTLS(scopes={"agent.netkit.test": [REGISTRY_WRITE]}))
    Security(authn, Policy()).install(app)
    tls = None
    if ca is not None:
        cert = pki.server_cert(ca).private_key_and_cert_chain_pem.bytes()
        tls = server_context(cert, client_ca=ca.cert_pem.bytes(), require_client_cert=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        server: netkit.Server = await nursery.start(
            lambda task_status: netkit.serve(
                app, "127.0.0.1", 0, ssl_context=tls, task_status=task_status
            )
        )
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def register_request(name: str, port: int) -> pb.RegisterRequest:
    instance = pb.Instance(
        service="orders", id=name, address=pb.Address(host="127.0.0.1", port=port)
    )
    return pb.RegisterRequest(instance=instance, ttl=10)


async def test_grpc_writes_need_registry_write() -> None:
    registry = MemoryRegistry()
    with trio.fail_after(10):
        async with secured_registry(registry) as server:
            reader = [CallCredentials(BearerToken.static("reader"))]
            async with open_channel("127.0.0.1", server.port, interceptors=reader) as channel:
                stub = RegistryStub(channel)
                for call in (
                    stub.Register(register_request("r1", 1)),
                    stub.Deregister(pb.DeregisterRequest(service="orders", id="r1")),
                    stub.Heartbeat(pb.HeartbeatRequest(service="orders", id="r1")),
                ):
                    with pytest.raises(GRPCError) as refused:
                        await call
                    assert refused.value.code is StatusCode.PERMISSION_DENIED
                # Reading is what a reader may do.
                found = await stub.Discover(pb.DiscoverRequest(service="orders"))
                assert list(found.instances) == []
            async with open_channel("127.0.0.1", server.port) as channel:
                with pytest.raises(GRPCError) as anonymous:
                    await RegistryStub(channel).Discover(pb.DiscoverRequest(service="orders"))
                assert anonymous.value.code is StatusCode.UNAUTHENTICATED
            writer = [CallCredentials(BearerToken.static("writer"))]
            async with open_channel("127.0.0.1", server.port, interceptors=writer) as channel:
                await RegistryStub(channel).Register(register_request("w1", 2))
            assert [i.id for i in (await registry.discover("orders"))[1]] == ["w1"]


async def test_rest_writes_need_registry_write() -> None:
    registry = MemoryRegistry()
    body = {"address": {"host": "127.0.0.1", "port": 9}}
    with trio.fail_after(10):
        async with (
            secured_registry(registry) as server,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
        ):
            reader = {"authorization": "Bearer reader"}
            writer = {"authorization": "Bearer writer"}
            url = "/v1/services/orders/x1"
            put = await http.put(url, json=body, headers=reader)
            assert put.status_code == 403
            assert "insufficient_scope" in put.headers["www-authenticate"]
            assert (await http.put(url, json=body)).status_code == 401
            assert (await http.get("/v1/services/orders", headers=reader)).status_code == 200
            assert (await http.put(url, json=body, headers=writer)).status_code == 200
            assert (await http.put(url + "/heartbeat", headers=reader)).status_code == 403
            assert (await http.delete(url, headers=reader)).status_code == 403
            assert [i.id for i in (await registry.discover("orders"))[1]] == ["x1"]
            assert (await http.delete(url, headers=writer)).status_code == 200
            assert (await registry.discover("orders"))[1] == []


async def test_agent_presents_a_token_or_a_client_certificate() -> None:
    ca = trustme.CA()
    registry = MemoryRegistry()
    with trio.fail_after(15):
        async with secured_registry(registry, ca) as server, trio.open_nursery() as nursery:
            spec = InstanceSpec("orders", "tok", Address("127.0.0.1", 1))
            trust = client_context(ca.cert_pem.bytes(), alpn=["h2"])
            by_token = RegistrationAgent(
                "127.0.0.1",
                server.port,
                spec,
                ssl_context=trust,
                interceptors=[CallCredentials(BearerToken.static("writer"))],
            )
            await nursery.start(by_token.run)
            agent_cert = pki.client_cert(ca, "agent.netkit.test")
            mtls = client_context(
                ca.cert_pem.bytes(),
                cert=agent_cert.cert_chain_pems[0].bytes(),
                key=agent_cert.private_key_pem.bytes(),
                alpn=["h2"],
            )
            spec2 = InstanceSpec("orders", "cert", Address("127.0.0.1", 2))
            await nursery.start(
                RegistrationAgent("127.0.0.1", server.port, spec2, ssl_context=mtls).run
            )
            ids = [i.id for i in (await registry.discover("orders"))[1]]
            assert ids == ["cert", "tok"]
            nursery.cancel_scope.cancel()
        # They deregistered on the way out, with the same credentials.
        assert (await registry.discover("orders"))[1] == []
