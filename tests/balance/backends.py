"""Backends for the proxy tests: netkit Apps that say who they are and misbehave on cue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

import netkit
from netkit.balance import Backend, Balancer, ProxyConfig, ReverseProxy, StaticBackends
from netkit.balance._strategies import Strategy
from netkit.examples.grpc_echo import EchoService
from tests.helpers import running_server
from tests.ws.apps import echo


@attrs.define
class Behaviour:
    """What a backend does; tests flip these while it runs."""

    name: str
    status: int = 200
    hang: bool = False
    hits: int = 0
    seen_headers: list[dict[str, str]] = attrs.field(factory=list)
    #: The HTTP version each request came in (how the proxy spoke to this backend).
    versions: list[str] = attrs.field(factory=list)


def backend_app(behaviour: Behaviour) -> netkit.App:
    app = netkit.App()
    app.grpc.add_service(EchoService())
    app.ws.endpoint("/ws", echo)

    async def who(stream: netkit.HTTPStream) -> None:
        behaviour.hits += 1
        behaviour.versions.append(stream.request.http_version)
        behaviour.seen_headers.append(
            {k.decode(): v.decode() for k, v in stream.request.headers.raw()}
        )
        if behaviour.hang:
            await trio.sleep_forever()
        body = await stream.read_body()
        await netkit.respond_json(
            stream, behaviour.status, {"backend": behaviour.name, "echo": body.decode()}
        )

    for method in ("GET", "POST", "PUT", "HEAD"):
        app.route(method, "/who", who)

    async def big(stream: netkit.HTTPStream) -> None:
        await stream.send_headers(200, [("content-type", "application/octet-stream")])
        for i in range(64):
            await stream.send_data(bytes([i % 256]) * 16384)

    app.route("GET", "/big", big)
    return app


@attrs.define
class Fleet:
    proxy: ReverseProxy
    port: int
    servers: list[netkit.Server]
    behaviours: list[Behaviour]
    nursery: trio.Nursery
    scopes: list[trio.CancelScope]

    def kill(self, index: int) -> None:
        """Stop backend ``index`` abruptly: its connections drop mid-stream."""
        self.scopes[index].cancel()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _serve_in(
    app: netkit.App, scope: trio.CancelScope, task_status: trio.TaskStatus[netkit.Server]
) -> None:
    with scope:
        await netkit.serve(app, "127.0.0.1", 0, task_status=task_status)


@asynccontextmanager
async def fleet(
    n: int = 2,
    *,
    protocol: str = "auto",
    strategy: Strategy | None = None,
    config: ProxyConfig | None = None,
    **balancer_kwargs: object,
) -> AsyncIterator[Fleet]:
    """``n`` backends, a proxy in front of them, all on loopback port 0."""
    behaviours = [Behaviour(f"b{i}") for i in range(n)]
    async with AsyncExitStack() as stack:
        backends_nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(backends_nursery.cancel_scope.cancel)
        scopes = [trio.CancelScope() for _ in behaviours]
        servers = [
            await backends_nursery.start(_serve_in, backend_app(b), scope)
            for b, scope in zip(behaviours, scopes, strict=True)
        ]
        backends = [Backend("127.0.0.1", s.port, protocol=protocol) for s in servers]
        balancer = Balancer(StaticBackends(backends), strategy, **balancer_kwargs)  # type: ignore[arg-type]
        proxy = ReverseProxy(balancer, config)
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(proxy.run)
        front = await stack.enter_async_context(running_server(proxy))
        try:
            yield Fleet(proxy, front.port, servers, behaviours, nursery, scopes)
        finally:
            nursery.cancel_scope.cancel()
