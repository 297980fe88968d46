"""The registry's state machine: sans-I/O, driven by the caller's clock.

Theory of operation
-------------------
Every operation takes ``now`` and returns the :class:`Change` list it caused; the
caller (``MemoryRegistry``) publishes them to watchers. Nothing here sleeps or touches
trio, so hypothesis drives it directly.

TTLs work like Consul's TTL checks. An instance's TTL deadline is its last heartbeat
plus its TTL. Past it the instance turns critical ("lapsed"): hidden from healthy
discovery, still listed. An instance critical for ``deregister_critical_after`` (lapsed
or reported critical) is removed. A heartbeat before removal makes it passing again.

Expiry is driven by a heap of ``(when, seq, kind, key)`` deadlines, so the driver sleeps
until :meth:`next_deadline` and :meth:`expire` touches only what is due: a heartbeat
only moves the instance's deadline (O(1)); its heap item, when it comes up early, is
pushed again at the new deadline. An entry remembers when its live heap items are due
(``ttl_at``, ``remove_at``): an earlier deadline (a re-registration with a shorter TTL)
pushes a new item and leaves the old one stale, to be skipped.

Self-preservation (Eureka's): when a batch of expirations would leave fewer than
``self_preservation_threshold`` of the instances live (and at least
``self_preservation_min_instances`` are registered), the registry assumes that it, not
the instances, is cut off. It then holds expirations and removals (the instances stay
as they were) and re-examines every ``self_preservation_recheck`` seconds; once enough
heartbeats return, held instances that are still overdue turn critical as usual.

Revisions count changes, one per change, and never go back (the snapshot file keeps
the count across restarts). Heartbeats that change nothing but ``last_heartbeat`` make
no change, so watchers are not flooded by keep-alives.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from typing import Any

import attrs

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
    RegistryConfig,
    Snapshot,
)

Key = tuple[str, str]
_TTL = 0
_REMOVE = 1


@attrs.define
class _Entry:
    instance: Instance
    reported: Health
    deadline: float
    lapsed: bool = False
    held: bool = False
    critical_since: float | None = None
    #: When this entry's heap items are due (None: not in the heap); other heap items
    #: for the same key are stale and skipped.
    ttl_at: float | None = None
    remove_at: float | None = None

    @property
    def health(self) -> Health:
        return Health.CRITICAL if self.lapsed else self.reported


class RegistryCore:
    """Instances, deadlines, revisions and the change log; see the module docstring."""

    def __init__(self, config: RegistryConfig | None = None, *, revision: int = 0) -> None:
        self.config = config or RegistryConfig()
        self.revision = revision
        self.log = ChangeLog(self.config.change_log_size, revision)
        #: True while self-preservation holds expiry.
        self.preserving = False
        self._entries: dict[Key, _Entry] = {}
        self._heap: list[tuple[float, int, int, Key]] = []
        self._seq = itertools.count()
        self._lapsed: set[Key] = set()
        self._held: set[Key] = set()
        self._held_removals: set[Key] = set()
        self._recheck_at = math.inf
        #: Heartbeats accepted and TTL expirations (instances turned critical), for metrics.
        self.heartbeats = 0
        self.expirations = 0

    # -- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def get(self, service: str, instance_id: str) -> Instance | None:
        entry = self._entries.get((service, instance_id))
        return entry.instance if entry else None

    def instances(self, service: str | None = None) -> list[Instance]:
        """Every instance (of ``service``), healthy or not, by service then id."""
        found = [
            e.instance
            for e in self._entries.values()
            if service is None or e.instance.service == service
        ]
        return sorted(found, key=lambda i: i.key)

    def discover(
        self, service: str, *, healthy_only: bool = True, tags: Iterable[str] = ()
    ) -> list[Instance]:
        tags = tuple(tags)
        return [
            i
            for i in self.instances(service)
            if (i.healthy or not healthy_only) and i.has_tags(tags)
        ]

    def snapshot(self, service: str | None = None) -> Snapshot:
        return Snapshot(self.revision, tuple(self.instances(service)))

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work (``None``: nothing is scheduled)."""
        top = self._heap[0][0] if self._heap else math.inf
        when = min(top, self._recheck_at)
        return None if when == math.inf else when

    # -- operations ---------------------------------------------------------------------
    def register(self, spec: InstanceSpec, now: float, ttl: float | None = None) -> list[Change]:
        """Add ``spec``, or replace the instance with its service and id (a heartbeat too)."""
        ttl = self.config.check_ttl(ttl)
        key = (spec.service, spec.id)
        old = self._entries.get(key)
        instance = Instance(
            service=spec.service,
            id=spec.id,
            address=spec.address,
            metadata=spec.metadata,
            health=spec.health,
            registered_at=old.instance.registered_at if old else now,
            last_heartbeat=now,
            ttl=ttl,
        )
        entry = _Entry(instance, spec.health, now + ttl)
        if old is not None:
            entry.ttl_at, entry.remove_at = old.ttl_at, old.remove_at
            entry.critical_since = old.critical_since if old.health is Health.CRITICAL else None
        self._discard_marks(key)
        self._entries[key] = entry
        self._settle_critical(entry, now)
        self._queue_ttl(entry)
        if old is None:
            return [self._emit(ChangeKind.ADDED, instance)]
        if old.instance.same_state(instance):
            return []
        return [self._emit(ChangeKind.UPDATED, instance)]

    def heartbeat(
        self, service: str, instance_id: str, now: float, health: Health | None = None
    ) -> list[Change]:
        """Move the TTL deadline; ``health`` (default passing) is the reported status."""
        key = (service, instance_id)
        entry = self._entries.get(key)
        if entry is None:
            raise InstanceNotFound(f"{service}/{instance_id} is not registered")
        before = entry.health
        self.heartbeats += 1
        self._discard_marks(key)
        entry.lapsed = entry.held = False
        entry.reported = health or Health.PASSING
        entry.deadline = now + entry.instance.ttl
        entry.instance = attrs.evolve(entry.instance, last_heartbeat=now, health=entry.health)
        self._settle_critical(entry, now)
        self._queue_ttl(entry)
        if entry.health is before:
            return []
        return [self._emit(ChangeKind.HEALTH, entry.instance)]

    def deregister(self, service: str, instance_id: str) -> list[Change]:
        """Remove an instance; unknown ones are ignored (deregistering is idempotent)."""
        key = (service, instance_id)
        entry = self._entries.pop(key, None)
        if entry is None:
            return []
        self._discard_marks(key)
        return [self._emit(ChangeKind.REMOVED, entry.instance)]

    def expire(self, now: float) -> list[Change]:
        """Apply every deadline at or before ``now``."""
        due: list[_Entry] = []
        removals: list[Key] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, kind, key = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if entry is None:
                continue
            if kind == _TTL:
                if when != entry.ttl_at:
                    continue
                entry.ttl_at = None
                if entry.lapsed or entry.held:
                    continue
                if entry.deadline > now:
                    self._queue_ttl(entry)
                else:
                    due.append(entry)
            else:
                if when != entry.remove_at:
                    continue
                entry.remove_at = None
                removals.append(key)
        if self._should_preserve(len(due)):
            if not self.preserving:
                self.preserving = True
            for entry in due:
                entry.held = True
                self._held.add(entry.instance.key)
            self._held_removals.update(removals)
            self._recheck_at = now + self.config.self_preservation_recheck
            return []
        self.preserving = False
        self._recheck_at = math.inf
        released = [self._entries[k] for k in self._held if k in self._entries]
        removals.extend(self._held_removals)
        self._held.clear()
        self._held_removals.clear()
        changes: list[Change] = []
        due_ids = {id(entry) for entry in due}
        for entry in due + released:
            entry.held = False
            if entry.deadline > now:  # heartbeated while held
                self._queue_ttl(entry)
                continue
            before = entry.health
            entry.lapsed = True
            self.expirations += 1
            self._lapsed.add(entry.instance.key)
            if before is not Health.CRITICAL:
                # The deadline itself, not when the driver got round to it; a held
                # instance gets its full grace from its release.
                entry.critical_since = entry.deadline if id(entry) in due_ids else now
                entry.instance = attrs.evolve(entry.instance, health=Health.CRITICAL)
                changes.append(self._emit(ChangeKind.HEALTH, entry.instance))
            self._settle_critical(entry, now)
            removals.append(entry.instance.key)
        for key in dict.fromkeys(removals):
            entry = self._entries.get(key)
            if entry is None or entry.critical_since is None:
                continue
            when = entry.critical_since + self.config.deregister_critical_after
            if when <= now:
                changes.extend(self.deregister(*key))
            elif entry.remove_at is None or when < entry.remove_at:
                self._push(when, _REMOVE, entry)
        return changes

    # -- persistence ----------------------------------------------------------------------
    def dump(self, now: float) -> dict[str, Any]:
        """The state as JSON-able data, times relative to ``now``."""
        return {
            "revision": self.revision,
            "instances": [
                {
                    "service": e.instance.service,
                    "id": e.instance.id,
                    "address": attrs.asdict(e.instance.address),
                    "metadata": attrs.asdict(e.instance.metadata),
                    "reported": int(e.reported),
                    "ttl": e.instance.ttl,
                    "age": now - e.instance.registered_at,
                    "since_heartbeat": now - e.instance.last_heartbeat,
                    "remaining": e.deadline - now,
                    "lapsed": e.lapsed,
                    "critical_for": None if e.critical_since is None else now - e.critical_since,
                }
                for e in self._entries.values()
            ],
        }

    @classmethod
    def load(
        cls,
        data: dict[str, Any],
        now: float,
        *,
        elapsed: float = 0.0,
        config: RegistryConfig | None = None,
    ) -> RegistryCore:
        """The state :meth:`dump` saved, ``elapsed`` seconds later (deadlines keep running)."""
        core = cls(config, revision=int(data["revision"]))
        for raw in data["instances"]:
            reported = Health(raw["reported"])
            entry = _Entry(
                Instance(
                    service=raw["service"],
                    id=raw["id"],
                    address=Address(**raw["address"]),
                    metadata=Metadata(**raw["metadata"]),
                    health=Health.CRITICAL if raw["lapsed"] else reported,
                    registered_at=now - raw["age"] - elapsed,
                    last_heartbeat=now - raw["since_heartbeat"] - elapsed,
                    ttl=float(raw["ttl"]),
                ),
                reported,
                now + raw["remaining"] - elapsed,
                lapsed=bool(raw["lapsed"]),
            )
            if raw["critical_for"] is not None:
                entry.critical_since = now - raw["critical_for"] - elapsed
            core._entries[entry.instance.key] = entry
            if entry.lapsed:
                core._lapsed.add(entry.instance.key)
            core._queue_ttl(entry)
            if entry.critical_since is not None:
                core._push(
                    entry.critical_since + core.config.deregister_critical_after, _REMOVE, entry
                )
        return core

    # -- internals ------------------------------------------------------------------------
    def _emit(self, kind: ChangeKind, instance: Instance) -> Change:
        self.revision += 1
        change = Change(self.revision, kind, instance)
        self.log.append(change)
        return change

    def _push(self, when: float, kind: int, entry: _Entry) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), kind, entry.instance.key))
        if kind == _TTL:
            entry.ttl_at = when
        else:
            entry.remove_at = when

    def _queue_ttl(self, entry: _Entry) -> None:
        if entry.lapsed:
            return
        if entry.ttl_at is None or entry.deadline < entry.ttl_at:
            self._push(entry.deadline, _TTL, entry)

    def _settle_critical(self, entry: _Entry, now: float) -> None:
        """Start (or stop) the removal clock as the instance enters (or leaves) critical."""
        if entry.health is not Health.CRITICAL:
            entry.critical_since = None
            return
        if entry.critical_since is None:
            entry.critical_since = now
        when = entry.critical_since + self.config.deregister_critical_after
        if entry.remove_at is None or when < entry.remove_at:
            self._push(when, _REMOVE, entry)

    def _discard_marks(self, key: Key) -> None:
        self._lapsed.discard(key)
        self._held.discard(key)
        self._held_removals.discard(key)

    def _should_preserve(self, newly_due: int) -> bool:
        config = self.config
        threshold = config.self_preservation_threshold
        total = len(self._entries)
        if threshold is None or total < config.self_preservation_min_instances:
            return False
        if newly_due == 0 and not self._held and not self._held_removals:
            return False
        live = total - len(self._lapsed) - len(self._held) - newly_due
        return live / total < threshold
