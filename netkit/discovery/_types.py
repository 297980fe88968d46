"""The registry's data: instances, their health, changes and the registry's limits.

Plain frozen attrs classes, shared by the sans-I/O core, the backends, the gRPC and REST
faces and the clients. Times inside the registry are trio clock times (the core is given
``now``); the network faces convert them to Unix times at the edge.
"""

from __future__ import annotations

import enum

import attrs


class Health(enum.IntEnum):
    """An instance's health (values match ``netkit.registry.v1.Health``)."""

    PASSING = 1
    WARNING = 2
    CRITICAL = 3


class ChangeKind(enum.IntEnum):
    """What happened to an instance (values match ``netkit.registry.v1.Change.Kind``)."""

    ADDED = 1
    UPDATED = 2
    REMOVED = 3
    HEALTH = 4


def _tuple(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if not isinstance(value, str) else (value,)  # type: ignore[attr-defined]


@attrs.frozen
class Address:
    """Where an instance listens, and what it speaks there ("rest", "grpc", "ws")."""

    host: str
    port: int = attrs.field(
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65535))
    )
    protocols: tuple[str, ...] = attrs.field(default=(), converter=_tuple)


@attrs.frozen
class Metadata:
    """What clients choose instances by: version, zone, weight (for balancing) and tags."""

    version: str = ""
    zone: str = ""
    weight: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)


@attrs.frozen
class InstanceSpec:
    """What a service registers: who it is and where it is."""

    service: str = attrs.field(validator=attrs.validators.min_len(1))
    id: str = attrs.field(validator=attrs.validators.min_len(1))
    address: Address
    metadata: Metadata = Metadata()
    health: Health = Health.PASSING


@attrs.frozen
class Instance:
    """A registered instance as the registry reports it."""

    service: str
    id: str
    address: Address
    metadata: Metadata
    health: Health
    #: When it registered and when it last heartbeated (registry clock).
    registered_at: float
    last_heartbeat: float
    #: Seconds it stays passing without a heartbeat.
    ttl: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.id)

    @property
    def healthy(self) -> bool:
        """Served by healthy discovery: passing or warning (as Consul's DNS does)."""
        return self.health is not Health.CRITICAL

    def has_tags(self, tags: tuple[str, ...] | list[str]) -> bool:
        return all(tag in self.metadata.tags for tag in tags)

    def same_state(self, other: Instance) -> bool:
        """Equal but for ``last_heartbeat``, which heartbeats move without a change."""
        return attrs.evolve(self, last_heartbeat=0.0) == attrs.evolve(other, last_heartbeat=0.0)


@attrs.frozen
class Change:
    """One change, at a revision; ``instance`` is its state after (before, if removed)."""

    revision: int
    kind: ChangeKind
    instance: Instance


@attrs.frozen
class Snapshot:
    """Every instance (of the watched service) at ``revision``: replaces what a watcher had."""

    revision: int
    instances: tuple[Instance, ...]


WatchEvent = Change | Snapshot


@attrs.frozen
class RegistryConfig:
    """Limits and timing of a registry (defaults documented in docs/registry.md)."""

    #: TTL of a registration that names none, and the accepted range.
    default_ttl: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    min_ttl: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    max_ttl: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    #: A critical instance is removed after this long (Consul's deregister_critical_service_after).
    deregister_critical_after: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    #: Changes kept for watchers that resume; older revisions get a snapshot.
    change_log_size: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    #: Changes queued for one watcher before it is forced to resync from a snapshot.
    watch_queue_size: int = attrs.field(default=1_000, validator=attrs.validators.gt(0))
    #: Self-preservation (Eureka): expiry is suspended while fewer than this fraction of
    #: the instances are live, once at least ``self_preservation_min_instances`` are
    #: registered. ``None`` disables it.
    self_preservation_threshold: float | None = attrs.field(default=0.85)
    self_preservation_min_instances: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    #: How often expiry is re-examined while self-preservation holds it.
    self_preservation_recheck: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def check_ttl(self, ttl: float | None) -> float:
        """The TTL a registration gets (``None`` or 0: the default); raises
        :class:`InvalidRegistration` when it is outside ``[min_ttl, max_ttl]``."""
        ttl = self.default_ttl if ttl is None or ttl == 0 else ttl
        if not self.min_ttl <= ttl <= self.max_ttl:
            raise InvalidRegistration(f"ttl {ttl} s is outside [{self.min_ttl}, {self.max_ttl}] s")
        return ttl

    @self_preservation_threshold.validator
    def _check_threshold(self, _: object, value: float | None) -> None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"self_preservation_threshold must be in (0, 1], not {value}")


class RegistryError(Exception):
    """Base of the registry's errors."""


class InstanceNotFound(RegistryError):
    """The registry does not know this instance (removed, or the registry restarted)."""


class InvalidRegistration(RegistryError, ValueError):
    """A registration the registry refuses (bad TTL, empty name...)."""


class RegistryUnavailable(RegistryError):
    """The registry cannot vouch for its data (e.g. its etcd is unreachable)."""


class RegistryBackendError(RegistryError):
    """The backend (etcd) refused an operation for a reason retrying will not fix
    (permissions, a malformed request); gRPC INTERNAL, HTTP 502, with etcd's message."""
