"""Conversions between the registry's types and ``netkit.registry.v1`` messages / JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protos.registry.v1 import registry_pb2 as pb
from ._types import (
    Address,
    Change,
    ChangeKind,
    Health,
    Instance,
    InstanceSpec,
    InvalidRegistration,
    Metadata,
    Snapshot,
    WatchEvent,
)

Clock = Callable[[float], float]


def health_from_pb(value: int) -> Health | None:
    """``HEALTH_UNSPECIFIED`` is ``None`` (the operation's default)."""
    if value == 0:
        return None
    try:
        return Health(value)
    except ValueError:
        raise InvalidRegistration(f"unknown health {value}") from None


def spec_from_pb(message: pb.Instance) -> InstanceSpec:
    if not message.service or not message.id:
        raise InvalidRegistration("an instance needs a service name and an id")
    if not message.HasField("address") or not message.address.host:
        raise InvalidRegistration("an instance needs an address with a host")
    try:
        return InstanceSpec(
            service=message.service,
            id=message.id,
            address=Address(
                message.address.host, message.address.port, tuple(message.address.protocols)
            ),
            metadata=Metadata(
                version=message.metadata.version,
                zone=message.metadata.zone,
                weight=message.metadata.weight if message.HasField("metadata") else 1,
                tags=tuple(message.metadata.tags),
            ),
            health=health_from_pb(message.health) or Health.PASSING,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidRegistration(str(exc)) from None


def spec_to_pb(spec: InstanceSpec) -> pb.Instance:
    return pb.Instance(
        service=spec.service,
        id=spec.id,
        address=pb.Address(
            host=spec.address.host, port=spec.address.port, protocols=spec.address.protocols
        ),
        metadata=pb.Metadata(
            version=spec.metadata.version,
            zone=spec.metadata.zone,
            weight=spec.metadata.weight,
            tags=spec.metadata.tags,
        ),
        health=int(spec.health),  # type: ignore[arg-type]
    )


def instance_to_pb(instance: Instance, to_unix: Clock) -> pb.Instance:
    message = spec_to_pb(as_spec(instance))
    message.registered_at = to_unix(instance.registered_at)
    message.last_heartbeat = to_unix(instance.last_heartbeat)
    message.ttl = instance.ttl
    return message


def instance_from_pb(message: pb.Instance) -> Instance:
    """An instance as a client sees it (times are Unix times)."""
    spec = spec_from_pb(message)
    return Instance(
        service=spec.service,
        id=spec.id,
        address=spec.address,
        metadata=spec.metadata,
        health=spec.health,
        registered_at=message.registered_at,
        last_heartbeat=message.last_heartbeat,
        ttl=message.ttl,
    )


def as_spec(instance: Instance) -> InstanceSpec:
    return InstanceSpec(
        instance.service, instance.id, instance.address, instance.metadata, instance.health
    )


def event_to_pb(event: WatchEvent, to_unix: Clock) -> pb.WatchEvent:
    if isinstance(event, Snapshot):
        return pb.WatchEvent(
            revision=event.revision,
            snapshot=pb.Snapshot(instances=[instance_to_pb(i, to_unix) for i in event.instances]),
        )
    return pb.WatchEvent(
        revision=event.revision,
        change=pb.Change(
            kind=int(event.kind),  # type: ignore[arg-type]
            instance=instance_to_pb(event.instance, to_unix),
        ),
    )


def event_from_pb(message: pb.WatchEvent) -> WatchEvent:
    if message.HasField("snapshot"):
        return Snapshot(
            message.revision, tuple(instance_from_pb(i) for i in message.snapshot.instances)
        )
    return Change(
        message.revision, ChangeKind(message.change.kind), instance_from_pb(message.change.instance)
    )


# -- JSON (REST face and etcd values) ---------------------------------------------------------
def instance_to_json(instance: Instance, to_unix: Clock) -> dict[str, Any]:
    return {
        "service": instance.service,
        "id": instance.id,
        "address": {
            "host": instance.address.host,
            "port": instance.address.port,
            "protocols": list(instance.address.protocols),
        },
        "metadata": {
            "version": instance.metadata.version,
            "zone": instance.metadata.zone,
            "weight": instance.metadata.weight,
            "tags": list(instance.metadata.tags),
        },
        "health": instance.health.name.lower(),
        "registered_at": to_unix(instance.registered_at),
        "last_heartbeat": to_unix(instance.last_heartbeat),
        "ttl": instance.ttl,
    }


def health_from_json(value: Any) -> Health | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in Health.__members__:
        raise InvalidRegistration(f"health must be passing, warning or critical, not {value!r}")
    return Health[value.upper()]


def spec_from_json(service: str, instance_id: str, body: Any) -> InstanceSpec:
    """A registration body: ``{"address": {"host", "port", "protocols"}, "metadata": ...}``."""
    if not isinstance(body, dict):
        raise InvalidRegistration("the body must be a JSON object")
    address = body.get("address")
    metadata = body.get("metadata") or {}
    if not isinstance(address, dict) or not isinstance(metadata, dict):
        raise InvalidRegistration("address must be an object with host and port")
    try:
        return InstanceSpec(
            service=service,
            id=instance_id,
            address=Address(
                str(address["host"]), _int(address.get("port")), tuple(address.get("protocols", ()))
            ),
            metadata=Metadata(
                version=str(metadata.get("version", "")),
                zone=str(metadata.get("zone", "")),
                weight=_int(metadata.get("weight", 1)),
                tags=tuple(metadata.get("tags", ())),
            ),
            health=health_from_json(body.get("health")) or Health.PASSING,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRegistration(f"invalid registration: {exc}") from None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRegistration(f"expected an integer, got {value!r}")
    return value
