"""Client side: the registration agent and the discovery client (a cache fed by Watch).

Both are long-lived components (``await nursery.start(x.run)``) that open their own
gRPC channel to the registry, so they outlive registry restarts: a broken stream is
retried with capped exponential backoff, the agent registers its instances again when
the registry no longer knows them, and the discovery client resumes its watch from the
last revision it applied (getting a snapshot when the registry cannot replay).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import trio

from ..grpc import ClientInterceptor, GRPCError, StatusCode, open_channel
from ..protos.registry.v1 import registry_pb2 as pb
from ..protos.registry.v1.registry_netkit import RegistryStub
from ._convert import event_from_pb, spec_to_pb
from ._service import MAX_REGISTER_MANY
from ._types import Change, ChangeKind, Health, Instance, InstanceSpec, Snapshot

T = TypeVar("T")

#: RegisterMany calls in flight at once while an agent starts.
BATCHES_IN_FLIGHT = 4

#: Backoff between reconnection attempts: first delay and cap (seconds).
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0


class RegistrationAgent:
    """Keeps instances registered: register, heartbeat at TTL/3, deregister on exit.

    All instances share one KeepAlive stream (one heartbeat message per instance per
    interval). Instances are registered in RegisterMany batches of ``batch_size``
    (falling back to one Register call each, ``concurrency`` at a time, with a registry
    that lacks RegisterMany); deregistrations on exit run ``concurrency`` at a time. So an
    agent holding thousands of instances starts in a fraction of the time one call after
    another would take. ``run`` returns ``task_status.started()`` once every instance is
    registered; when cancelled it deregisters them (shielded, at most
    ``deregister_timeout`` seconds), so a service that exits cleanly disappears at once
    and one that crashes disappears after its TTL.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *specs: InstanceSpec,
        ttl: float = 10.0,
        deregister_timeout: float = 2.0,
        concurrency: int = 64,
        batch_size: int = 500,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        if not specs:
            raise ValueError("an agent needs at least one instance")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.host, self.port = host, port
        #: How the channel reaches a secured registry: TLS (a client certificate in the
        #: context for mTLS) and credentials (``[CallCredentials(BearerToken(...))]``).
        self.channel_options = _channel_options(ssl_context, server_hostname, interceptors)
        self.specs = {(s.service, s.id): s for s in specs}
        self.ttl = ttl
        self.interval = ttl / 3
        self.deregister_timeout = deregister_timeout
        #: Register and deregister calls in flight at once (HTTP/2 streams on one
        #: connection; below the server's default of 100 concurrent streams).
        self.concurrency = concurrency
        self._registered: set[tuple[str, str]] = set()
        #: Instances per RegisterMany call (at most MAX_REGISTER_MANY, 1,000); 0: one
        #: Register call per instance.
        if batch_size < 0:
            raise ValueError("batch_size must not be negative")
        self.batch_size = min(batch_size, MAX_REGISTER_MANY)
        self._batches = True  # until the registry answers UNIMPLEMENTED
        self._health: dict[tuple[str, str], Health] = {}
        #: Counters for tests and monitoring.
        self.registrations = 0
        self.heartbeats = 0
        self.reconnects = 0

    def set_health(self, service: str, instance_id: str, health: Health) -> None:
        """Reported with the next heartbeat (e.g. WARNING while degraded)."""
        self._health[(service, instance_id)] = health

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with open_channel(self.host, self.port, **self.channel_options) as channel:
                stub = RegistryStub(channel)
                backoff = BACKOFF_INITIAL
                while True:
                    failed = False
                    try:
                        await self._register_all(stub)
                    except* GRPCError:
                        failed = True
                    if not failed:
                        break
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                task_status.started()
                await self._keep_alive_forever(stub)
        finally:
            with trio.move_on_after(self.deregister_timeout) as scope:
                scope.shield = True
                await self._deregister_all()

    async def _register_all(self, stub: RegistryStub) -> None:
        """Register every instance not yet registered (after a failure, a retry sends only
        the ones still missing): in RegisterMany batches of ``batch_size``, or, with a
        registry that predates RegisterMany, one Register call each, ``concurrency`` calls
        at a time."""
        missing = [spec for key, spec in self.specs.items() if key not in self._registered]
        if len(missing) > 1 and self._batches and self.batch_size:
            batches = [
                missing[i : i + self.batch_size] for i in range(0, len(missing), self.batch_size)
            ]
            try:
                await each_concurrently(
                    batches, lambda batch: self._register_many(stub, batch), BATCHES_IN_FLIGHT
                )
                return
            except* GRPCError as group:
                unimplemented = all(
                    isinstance(e, GRPCError) and e.code is StatusCode.UNIMPLEMENTED
                    for e in group.exceptions
                )
                if not unimplemented:
                    raise
                self._batches = False
            missing = [spec for key, spec in self.specs.items() if key not in self._registered]
        await each_concurrently(missing, lambda spec: self._register(stub, spec), self.concurrency)

    async def _register_many(self, stub: RegistryStub, batch: list[InstanceSpec]) -> None:
        await stub.RegisterMany(
            pb.RegisterManyRequest(
                registrations=[
                    pb.RegisterRequest(instance=spec_to_pb(spec), ttl=self.ttl) for spec in batch
                ]
            ),
            timeout=self.ttl,
        )
        self._registered.update((spec.service, spec.id) for spec in batch)
        self.registrations += len(batch)

    async def _register(self, stub: RegistryStub, spec: InstanceSpec) -> None:
        await stub.Register(
            pb.RegisterRequest(instance=spec_to_pb(spec), ttl=self.ttl), timeout=self.ttl
        )
        self._registered.add((spec.service, spec.id))
        self.registrations += 1

    async def _keep_alive_forever(self, stub: RegistryStub) -> None:
        backoff = BACKOFF_INITIAL
        while True:
            failed = False
            try:
                await self._keep_alive(stub)
            except* GRPCError:  # from the stream's task group
                failed = True
            if failed:
                self.reconnects += 1
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX, self.interval)
            else:
                backoff = BACKOFF_INITIAL

    async def _keep_alive(self, stub: RegistryStub) -> None:
        async with stub.KeepAlive() as call, trio.open_nursery() as nursery:

            async def answers() -> None:
                async for answer in call:
                    if not answer.found:
                        spec = self.specs.get((answer.service, answer.id))
                        if spec is not None:
                            nursery.start_soon(self._register, stub, spec)
                raise GRPCError(call.code or StatusCode.UNAVAILABLE, "keep-alive stream ended")

            nursery.start_soon(answers)
            while True:
                # A period, not a pause: sending 10,000 heartbeats takes a while, and
                # sleeping a full interval after them would stretch the cycle.
                next_round = trio.current_time() + self.interval
                for key in self.specs:
                    health = self._health.get(key, Health.PASSING)
                    await call.send_message(
                        pb.HeartbeatRequest(service=key[0], id=key[1], health=int(health))  # type: ignore[arg-type]
                    )
                    self.heartbeats += 1
                await trio.sleep_until(next_round)

    async def _deregister_all(self) -> None:
        async with open_channel(self.host, self.port, **self.channel_options) as channel:
            stub = RegistryStub(channel)

            async def deregister(key: tuple[str, str]) -> None:
                await stub.Deregister(
                    pb.DeregisterRequest(service=key[0], id=key[1]),
                    timeout=self.deregister_timeout,
                )

            try:
                await each_concurrently(list(self.specs), deregister, self.concurrency)
            except* GRPCError:
                pass  # the registry is gone: the TTL will remove them


def _channel_options(
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    interceptors: Sequence[ClientInterceptor],
) -> dict[str, Any]:
    """``open_channel`` keywords for a registry behind TLS and/or authentication."""
    return {
        "ssl_context": ssl_context,
        "server_hostname": server_hostname,
        "interceptors": tuple(interceptors),
    }


async def each_concurrently(
    items: list[T], call: Callable[[T], Awaitable[object]], limit: int
) -> None:
    """``await call(item)`` for every item, ``limit`` at a time (a pool of workers taking
    from one iterator, not a task per item); the first failure cancels the rest."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await call(item)

    async with trio.open_nursery() as nursery:
        for _ in range(min(limit, len(items))):
            nursery.start_soon(worker)


class DiscoveryClient:
    """A local, always-current copy of the registry (or of one service), fed by Watch.

    ``run`` returns ``task_status.started()`` once the first snapshot is in. Reads
    (:meth:`instances`) never touch the network. ``revision`` is the last revision
    applied; after a disconnection the watch resumes from it, so no change is missed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        service: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        self.host, self.port = host, port
        self.channel_options = _channel_options(ssl_context, server_hostname, interceptors)
        self.service = service
        self.revision = 0
        self._instances: dict[tuple[str, str], Instance] = {}
        self._changed = trio.Event()
        #: Watch streams re-opened after a failure.
        self.reconnects = 0
        self._listeners: list[Callable[[Change | Snapshot], None]] = []

    def instances(
        self, service: str, *, healthy_only: bool = True, tags: Iterable[str] = ()
    ) -> list[Instance]:
        tags = tuple(tags)
        return sorted(
            (
                i
                for i in self._instances.values()
                if i.service == service and (i.healthy or not healthy_only) and i.has_tags(tags)
            ),
            key=lambda i: i.id,
        )

    def on_event(self, listener: Callable[[Change | Snapshot], None]) -> None:
        """Call ``listener`` (synchronously) with every event applied to the cache."""
        self._listeners.append(listener)

    async def wait_changed(self) -> None:
        """Return after the next event is applied."""
        await self._changed.wait()

    async def wait_until(self, predicate: Callable[[DiscoveryClient], bool]) -> None:
        while not predicate(self):
            await self.wait_changed()

    def apply(self, event: Change | Snapshot) -> None:
        if isinstance(event, Snapshot):
            self._instances = {i.key: i for i in event.instances}
        elif event.kind is ChangeKind.REMOVED:
            self._instances.pop(event.instance.key, None)
        else:
            self._instances[event.instance.key] = event.instance
        self.revision = max(self.revision, event.revision)
        for listener in self._listeners:
            listener(event)
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        backoff = BACKOFF_INITIAL
        async with open_channel(self.host, self.port, **self.channel_options) as channel:
            stub = RegistryStub(channel)
            while True:
                request = pb.WatchRequest(service=self.service or "", since_revision=self.revision)
                try:
                    async with stub.Watch(request) as call:
                        async for message in call:
                            self.apply(event_from_pb(message))
                            backoff = BACKOFF_INITIAL
                            if not started:
                                started = True
                                task_status.started()
                except* GRPCError:
                    pass
                self.reconnects += 1
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
