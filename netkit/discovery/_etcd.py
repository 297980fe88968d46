"""The etcd backend: the registry's state lives in etcd, so several registry processes
on one etcd cluster serve the same view.

Theory of operation
-------------------
etcd is reached through its v3 gRPC API with netkit's own channel (h2c). An instance is
two keys under ``prefix``:

* ``{prefix}i/{service}/{id}``: the registration (JSON), bound to a lease of
  ``ttl + deregister_critical_after`` seconds: when it runs out, etcd deletes the key and
  the instance is removed;
* ``{prefix}h/{service}/{id}``: the health (JSON), bound to a lease of ``ttl`` seconds:
  when it runs out the key goes and the instance is critical (Consul's TTL check, with
  etcd's lease expiry as the clock).

A heartbeat is a keep-alive of both leases on one LeaseKeepAlive stream (no write, no
new revision); a changed status, or a heartbeat after the health lease ran out, writes
the health key again under a new lease. etcd's lease TTLs are whole seconds (rounded
up) and etcd enforces a minimum (``1.5 * election timeout``).

Each registry process keeps a cache of the prefix, loaded with one Range and kept
current by one Watch from the next revision; revisions are etcd's. When the watch
breaks it resumes from the last revision seen; if etcd compacted past it, the cache is
reloaded, the differences are published as changes, and every watcher resyncs from a
snapshot. While etcd is unreachable the cache is not vouched for: reads raise
:class:`RegistryUnavailable` (gRPC UNAVAILABLE, HTTP 503) instead of serving stale
data as fresh.

Self-preservation is not offered on this backend: lease expiry is etcd's, and etcd
itself extends every lease when a new leader takes over.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..grpc import Channel, ChannelConfig, GRPCError, StatusCode, open_channel
from ..protos.etcd.v3 import etcd_pb2 as epb
from ..protos.etcd.v3.etcd_netkit import KVStub, LeaseStub, WatchStub
from ._backend import RegistryBackend
from ._convert import as_spec
from ._hub import Hub, Watcher
from ._log import ChangeLog
from ._types import (
    Address,
    Change,
    ChangeKind,
    Health,
    Instance,
    InstanceNotFound,
    InstanceSpec,
    Metadata,
    RegistryBackendError,
    RegistryConfig,
    RegistryUnavailable,
    Snapshot,
)

Key = tuple[str, str]
#: How the registry's channel to etcd retries (etcd restarts should be noticed quickly).
ETCD_CHANNEL = ChannelConfig(backoff_initial=0.05, backoff_max=1.0, connect_timeout=2.0)
#: Deadline of one call to etcd.
CALL_TIMEOUT = 5.0
#: etcd answers that mean "not now" (no leader, overloaded, down, too slow): the registry
#: is unavailable. Any other status is a refusal that retrying will not fix.
TRANSIENT = frozenset(
    {
        StatusCode.UNAVAILABLE,
        StatusCode.DEADLINE_EXCEEDED,
        StatusCode.RESOURCE_EXHAUSTED,
        StatusCode.ABORTED,
        StatusCode.CANCELLED,
        StatusCode.UNKNOWN,
    }
)


def _prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class EtcdRegistry(RegistryBackend):
    """``EtcdRegistry("127.0.0.1", 2379, prefix="/netkit/registry/")``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = "/netkit/registry/",
        config: RegistryConfig | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.prefix = prefix.encode()
        self.config = config or RegistryConfig()
        self._registrations: dict[Key, tuple[dict[str, Any], int]] = {}
        self._health: dict[Key, tuple[Health, float, int]] = {}
        self._revision = 0
        self._synced = False
        self._log = ChangeLog(self.config.change_log_size)
        self._hub = Hub(
            self._log, self.snapshot, lambda: self._revision, self.config.watch_queue_size
        )
        self._channel: Channel | None = None
        self._keepalive_lock = trio.Lock()
        self._keepalive_call: Any = None
        self._keepalive_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._offset = 0.0

    # -- keys and values ------------------------------------------------------------------
    def _key(self, kind: str, service: str, instance_id: str) -> bytes:
        return self.prefix + f"{kind}/{service}/{instance_id}".encode()

    def _parse_key(self, key: bytes) -> tuple[str, Key] | None:
        rest = key[len(self.prefix) :].decode(errors="replace")
        kind, _, name = rest.partition("/")
        service, _, instance_id = name.partition("/")
        if kind not in ("i", "h") or not service or not instance_id:
            return None
        return kind, (service, instance_id)

    def _instance(self, key: Key) -> Instance | None:
        registration = self._registrations.get(key)
        if registration is None:
            return None
        data, _ = registration
        health = self._health.get(key)
        address, metadata = data["address"], data["metadata"]
        to_clock = time.time() - trio.current_time()
        return Instance(
            service=key[0],
            id=key[1],
            address=Address(address["host"], address["port"], tuple(address["protocols"])),
            metadata=Metadata(
                metadata["version"], metadata["zone"], metadata["weight"], tuple(metadata["tags"])
            ),
            health=health[0] if health else Health.CRITICAL,
            registered_at=data["registered_at"] - to_clock,
            last_heartbeat=(health[1] if health else data["registered_at"]) - to_clock,
            ttl=float(data["ttl"]),
        )

    # -- the long-lived task --------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with (
            open_channel(self.host, self.port, config=ETCD_CHANNEL) as channel,
            trio.open_nursery() as nursery,
        ):
            self._channel, self._nursery = channel, nursery
            try:
                await self._load(channel)
                task_status.started()
                await self._follow(channel)
            finally:
                self._synced = False
                self._channel = self._nursery = None
                self._keepalive_call = None
                self._hub.fail_all(RegistryUnavailable("the etcd registry stopped"))

    async def _load(self, channel: Channel) -> None:
        """Read the whole prefix; after a first load, every watcher resyncs."""
        reply = await KVStub(channel).Range(
            epb.RangeRequest(key=self.prefix, range_end=_prefix_end(self.prefix)),
            timeout=CALL_TIMEOUT,
        )
        self._registrations.clear()
        self._health.clear()
        for kv in reply.kvs:
            self._apply_kv(kv, deleted=False)
        reload = self._revision != 0
        self._revision = max(self._revision, reply.header.revision)
        self._log.reset(self._revision)
        if reload:
            self._hub.resync_all()
        self._synced = True

    async def _follow(self, channel: Channel) -> None:
        """Apply etcd's watch events forever; resume (or reload) after any break."""
        backoff = 0.05
        while True:
            try:
                await self._watch_once(channel)
            except* GRPCError:
                pass
            self._synced = False
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
            try:
                await self._load(channel)
                backoff = 0.05
            except GRPCError as exc:
                # etcd is unreachable, not just one broken stream: open watches end with
                # UNAVAILABLE now (their clients resume later) rather than going quiet.
                self._hub.fail_all(RegistryUnavailable(f"etcd is unreachable: {exc}"))
                continue

    async def _watch_once(self, channel: Channel) -> None:
        async with WatchStub(channel).Watch() as call:
            await call.send_message(
                epb.WatchRequest(
                    create_request=epb.WatchCreateRequest(
                        key=self.prefix,
                        range_end=_prefix_end(self.prefix),
                        start_revision=self._revision + 1,
                        progress_notify=True,
                    )
                )
            )
            async for reply in call:
                if reply.canceled or reply.compact_revision:
                    return  # compacted past us: the caller reloads
                if reply.created:
                    self._synced = True
                    continue
                changes: list[Change] = []
                # One revision (a transaction) may touch both keys of an instance: diff
                # each instance once per revision.
                for revision, group in itertools.groupby(
                    reply.events, key=lambda e: e.kv.mod_revision
                ):
                    before: dict[Key, Instance | None] = {}
                    for event in group:
                        parsed = self._parse_key(event.kv.key)
                        if parsed is None:
                            continue
                        before.setdefault(parsed[1], self._instance(parsed[1]))
                        self._apply_kv(event.kv, deleted=event.type == epb.Event.DELETE)
                    for key, old in before.items():
                        changes.extend(self._diff(key, old, revision))
                self._revision = max(self._revision, reply.header.revision)
                for change in changes:
                    self._log.append(change)
                self._hub.publish(changes)
            raise GRPCError(StatusCode.UNAVAILABLE, "etcd ended the watch")

    def _apply_kv(self, kv: epb.KeyValue, *, deleted: bool) -> None:
        parsed = self._parse_key(kv.key)
        if parsed is None:
            return
        kind, key = parsed
        if kind == "i":
            if deleted:
                self._registrations.pop(key, None)
            else:
                self._registrations[key] = (json.loads(kv.value), kv.lease)
        elif deleted:
            self._health.pop(key, None)
        else:
            data = json.loads(kv.value)
            self._health[key] = (Health(data["health"]), float(data["at"]), kv.lease)

    def _diff(self, key: Key, before: Instance | None, revision: int) -> list[Change]:
        after = self._instance(key)
        if after is None:
            return [] if before is None else [Change(revision, ChangeKind.REMOVED, before)]
        if before is None:
            return [Change(revision, ChangeKind.ADDED, after)]
        if before.same_state(after):
            return []
        if before.health is not after.health and attrs_equal_but_health(before, after):
            return [Change(revision, ChangeKind.HEALTH, after)]
        return [Change(revision, ChangeKind.UPDATED, after)]

    # -- etcd calls -----------------------------------------------------------------------
    def _require_channel(self) -> Channel:
        if self._channel is None:
            raise RegistryUnavailable("the etcd registry is not running")
        return self._channel

    @asynccontextmanager
    async def _etcd(self) -> AsyncIterator[Channel]:
        channel = self._require_channel()
        try:
            yield channel
        except GRPCError as exc:
            if exc.code in TRANSIENT:
                raise RegistryUnavailable(f"etcd is unavailable: {exc}") from exc
            raise RegistryBackendError(f"etcd refused the operation: {exc}") from exc

    async def _grant(self, channel: Channel, ttl: float) -> int:
        reply = await LeaseStub(channel).LeaseGrant(
            epb.LeaseGrantRequest(TTL=max(1, math.ceil(ttl))), timeout=CALL_TIMEOUT
        )
        return reply.ID

    async def _keep_alive(self, channel: Channel, lease: int) -> bool:
        """Renew ``lease`` on the shared keep-alive stream; False when it is gone."""
        async with self._keepalive_lock:
            for _ in range(2):
                if self._keepalive_call is None:
                    self._keepalive_call = await self._open_keepalive(channel)
                call = self._keepalive_call
                try:
                    with trio.fail_after(CALL_TIMEOUT):
                        await call.send_message(epb.LeaseKeepAliveRequest(ID=lease))
                        reply = await call.recv_message()
                except (GRPCError, trio.TooSlowError):
                    reply = None
                if reply is not None:
                    return bool(reply.TTL > 0)
                self._keepalive_call = None  # broken: one more try on a new stream
        raise GRPCError(StatusCode.UNAVAILABLE, "etcd lease keep-alive failed")

    async def _open_keepalive(self, channel: Channel) -> Any:
        """A LeaseKeepAlive stream held open by a task in the registry's nursery."""
        if self._nursery is None:
            raise RegistryUnavailable("the etcd registry is not running")
        if self._keepalive_scope is not None:
            self._keepalive_scope.cancel()  # the broken one
        holder: list[Any] = []

        async def hold(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self._keepalive_scope = scope
                async with LeaseStub(channel).LeaseKeepAlive() as call:
                    holder.append(call)
                    task_status.started()
                    await trio.sleep_forever()

        await self._nursery.start(hold)
        return holder[0]

    # -- operations -----------------------------------------------------------------------
    async def register(self, spec: InstanceSpec, ttl: float | None = None) -> tuple[int, Instance]:
        ttl = max(1, math.ceil(self.config.check_ttl(ttl)))
        key = (spec.service, spec.id)
        now = time.time()
        value = {
            "address": {
                "host": spec.address.host,
                "port": spec.address.port,
                "protocols": list(spec.address.protocols),
            },
            "metadata": {
                "version": spec.metadata.version,
                "zone": spec.metadata.zone,
                "weight": spec.metadata.weight,
                "tags": list(spec.metadata.tags),
            },
            "registered_at": self._registrations[key][0]["registered_at"]
            if key in self._registrations
            else now,
            "ttl": ttl,
        }
        async with self._etcd() as channel:
            lease_i = await self._grant(channel, ttl + self.config.deregister_critical_after)
            lease_h = await self._grant(channel, ttl)
            reply = await KVStub(channel).Txn(
                epb.TxnRequest(
                    success=[
                        self._put("i", key, value, lease_i),
                        self._put("h", key, {"health": int(spec.health), "at": now}, lease_h),
                    ]
                ),
                timeout=CALL_TIMEOUT,
            )
            await self._revoke_old(channel, key, keep=(lease_i, lease_h))
        revision = reply.header.revision
        await self._wait_for(revision)
        instance = self._instance(key)
        assert instance is not None
        return revision, instance

    def _put(self, kind: str, key: Key, value: dict[str, Any], lease: int) -> epb.RequestOp:
        return epb.RequestOp(
            request_put=epb.PutRequest(
                key=self._key(kind, *key), value=json.dumps(value).encode(), lease=lease
            )
        )

    async def _revoke_old(self, channel: Channel, key: Key, keep: tuple[int, ...]) -> None:
        old = [self._registrations.get(key, ({}, 0))[1], self._health.get(key, (0, 0, 0))[2]]
        for lease in old:
            if lease and lease not in keep:
                try:
                    await LeaseStub(channel).LeaseRevoke(
                        epb.LeaseRevokeRequest(ID=lease), timeout=CALL_TIMEOUT
                    )
                except GRPCError as exc:
                    if exc.code is not StatusCode.NOT_FOUND:
                        raise

    async def _wait_for(self, revision: int) -> None:
        """Until the cache has seen ``revision`` (read-your-writes through the watch)."""
        with trio.move_on_after(CALL_TIMEOUT):
            while self._revision < revision:
                await self._hub.wait_changed()

    async def _lookup(self, channel: Channel, key: Key) -> tuple[dict[str, Any], int] | None:
        if key in self._registrations:
            return self._registrations[key]
        # Perhaps registered through another registry process a moment ago.
        reply = await KVStub(channel).Range(
            epb.RangeRequest(key=self._key("i", *key)), timeout=CALL_TIMEOUT
        )
        if not reply.kvs:
            return None
        return json.loads(reply.kvs[0].value), reply.kvs[0].lease

    async def heartbeat(self, service: str, instance_id: str, health: Health | None = None) -> int:
        key = (service, instance_id)
        health = health or Health.PASSING
        async with self._etcd() as channel:
            registration = await self._lookup(channel, key)
            if registration is None or not await self._keep_alive(channel, registration[1]):
                raise InstanceNotFound(f"{service}/{instance_id} is not registered")
            data, _ = registration
            current = self._health.get(key)
            if (
                current is not None
                and current[0] is health
                and await self._keep_alive(channel, current[2])
            ):
                return self._revision
            lease_h = await self._grant(channel, data["ttl"])
            reply = await KVStub(channel).Put(
                epb.PutRequest(
                    key=self._key("h", *key),
                    value=json.dumps({"health": int(health), "at": time.time()}).encode(),
                    lease=lease_h,
                ),
                timeout=CALL_TIMEOUT,
            )
            if current is not None and current[2] != lease_h:
                await self._revoke_old(channel, key, keep=(registration[1], lease_h))
        await self._wait_for(reply.header.revision)
        return reply.header.revision

    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        key = (service, instance_id)
        async with self._etcd() as channel:
            reply = await KVStub(channel).Txn(
                epb.TxnRequest(
                    success=[
                        epb.RequestOp(
                            request_delete_range=epb.DeleteRangeRequest(key=self._key("i", *key))
                        ),
                        epb.RequestOp(
                            request_delete_range=epb.DeleteRangeRequest(key=self._key("h", *key))
                        ),
                    ]
                ),
                timeout=CALL_TIMEOUT,
            )
            await self._revoke_old(channel, key, keep=())
        existed = reply.responses[0].response_delete_range.deleted > 0
        await self._wait_for(reply.header.revision)
        return reply.header.revision, existed

    def _vouch(self) -> None:
        if not self._synced:
            raise RegistryUnavailable("etcd is unreachable: the registry's view may be stale")

    async def discover(
        self, service: str, *, healthy_only: bool = True, tags: Iterable[str] = ()
    ) -> tuple[int, list[Instance]]:
        self._vouch()
        tags = tuple(tags)
        found = [
            i
            for i in self.snapshot(service).instances
            if (i.healthy or not healthy_only) and i.has_tags(tags)
        ]
        return self._revision, found

    async def all_instances(self) -> tuple[int, list[Instance]]:
        self._vouch()
        return self._revision, list(self.snapshot().instances)

    def snapshot(self, service: str | None = None) -> Snapshot:
        keys = sorted(k for k in self._registrations if service is None or k[0] == service)
        instances = [self._instance(k) for k in keys]
        return Snapshot(self._revision, tuple(i for i in instances if i is not None))

    @asynccontextmanager
    async def watch(self, service: str | None = None, since: int = 0) -> AsyncIterator[Watcher]:
        self._vouch()
        async with self._hub.watch(service, since) as watcher:
            yield watcher

    async def wait_changed(self) -> None:
        await self._hub.wait_changed()

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def available(self) -> bool:
        """False while the registry cannot vouch for its view (etcd unreachable)."""
        return self._synced


def attrs_equal_but_health(a: Instance, b: Instance) -> bool:
    return as_spec(a).address == as_spec(b).address and a.metadata == b.metadata and a.ttl == b.ttl
