"""Service discovery: a registry of service instances with TTL heartbeats and watches.

``MemoryRegistry`` (embedded, the default) and ``EtcdRegistry`` (state in etcd) implement
:class:`RegistryBackend`; ``RegistryService`` serves one over gRPC
(``netkit.registry.v1.Registry``) and ``add_registry_routes`` over REST;
``RegistrationAgent`` keeps an instance registered and ``DiscoveryClient`` keeps a local
cache fed by Watch. See docs/registry.md.
"""

from ._agent import DiscoveryClient as DiscoveryClient
from ._agent import RegistrationAgent as RegistrationAgent
from ._backend import RegistryBackend as RegistryBackend
from ._core import RegistryCore as RegistryCore
from ._etcd import EtcdRegistry as EtcdRegistry
from ._hub import Watcher as Watcher
from ._log import ChangeLog as ChangeLog
from ._memory import MemoryRegistry as MemoryRegistry
from ._rest import RegistryRoutes as RegistryRoutes
from ._rest import add_registry_routes as add_registry_routes
from ._service import RegistryService as RegistryService
from ._types import Address as Address
from ._types import Change as Change
from ._types import ChangeKind as ChangeKind
from ._types import Health as Health
from ._types import Instance as Instance
from ._types import InstanceNotFound as InstanceNotFound
from ._types import InstanceSpec as InstanceSpec
from ._types import InvalidRegistration as InvalidRegistration
from ._types import Metadata as Metadata
from ._types import RegistryBackendError as RegistryBackendError
from ._types import RegistryConfig as RegistryConfig
from ._types import RegistryError as RegistryError
from ._types import RegistryUnavailable as RegistryUnavailable
from ._types import Snapshot as Snapshot
from ._types import WatchEvent as WatchEvent

__all__ = [
    "Address",
    "Change",
    "ChangeKind",
    "ChangeLog",
    "DiscoveryClient",
    "EtcdRegistry",
    "Health",
    "Instance",
    "InstanceNotFound",
    "InstanceSpec",
    "InvalidRegistration",
    "MemoryRegistry",
    "Metadata",
    "RegistrationAgent",
    "RegistryBackend",
    "RegistryBackendError",
    "RegistryConfig",
    "RegistryCore",
    "RegistryError",
    "RegistryRoutes",
    "RegistryService",
    "RegistryUnavailable",
    "Snapshot",
    "WatchEvent",
    "Watcher",
    "add_registry_routes",
]
