from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_UNSPECIFIED: _ClassVar[Health]
    PASSING: _ClassVar[Health]
    WARNING: _ClassVar[Health]
    CRITICAL: _ClassVar[Health]
HEALTH_UNSPECIFIED: Health
PASSING: Health
WARNING: Health
CRITICAL: Health

class Address(_message.Message):
    __slots__ = ("host", "port", "protocols")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    protocols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., protocols: _Optional[_Iterable[str]] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("version", "zone", "weight", "tags")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    version: str
    zone: str
    weight: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., zone: _Optional[str] = ..., weight: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("service", "id", "address", "metadata", "health", "registered_at", "last_heartbeat", "ttl")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    service: str
    id: str
    address: Address
    metadata: Metadata
    health: Health
    registered_at: float
    last_heartbeat: float
    ttl: float
    def __init__(self, service: _Optional[str] = ..., id: _Optional[str] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ..., health: _Optional[_Union[Health, str]] = ..., registered_at: _Optional[float] = ..., last_heartbeat: _Optional[float] = ..., ttl: _Optional[float] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("instance", "ttl")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    ttl: float
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., ttl: _Optional[float] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("revision", "instance")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    instance: Instance
    def __init__(self, revision: _Optional[int] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class RegisterManyRequest(_message.Message):
    __slots__ = ("registrations",)
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    registrations: _containers.RepeatedCompositeFieldContainer[RegisterRequest]
    def __init__(self, registrations: _Optional[_Iterable[_Union[RegisterRequest, _Mapping]]] = ...) -> None: ...

class RegisterManyResponse(_message.Message):
    __slots__ = ("revision", "instances")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    revision: int
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, revision: _Optional[int] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("service", "id", "health")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    service: str
    id: str
    health: Health
    def __init__(self, service: _Optional[str] = ..., id: _Optional[str] = ..., health: _Optional[_Union[Health, str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("service", "id", "found", "revision")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    service: str
    id: str
    found: bool
    revision: int
    def __init__(self, service: _Optional[str] = ..., id: _Optional[str] = ..., found: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("service", "id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    id: str
    def __init__(self, service: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ("revision", "existed")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    revision: int
    existed: bool
    def __init__(self, revision: _Optional[int] = ..., existed: _Optional[bool] = ...) -> None: ...

class DiscoverRequest(_message.Message):
    __slots__ = ("service", "include_unhealthy", "tags")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    service: str
    include_unhealthy: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service: _Optional[str] = ..., include_unhealthy: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscoverResponse(_message.Message):
    __slots__ = ("revision", "instances", "self_preservation")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SELF_PRESERVATION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    self_preservation: bool
    def __init__(self, revision: _Optional[int] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., self_preservation: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("service", "since_revision")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    service: str
    since_revision: int
    def __init__(self, service: _Optional[str] = ..., since_revision: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("kind", "instance")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Change.Kind]
        ADDED: _ClassVar[Change.Kind]
        UPDATED: _ClassVar[Change.Kind]
        REMOVED: _ClassVar[Change.Kind]
        HEALTH: _ClassVar[Change.Kind]
    KIND_UNSPECIFIED: Change.Kind
    ADDED: Change.Kind
    UPDATED: Change.Kind
    REMOVED: Change.Kind
    HEALTH: Change.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    kind: Change.Kind
    instance: Instance
    def __init__(self, kind: _Optional[_Union[Change.Kind, str]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("revision", "snapshot", "change")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    snapshot: Snapshot
    change: Change
    def __init__(self, revision: _Optional[int] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., change: _Optional[_Union[Change, _Mapping]] = ...) -> None: ...
