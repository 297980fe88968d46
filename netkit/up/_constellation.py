"""``Constellation``: the whole orders system in one trio process (``netkit up``).

One nursery tree::

    Constellation.run
    ├── registry: MemoryRegistry.run (expiry) + its server (gRPC, REST face, admin routes)
    ├── orders-1..N: each an Instance task: its server + its RegistrationAgent (TTL heartbeats)
    ├── balancer: ReverseProxy.run (fed by netkit.balance.RegistryBackends, a Watch on
    │   the registry) + its server on the main port, observed by netkit.observe
    └── status: the live view, once a second (netkit.observe's numbers and rendering)

Every component is started with ``await nursery.start(...)`` and is ready when it returns.
Shutdown goes from the outside in: the balancer stops accepting and drains, then the
instances (their agents deregister), then the registry. The instances share one order
store and one idempotency store, as real instances share their database.

``kill(id)`` crashes an instance: its server and heartbeats stop at once and it does not
deregister, so the registry drops it when its TTL runs out and the balancer follows
(requests meanwhile fail to connect and are retried elsewhere).

One :class:`~netkit.observe.Observability` observes the balancer's server and watches
the balancer and the registry; ``GET /metrics`` on the registry/admin port exposes it
(Prometheus text), and the live view reads the same numbers.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import trio

from ..app import App
from ..balance import Balancer, ProxyConfig, RegistryBackends, ReverseProxy, make_strategy
from ..discovery import (
    Address,
    InstanceSpec,
    MemoryRegistry,
    Metadata,
    RegistrationAgent,
    RegistryConfig,
    RegistryService,
    add_registry_routes,
)
from ..examples.order_service import OrderStore, make_app, publish_events
from ..http import Server, ServerConfig, serve
from ..observe import Observability
from ..observe._live import Reading, read
from ..rest import MemoryIdempotencyStore, Problem, RestRequest
from ._status import Row, StatusView

if TYPE_CHECKING:
    from ..security import DevPKI

log = logging.getLogger("netkit.up")

SERVICE = "orders"


@attrs.frozen(kw_only=True)
class UpConfig:
    """Where and how ``netkit up`` runs.

    ``port`` is the balancer's (the one clients use); ``base_port`` the registry's, and
    the instances take the ports after it. 0 for either: free ports chosen by the system.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    base_port: int | None = None
    instances: int = attrs.field(default=3, validator=attrs.validators.in_(range(1, 33)))
    ttl: float = attrs.field(default=5.0, validator=attrs.validators.ge(1.0))
    shutdown_grace: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    status_interval: float = 1.0

    def registry_port(self) -> int:
        if self.base_port is not None:
            return self.base_port
        return 0 if self.port == 0 else self.port + 1

    def instance_port(self, n: int) -> int:
        base = self.registry_port()
        return 0 if base == 0 else base + n


class Instance:
    """One orders instance: a server and the agent that keeps it registered."""

    def __init__(self, up: Constellation, name: str, port: int) -> None:
        self.up = up
        self.name = name
        self.requested_port = port
        self.port = port
        self.state = "starting"
        self.server: Server | None = None
        self.agent: RegistrationAgent | None = None
        self._scope = trio.CancelScope()
        self.finished = trio.Event()

    async def run(
        self, *, task_status: trio.TaskStatus[Instance] = trio.TASK_STATUS_IGNORED
    ) -> None:
        up = self.up
        app = make_app(up.store, idempotency_store=up.idempotency, events=False)
        detach = publish_events(app.ws.hub, up.store)
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self.server = await nursery.start(
                        partial(
                            serve,
                            app,
                            up.config.host,
                            self.requested_port,
                            config=up.server_config,
                            ssl_context=up.tls_server,
                        )
                    )
                    self.port = self.server.port
                    spec = InstanceSpec(
                        SERVICE,
                        self.name,
                        Address(up.config.host, self.port, ("rest", "grpc", "ws")),
                        Metadata(version="1.0.0", weight=1),
                    )
                    self.agent = RegistrationAgent(
                        up.config.host,
                        up.registry_server_port,
                        spec,
                        ttl=up.config.ttl,
                        ssl_context=up.tls_client,
                    )
                    await nursery.start(self.agent.run)
                    self.state = "up"
                    task_status.started(self)
                    await self.server.wait_shutdown()
                    nursery.cancel_scope.cancel()  # the server is done: stop heartbeats
        finally:
            detach()
            if self.state != "killed":
                self.state = "stopped"
            self.finished.set()

    def kill(self) -> None:
        """Crash: stop serving and heartbeating now, without deregistering."""
        if self.agent is not None:
            self.agent.deregister_timeout = 0  # the shielded deregistration gives up at once
        self.state = "killed"
        self._scope.cancel()

    async def stop(self) -> None:
        """Graceful: deregister (the balancer stops sending), drain, then stop."""
        if self.server is not None and not self.server.shutting_down:
            self.server.shutdown()
        await self.finished.wait()


class Constellation:
    """The registry, the orders instances and the balancer, as one long-lived task."""

    def __init__(
        self,
        config: UpConfig | None = None,
        *,
        out: TextIO | None = None,
        tls: DevPKI | None = None,
    ) -> None:
        self.config = config or UpConfig()
        #: With ``tls`` (``netkit up --tls``): every server speaks TLS with its
        #: certificate, and the agents, the discovery client and the proxy trust its CA.
        self.tls = tls
        self.tls_server = tls.server_context() if tls else None
        self.tls_client = tls.client_context(alpn=["h2"]) if tls else None
        self.out = out or sys.stdout
        self.store = OrderStore()
        self.idempotency = MemoryIdempotencyStore()
        self.server_config = ServerConfig(shutdown_grace=self.config.shutdown_grace)
        self.registry = MemoryRegistry(
            RegistryConfig(min_ttl=1.0, self_preservation_threshold=None)
        )
        self.instances: dict[str, Instance] = {}
        self.registry_server: Server | None = None
        self.balancer_server: Server | None = None
        self.proxy: ReverseProxy | None = None
        #: The balancer's server observer; it also watches the balancer and the registry.
        self.obs = Observability(access_log=False)
        self.obs.watch_registry(self.registry)
        self._nursery: trio.Nursery | None = None
        self._stopping = False

    @property
    def registry_server_port(self) -> int:
        assert self.registry_server is not None
        return self.registry_server.port

    # -- running ------------------------------------------------------------------------
    async def run(
        self,
        *,
        task_status: trio.TaskStatus[Constellation] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        config = self.config
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.registry.run)
            self.registry_server = await nursery.start(
                partial(
                    serve,
                    self._control_app(),
                    config.host,
                    config.registry_port(),
                    config=self.server_config,
                    ssl_context=self.tls_server,
                )
            )
            for n in range(1, config.instances + 1):
                await self.start_instance(f"{SERVICE}-{n}", config.instance_port(n))
            source = RegistryBackends(
                config.host, self.registry_server_port, SERVICE, ssl_context=self.tls_client
            )
            self.proxy = ReverseProxy(
                Balancer(source, make_strategy("peak_ewma")),
                ProxyConfig(response_timeout=10.0),
                ssl_context=self.tls_client,
                h1_ssl_context=self.tls.client_context(alpn=["http/1.1"]) if self.tls else None,
            )
            self.obs.watch_balancer(self.proxy.balancer, self.proxy)
            await nursery.start(self.proxy.run)
            # the source's first snapshots make every instance a member
            with trio.fail_after(10):
                while len(self.proxy.balancer.lb.members) < config.instances:
                    await self.proxy.balancer.wait_changed()
            self.balancer_server = await nursery.start(
                partial(
                    serve,
                    self.proxy,
                    config.host,
                    config.port,
                    config=self.server_config,
                    observer=self.obs,
                    ssl_context=self.tls_server,
                )
            )
            task_status.started(self)
            await self.balancer_server.wait_shutdown()
            await self._stop_inside()
            nursery.cancel_scope.cancel()

    async def start_instance(self, name: str, port: int) -> Instance:
        assert self._nursery is not None
        instance = Instance(self, name, port)
        self.instances[name] = instance
        await self._nursery.start(instance.run)
        return instance

    def shutdown(self) -> None:
        """Graceful stop from the outside in; ``run`` returns when it is done."""
        self._stopping = True
        if self.balancer_server is not None and not self.balancer_server.shutting_down:
            self.balancer_server.shutdown()

    async def _stop_inside(self) -> None:
        """After the balancer drained: the instances (in parallel), then the registry."""
        async with trio.open_nursery() as nursery:
            for instance in self.instances.values():
                nursery.start_soon(instance.stop)
        if self.registry_server is not None:
            self.registry_server.shutdown()
            with trio.move_on_after(self.config.shutdown_grace + 1):
                await self.registry_server.wait_shutdown()

    def kill(self, name: str) -> Instance:
        instance = self.instances.get(name)
        if instance is None:
            raise KeyError(name)
        instance.kill()
        return instance

    # -- the control plane: registry (gRPC + REST) and admin routes ------------------------
    def _control_app(self) -> App:
        app = App()
        app.grpc.add_service(RegistryService(self.registry))
        add_registry_routes(app.rest, self.registry)
        self.obs.mount(app)  # GET /metrics: the balancer's traffic, backends and registry

        @app.rest.get("/admin/status", tags=["admin"])
        async def admin_status(request: RestRequest[None]) -> dict[str, Any]:
            """What runs and how it is doing (the live view's rows)."""
            return {"instances": [attrs.asdict(row) for row in self.rows()]}

        @app.rest.post("/admin/instances/{name}/kill", tags=["admin"])
        async def admin_kill(request: RestRequest[None]) -> dict[str, Any]:
            """Crash one instance: it leaves the balancer when its TTL runs out."""
            name = request.params["name"]
            try:
                instance = self.kill(name)
            except KeyError:
                raise Problem(
                    404, f"no instance {name}; known: {', '.join(self.instances)}"
                ) from None
            return {"killed": name, "port": instance.port, "ttl": self.config.ttl}

        @app.rest.post("/admin/instances/{name}/start", tags=["admin"])
        async def admin_start(request: RestRequest[None]) -> dict[str, Any]:
            """Start a killed or stopped instance again, on its old port."""
            name = request.params["name"]
            old = self.instances.get(name)
            if old is None:
                raise Problem(404, f"no instance {name}")
            if old.state in ("starting", "up"):
                raise Problem(409, f"{name} is {old.state}")
            await old.finished.wait()
            instance = await self.start_instance(name, old.port)
            return {"started": name, "port": instance.port}

        return app

    # -- status -----------------------------------------------------------------------
    def rows(self, rates: dict[str, float] | None = None) -> list[Row]:
        """One row per component; ``rates`` are requests/s by name (0 when absent)."""
        rates = rates or {}
        health = {i.id: i.health.name.lower() for i in self.registry.snapshot(SERVICE).instances}
        in_rotation: dict[str, str] = {}
        if self.proxy is not None:
            now = trio.current_time()
            for state in self.proxy.balancer.lb.members:
                verdict = "ejected" if state.ejected(now) else "in rotation"
                in_rotation[state.backend.address] = verdict
        rows = []
        if self.balancer_server is not None:
            rows.append(
                Row(
                    "balancer",
                    f"{self.config.host}:{self.balancer_server.port}",
                    "stopping" if self._stopping else "up",
                    "-",
                    f"{len(in_rotation)} backends",
                    rates.get("balancer", 0.0),
                )
            )
        for name, instance in self.instances.items():
            address = f"{self.config.host}:{instance.port}"
            rows.append(
                Row(
                    name,
                    address,
                    instance.state,
                    health.get(name, "-"),
                    in_rotation.get(address, "-"),
                    rates.get(name, 0.0),
                )
            )
        return rows

    def rates(self, before: Reading, after: Reading) -> dict[str, float]:
        """Requests/s over an interval from two observe readings: the balancer's served
        requests, and each instance's picks by the balancer."""
        span = max(after.time - before.time, 1e-9)
        rates = {"balancer": (after.requests - before.requests) / span}
        earlier = {b.address: b.picks for b in before.backends}
        picks = {b.address: (b.picks - earlier.get(b.address, 0)) / span for b in after.backends}
        for name, instance in self.instances.items():
            rates[name] = picks.get(f"{self.config.host}:{instance.port}", 0.0)
        return rates

    async def show_status(self, view: StatusView) -> None:
        """Every ``status_interval``: read the observe numbers, hand the view the rows and
        observe's own summary lines (:func:`netkit.observe.render_status`)."""
        from ..observe import render_status

        before = read(self.obs, trio.current_time())
        try:
            while True:
                await trio.sleep(self.config.status_interval)
                after = read(self.obs, trio.current_time())
                view.show(self.rows(self.rates(before, after)), render_status(before, after))
                before = after
        finally:
            view.close()


def banner(up: Constellation, prog: str = "netkit") -> str:
    """What runs, and commands to paste into another terminal."""
    host = up.config.host
    assert up.balancer_server is not None and up.registry_server is not None
    port = up.balancer_server.port
    scheme = "https" if up.tls else "http"
    base = f"{scheme}://{host}:{port}"
    control = f"{scheme}://{host}:{up.registry_server.port}"
    order = (
        '{"customer_id": "alice", '
        '"items": [{"sku": "book", "quantity": 2, "unit_price_cents": 1250}]}'
    )
    get = "netkit.orders.v1.OrderService/GetOrder"
    lines = [
        f"netkit up: the orders system, {len(up.instances)} instances behind a balancer",
        "",
        f"  balancer  {base}   REST, gRPC and WebSocket (HTTP/1.1 and h2c)",
        f"  registry  {control}   gRPC netkit.registry.v1.Registry, REST /v1/services, /admin",
    ]
    for name, instance in up.instances.items():
        lines.append(f"  {name:<9} {scheme}://{host}:{instance.port}   TTL {up.config.ttl:g} s")
    lines += [
        "",
        "Try, from another terminal:",
        f"  curl -i -X POST {base}/v1/orders -H 'content-type: application/json' \\",
        f"       -H 'idempotency-key: demo-1' -d '{order}'",
        f"  curl {base}/v1/orders/ord-1",
        f"  curl '{base}/v1/orders?customer_id=alice&status=pending'",
        f"  curl -X PATCH {base}/v1/orders/ord-1 -H 'content-type: application/json' "
        f'-H \'if-match: "v1"\' -d \'{{"status": "confirmed"}}\'',
        f'  {prog} call grpc {host}:{port} {get} \'{{"id": "ord-1"}}\'',
        f"  {prog} call grpc {host}:{port} netkit.orders.v1.OrderService/StreamOrders '{{}}'",
        f"  {prog} call ws ws://{host}:{port}/v1/events --subscribe 'order.*'",
        f"  curl -X POST {control}/admin/instances/orders-2/kill   "
        f"# crash one: it leaves within the TTL",
        f"  curl {control}/admin/status",
        "",
        "Ctrl-C stops everything (the balancer drains first).",
        f"netkit up ready: balancer={host}:{port} registry={host}:{up.registry_server.port}",
    ]
    return "\n".join(lines)
