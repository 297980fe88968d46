"""The interface every registry backend implements (memory, etcd).

The gRPC and REST faces and the tests are written against :class:`RegistryBackend`
only, so the same behaviour tests run against both backends.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

import trio

from ._hub import Watcher
from ._types import Health, Instance, InstanceSpec, RegistryConfig


class RegistryBackend(abc.ABC):
    """A registry: long-lived (``await nursery.start(registry.run)``), watched by revision."""

    config: RegistryConfig

    @abc.abstractmethod
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``task_status.started()`` once operations are served."""

    @abc.abstractmethod
    async def register(self, spec: InstanceSpec, ttl: float | None = None) -> tuple[int, Instance]:
        """Add or replace an instance; returns the revision and the instance."""

    @abc.abstractmethod
    async def heartbeat(self, service: str, instance_id: str, health: Health | None = None) -> int:
        """Keep an instance alive; raises :class:`InstanceNotFound` when it is unknown."""

    @abc.abstractmethod
    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        """Remove an instance; returns the revision and whether it existed."""

    @abc.abstractmethod
    async def discover(
        self, service: str, *, healthy_only: bool = True, tags: Iterable[str] = ()
    ) -> tuple[int, list[Instance]]:
        """The instances of ``service`` (not critical ones, by default) and the revision."""

    @abc.abstractmethod
    async def all_instances(self) -> tuple[int, list[Instance]]:
        """Every instance of every service, healthy or not, and the revision."""

    @abc.abstractmethod
    def watch(
        self, service: str | None = None, since: int = 0
    ) -> AbstractAsyncContextManager[Watcher]:
        """``async with registry.watch("orders", since=r) as events: async for e in events``."""

    @abc.abstractmethod
    async def wait_changed(self) -> None:
        """Return at the next change (for blocking queries)."""

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The revision of the latest change this registry has seen."""

    @property
    def preserving(self) -> bool:
        """True while self-preservation suspends expiry."""
        return False

    def to_unix(self, t: float) -> float:
        """A registry-clock time as a Unix time (for the network faces)."""
        return t + (time.time() - trio.current_time())
