"""Client-side balancing against real netkit backends on loopback: the gRPC channel
(``open_channel`` with a static list or a ``registry://`` target) and RestClient over
httpx (``static://``, ``registry://``), with backends killed, failing and coming and
going through a real in-process registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

import netkit
from netkit.balance import Backend, BalancedChannel, BalancedTransport, Connectivity
from netkit.discovery import Address, InstanceSpec, MemoryRegistry, RegistrationAgent
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import GRPCError, ServerCall, StatusCode, open_channel
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from netkit.rest import APIError, RetryPolicy
from tests.discovery.test_registry_grpc import registry_server

pytestmark = pytest.mark.interop

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, deadline=5.0)


@attrs.define
class Node:
    """One backend: its name (in every answer), status for /who, and its server."""

    name: str
    status: int = 200
    port: int = 0
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def kill(self) -> None:
        """Stop the server abruptly: its connections drop."""
        self.scope.cancel()


class NamedEcho(EchoService):
    def __init__(self, name: str) -> None:
        self.name = name

    async def Unary(self, request: echo_pb2.EchoRequest, call: ServerCall) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=self.name.encode())


def node_app(node: Node) -> netkit.App:
    app = netkit.App()
    app.grpc.add_service(NamedEcho(node.name))

    async def who(stream: netkit.HTTPStream) -> None:
        await netkit.respond_json(stream, node.status, {"backend": node.name})

    app.route("GET", "/who", who)
    return app


async def _serve(node: Node, task_status: trio.TaskStatus[netkit.Server]) -> None:
    with node.scope:
        await netkit.serve(node_app(node), "127.0.0.1", 0, task_status=task_status)


@asynccontextmanager
async def nodes(*names: str) -> AsyncIterator[list[Node]]:
    started = [Node(name) for name in names]
    async with trio.open_nursery() as nursery:
        for node in started:
            server: netkit.Server = await nursery.start(_serve, node)
            node.port = server.port
        yield started
        nursery.cancel_scope.cancel()


def static(fleet: list[Node], strategy: str = "round_robin") -> str:
    return "static://" + ",".join(f"127.0.0.1:{n.port}" for n in fleet) + f"?strategy={strategy}"


async def who(stub: EchoStub) -> str:
    reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"?"), timeout=5)
    return bytes(reply.payload).decode()


async def all_ready(channel: Any, count: int) -> None:
    assert isinstance(channel, BalancedChannel)
    channel.connect()
    with trio.fail_after(5):
        while sum(s.state is Connectivity.READY for s in channel.subchannels.values()) < count:
            await channel.wait_changed()


# -- gRPC ------------------------------------------------------------------------------
async def test_grpc_calls_spread_over_three_backends_one_connection_each() -> None:
    async with nodes("a", "b", "c") as fleet, open_channel(static(fleet)) as channel:
        assert isinstance(channel, BalancedChannel)
        assert channel.state is Connectivity.IDLE  # nothing happens before a call
        await all_ready(channel, 3)
        assert channel.state is Connectivity.READY
        stub = EchoStub(channel)
        seen = Counter([await who(stub) for _ in range(30)])
        assert seen == {"a": 10, "b": 10, "c": 10}
        # One HTTP/2 connection per backend, made once.
        assert [len(s.attempts) for s in channel.subchannels.values()] == [1, 1, 1]


async def test_grpc_calls_keep_succeeding_when_a_backend_is_killed() -> None:
    async with (
        nodes("a", "b", "c") as fleet,
        open_channel(
            [f"127.0.0.1:{n.port}" for n in fleet]  # a list: static, round robin
        ) as channel,
    ):
        assert isinstance(channel, BalancedChannel)
        await all_ready(channel, 3)
        stub = EchoStub(channel)
        assert set([await who(stub) for _ in range(6)]) == {"a", "b", "c"}
        dead = channel.subchannels[Backend("127.0.0.1", fleet[0].port)]
        fleet[0].kill()
        # A call already on a's connection when it closes fails with UNAVAILABLE (the
        # server may have seen it: gRPC does not retry that). Once the channel noticed
        # -- at once, on loopback -- every call succeeds on the others.
        with trio.fail_after(5):
            while dead.state is Connectivity.READY:
                await channel.wait_changed()
        after = [await who(stub) for _ in range(30)]
        assert set(after) == {"b", "c"}
        with trio.fail_after(5):
            while dead.state is not Connectivity.TRANSIENT_FAILURE:
                await channel.wait_changed()
        assert channel.state is Connectivity.READY


async def test_grpc_all_backends_down_fails_fast_with_unavailable() -> None:
    async with nodes("a", "b") as fleet, open_channel(static(fleet)) as channel:
        await all_ready(channel, 2)
        for node in fleet:
            node.kill()
        stub = EchoStub(channel)
        with trio.fail_after(3):
            for _ in range(3):
                with pytest.raises(GRPCError) as caught:
                    await who(stub)
                assert caught.value.code is StatusCode.UNAVAILABLE


@asynccontextmanager
async def registered(port: int, node: Node) -> AsyncIterator[None]:
    spec = InstanceSpec("orders", node.name, Address("127.0.0.1", node.port, ("grpc", "rest")))
    agent = RegistrationAgent("127.0.0.1", port, spec, ttl=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run)
        yield
        nursery.cancel_scope.cancel()


async def test_grpc_registry_target_follows_agents_joining_and_leaving() -> None:
    registry = MemoryRegistry()
    async with (
        registry_server(registry) as reg,
        nodes("a", "b", "c") as fleet,
        registered(reg.port, fleet[0]),
        open_channel(f"registry://127.0.0.1:{reg.port}/orders") as channel,
    ):
        stub = EchoStub(channel)
        assert {await who(stub) for _ in range(4)} == {"a"}
        async with registered(reg.port, fleet[1]), registered(reg.port, fleet[2]):
            with trio.fail_after(5):
                while len(channel.subchannels) < 3:  # type: ignore[attr-defined]
                    await channel.wait_changed()  # type: ignore[attr-defined]
            await all_ready(channel, 3)
            seen = Counter([await who(stub) for _ in range(30)])
            assert seen == {"a": 10, "b": 10, "c": 10}
        # b and c left (their agents deregistered): only a again, at once.
        with trio.fail_after(5):
            while len(channel.subchannels) > 1:  # type: ignore[attr-defined]
                await channel.wait_changed()  # type: ignore[attr-defined]
        assert {await who(stub) for _ in range(6)} == {"a"}


# -- REST ------------------------------------------------------------------------------
def transport_of(client: netkit.RestClient) -> BalancedTransport:
    transport = client._client._transport
    assert isinstance(transport, BalancedTransport)
    return transport


async def test_rest_client_spreads_retries_elsewhere_and_survives_a_kill() -> None:
    async with (
        nodes("a", "b", "c") as fleet,
        netkit.RestClient(static(fleet), retry=FAST) as client,
    ):
        seen = Counter([(await client.get("/who"))["backend"] for _ in range(30)])
        assert seen == {"a": 10, "b": 10, "c": 10}
        # a answers 503: the GET is retried on another backend, and succeeds.
        fleet[0].status = 503
        answers = [(await client.get("/who"))["backend"] for _ in range(12)]
        assert set(answers) == {"b", "c"}
        fleet[0].status = 200  # (a may be ejected by now: five 503s in a row)
        # b is killed: connect failures are retried elsewhere; every call succeeds.
        fleet[1].kill()
        answers = [(await client.get("/who"))["backend"] for _ in range(12)]
        assert "c" in answers and "b" not in answers


async def test_rest_client_ejects_a_failing_backend_from_call_outcomes() -> None:
    async with nodes("a", "b", "c") as fleet:
        fleet[2].status = 500  # not retried (500 is no "try again" status)
        async with netkit.RestClient(static(fleet), retry=FAST) as client:
            failures = 0
            for _ in range(15):
                try:
                    await client.get("/who")
                except APIError as exc:
                    assert exc.status == 500
                    failures += 1
            assert failures == 5  # every third call, until the fifth ejected it
            lb = transport_of(client).balancer.lb
            ejected = [s.backend.port for s in lb.ejected(trio.current_time())]
            assert ejected == [fleet[2].port]
            answers = [(await client.get("/who"))["backend"] for _ in range(10)]
            assert set(answers) == {"a", "b"}


async def test_rest_client_registry_target_follows_agents() -> None:
    registry = MemoryRegistry()
    async with (
        registry_server(registry) as reg,
        nodes("a", "b") as fleet,
        registered(reg.port, fleet[0]),
        netkit.RestClient(f"registry://127.0.0.1:{reg.port}/orders", retry=FAST) as client,
    ):
        assert {(await client.get("/who"))["backend"] for _ in range(4)} == {"a"}
        balancer = transport_of(client).balancer
        async with registered(reg.port, fleet[1]):
            with trio.fail_after(5):
                while len(balancer.lb.members) < 2:
                    await balancer.wait_changed()
            answers = Counter([(await client.get("/who"))["backend"] for _ in range(10)])
            assert answers == {"a": 5, "b": 5}
        with trio.fail_after(5):
            while len(balancer.lb.members) > 1:
                await balancer.wait_changed()
        assert {(await client.get("/who"))["backend"] for _ in range(4)} == {"a"}
