"""The embedded registry: the sans-I/O core, one expiry task and a snapshot file."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from ._backend import RegistryBackend
from ._core import RegistryCore
from ._hub import Hub, Watcher
from ._types import Change, Health, Instance, InstanceSpec, RegistryConfig, Snapshot

SNAPSHOT_VERSION = 1


class MemoryRegistry(RegistryBackend):
    """The default backend: state in this process, optionally kept across restarts.

    ``run`` loads ``snapshot_path`` (when it exists), serves, and on a clean exit
    (cancellation) writes the state back, with the time of writing: after a restart
    each instance keeps what was left of its TTL minus the downtime, so a service whose
    agent heartbeats again in time never notices the restart.
    """

    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        snapshot_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config or RegistryConfig()
        self.snapshot_path = Path(snapshot_path) if snapshot_path is not None else None
        self.core = RegistryCore(self.config)
        self._hub = self._new_hub()
        self._wake = trio.Event()
        self._sleeping_until = math.inf

    def _new_hub(self) -> Hub:
        return Hub(
            self.core.log,
            self.core.snapshot,
            lambda: self.core.revision,
            self.config.watch_queue_size,
        )

    # -- the long-lived task --------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire instances at their deadlines until cancelled; then save the snapshot."""
        if self.snapshot_path is not None and self.snapshot_path.exists():
            self._load(self.snapshot_path)
        try:
            task_status.started()
            while True:
                self._publish(self.core.expire(trio.current_time()))
                self._wake = trio.Event()
                deadline = self.core.next_deadline()
                self._sleeping_until = math.inf if deadline is None else deadline
                with trio.move_on_at(self._sleeping_until):
                    await self._wake.wait()
        finally:
            self._sleeping_until = math.inf
            if self.snapshot_path is not None:
                self._save(self.snapshot_path)

    def _publish(self, changes: list[Change]) -> None:
        self._hub.publish(changes)
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake.set()

    def _save(self, path: Path) -> None:
        data = self.core.dump(trio.current_time())
        data["version"] = SNAPSHOT_VERSION
        data["written_at"] = time.time()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)  # atomic: a crash mid-write leaves the old snapshot

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        if data.get("version") != SNAPSHOT_VERSION:
            return
        elapsed = max(0.0, time.time() - float(data["written_at"]))
        self.core = RegistryCore.load(
            data, trio.current_time(), elapsed=elapsed, config=self.config
        )
        self._hub = self._new_hub()

    # -- operations -------------------------------------------------------------------------
    async def register(self, spec: InstanceSpec, ttl: float | None = None) -> tuple[int, Instance]:
        self._publish(self.core.register(spec, trio.current_time(), ttl))
        instance = self.core.get(spec.service, spec.id)
        assert instance is not None
        return self.core.revision, instance

    async def heartbeat(self, service: str, instance_id: str, health: Health | None = None) -> int:
        self._publish(self.core.heartbeat(service, instance_id, trio.current_time(), health))
        return self.core.revision

    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        changes = self.core.deregister(service, instance_id)
        self._publish(changes)
        return self.core.revision, bool(changes)

    async def discover(
        self, service: str, *, healthy_only: bool = True, tags: Iterable[str] = ()
    ) -> tuple[int, list[Instance]]:
        return self.core.revision, self.core.discover(service, healthy_only=healthy_only, tags=tags)

    async def all_instances(self) -> tuple[int, list[Instance]]:
        return self.core.revision, self.core.instances()

    def snapshot(self, service: str | None = None) -> Snapshot:
        return self.core.snapshot(service)

    @asynccontextmanager
    async def watch(self, service: str | None = None, since: int = 0) -> AsyncIterator[Watcher]:
        async with self._hub.watch(service, since) as watcher:
            yield watcher

    async def wait_changed(self) -> None:
        await self._hub.wait_changed()

    @property
    def revision(self) -> int:
        return self.core.revision

    @property
    def preserving(self) -> bool:
        return self.core.preserving
