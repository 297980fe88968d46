"""Active health checks: one long-lived task per backend, probing on an interval.

The verdict logic is sans-I/O (:class:`HealthCounter`: consecutive results against
the healthy/unhealthy thresholds); the task is a short loop: probe within
``timeout``, count, report a change, sleep ``interval`` with jitter. Probes:

* ``tcp``: a TCP connect succeeds;
* ``http``: ``GET path`` answers ``expected_status`` (over HTTP/2 prior knowledge or
  HTTP/1.1, as the backend is spoken to);
* ``grpc``: ``grpc.health.v1.Health/Check`` for ``grpc_service`` answers SERVING,
  over one netkit channel kept for the checker's lifetime.

A backend starts healthy (a static list works at once) and its first check runs
immediately; while no check has passed yet a single failure marks it unhealthy
(Envoy treats a host that never passed the same way), afterwards it takes
``unhealthy_threshold`` consecutive failures, and ``healthy_threshold`` consecutive
successes to come back.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import trio
from attrs import validators as v

from ..errors import NetkitError
from ._backend import Backend
from ._h1client import H1ClientConnection
from ._pool import ConnectFailed, open_tcp

Probe = Callable[[], Awaitable[bool]]


@attrs.frozen(kw_only=True)
class HealthCheckConfig:
    """What to probe and how often (defaults: TCP every 5 s +-10%, 1 s timeout, 3/2)."""

    kind: str = attrs.field(default="tcp", validator=v.in_(("tcp", "http", "grpc")))
    path: str = "/healthz"
    expected_status: int = 200
    grpc_service: str = ""
    interval: float = attrs.field(default=5.0, validator=v.gt(0))
    #: Each wait is ``interval x (1 +- jitter)``, so checkers do not probe in step.
    jitter: float = attrs.field(default=0.1, validator=[v.ge(0), v.lt(1)])
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    unhealthy_threshold: int = attrs.field(default=3, validator=v.ge(1))
    healthy_threshold: int = attrs.field(default=2, validator=v.ge(1))


@attrs.define
class HealthCounter:
    """Consecutive results against the thresholds; ``record`` returns a changed verdict."""

    config: HealthCheckConfig
    healthy: bool = True
    ever_passed: bool = False
    _streak: int = 0  # consecutive results that disagree with the current verdict

    def record(self, ok: bool) -> bool | None:
        """Count one probe; the new verdict if it changed, else None."""
        if ok:
            self.ever_passed = True
        if ok == self.healthy:
            self._streak = 0
            return None
        self._streak += 1
        needed = self.config.healthy_threshold if ok else self.config.unhealthy_threshold
        if not ok and not self.ever_passed:
            needed = 1
        if self._streak < needed:
            return None
        self.healthy = ok
        self._streak = 0
        return ok


@asynccontextmanager
async def open_probe(backend: Backend, config: HealthCheckConfig) -> AsyncIterator[Probe]:
    """The probe of ``config.kind`` for ``backend`` (with its connection, for gRPC)."""
    if config.kind == "grpc":
        from ..grpc import GRPCError, open_channel
        from ..protos.grpc_health.v1 import health_pb2
        from ..protos.grpc_health.v1.health_netkit import HealthStub

        async with open_channel(backend.host, backend.port) as channel:
            stub = HealthStub(channel)

            async def grpc_probe() -> bool:
                request = health_pb2.HealthCheckRequest(service=config.grpc_service)
                try:
                    reply = await stub.Check(request, timeout=config.timeout)
                except GRPCError:
                    return False
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            yield grpc_probe
        return

    async def tcp_probe() -> bool:
        try:
            stream = await open_tcp(backend, config.timeout)
        except ConnectFailed:
            return False
        await trio.aclose_forcefully(stream)
        return True

    async def http_probe() -> bool:
        try:
            return await _http_get(backend, config) == config.expected_status
        except (NetkitError, OSError):
            return False

    yield http_probe if config.kind == "http" else tcp_probe


async def _http_get(backend: Backend, config: HealthCheckConfig) -> int:
    if backend.protocol == "h2":
        from ..http import ClientConfig, H2ClientConnection

        client = ClientConfig(connect_timeout=config.timeout)
        async with H2ClientConnection.connect(backend.host, backend.port, config=client) as conn:
            status, _headers, _body = await conn.request(
                "GET", config.path, [("user-agent", "netkit-health")]
            )
            return status
    conn1 = H1ClientConnection(await open_tcp(backend, config.timeout))
    try:
        host = backend.address.encode()
        headers = [(b"host", host), (b"user-agent", b"netkit-health"), (b"connection", b"close")]
        await conn1.send_head("GET", config.path, headers)
        await conn1.end()
        status, _ = await conn1.receive_head()
        return status
    finally:
        await conn1.aclose()


async def run_health_checks(
    backend: Backend,
    config: HealthCheckConfig,
    report: Callable[[Backend, bool], None],
    *,
    probe: Probe | None = None,
    rng: random.Random | None = None,
) -> None:
    """Probe ``backend`` forever, calling ``report`` whenever the verdict changes.

    ``probe`` replaces the configured one (tests). Cancel the task to stop checking.
    """
    rng = rng or random.Random()
    counter = HealthCounter(config)
    if probe is not None:
        await _check_loop(backend, config, counter, report, probe, rng)
        return
    async with open_probe(backend, config) as made:
        await _check_loop(backend, config, counter, report, made, rng)


async def _check_loop(
    backend: Backend,
    config: HealthCheckConfig,
    counter: HealthCounter,
    report: Callable[[Backend, bool], None],
    probe: Probe,
    rng: random.Random,
) -> None:
    while True:
        ok = False
        with trio.move_on_after(config.timeout):
            ok = await probe()
        changed = counter.record(ok)
        if changed is not None:
            report(backend, changed)
        await trio.sleep(config.interval * (1 + rng.uniform(-config.jitter, config.jitter)))
