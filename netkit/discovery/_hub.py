"""Watch fan-out: every watcher has a bounded queue; a full queue forces a resync.

The registry publishes changes synchronously (``publish`` never waits), so a slow watcher
cannot hold the registry up. When a watcher's queue is full its backlog is dropped and
its next event is a :class:`Snapshot` at the then-current revision: the watcher ends up
with the same state as if it had read every change, and memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import trio

from ._log import ChangeLog
from ._types import Change, Snapshot, WatchEvent


class Watcher:
    """One watch: an async iterator of :data:`WatchEvent` (a snapshot or a change)."""

    def __init__(self, hub: Hub, service: str | None, first: list[WatchEvent] | None) -> None:
        self._hub = hub
        self.service = service
        self._queue: deque[WatchEvent] = deque(first or ())
        self._resync = first is None
        self._wakeup = trio.Event()
        self._error: Exception | None = None
        #: How many times this watcher's backlog overflowed into a snapshot.
        self.resyncs = 0

    def _push(self, change: Change) -> None:
        if self._error is not None:
            return
        if self.service is not None and change.instance.service != self.service:
            return
        if self._resync:
            return  # the coming snapshot includes it
        if len(self._queue) >= self._hub.queue_size:
            self._queue.clear()
            self._resync = True
            self.resyncs += 1
        else:
            self._queue.append(change)
        self._wakeup.set()

    def _force_resync(self) -> None:
        self._queue.clear()
        self._resync = True
        self._wakeup.set()

    def _fail(self, error: Exception) -> None:
        self._queue.clear()
        self._error = error
        self._wakeup.set()

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._error is not None:
                raise self._error
            if self._resync:
                self._resync = False
                return self._hub.snapshot(self.service)
            if self._queue:
                return self._queue.popleft()
            self._wakeup = trio.Event()
            await self._wakeup.wait()


class Hub:
    """The watchers of one registry, its change log, and waiters for a revision."""

    def __init__(
        self,
        log: ChangeLog,
        snapshot: Callable[[str | None], Snapshot],
        revision: Callable[[], int],
        queue_size: int,
    ) -> None:
        self.log = log
        self.revision = revision
        self.snapshot = snapshot
        self.queue_size = queue_size
        self._watchers: set[Watcher] = set()
        self._changed = trio.Event()

    def publish(self, changes: Iterable[Change]) -> None:
        any_change = False
        for change in changes:
            any_change = True
            for watcher in self._watchers:
                watcher._push(change)
        if any_change:
            self._changed.set()
            self._changed = trio.Event()

    def resync_all(self) -> None:
        """Every watcher starts again from a snapshot (e.g. after etcd compacted)."""
        for watcher in self._watchers:
            watcher._force_resync()
        self._changed.set()
        self._changed = trio.Event()

    def fail_all(self, error: Exception) -> None:
        """End every watch with ``error`` (e.g. the registry lost etcd) instead of letting
        it go quiet; blocked queries wake up and find out for themselves."""
        for watcher in self._watchers:
            watcher._fail(error)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Return at the next published change."""
        await self._changed.wait()

    @asynccontextmanager
    async def watch(self, service: str | None = None, since: int = 0) -> AsyncIterator[Watcher]:
        """Changes after revision ``since`` (or a snapshot first: ``since=0`` or too old)."""
        first: list[WatchEvent] | None = None
        # A revision from the future comes from another incarnation of the registry.
        if 0 < since <= self.revision():
            missed = self.log.since(since)
            if missed is not None:
                first = [c for c in missed if service is None or c.instance.service == service]
        watcher = Watcher(self, service, first)
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)
