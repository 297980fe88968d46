"""The policy's registry tables are hand copies of the registry's entry points: keep them equal."""

from __future__ import annotations

from netkit.discovery import MemoryRegistry, add_registry_routes
from netkit.protos.registry.v1.registry_netkit import RegistryBase
from netkit.rest import RestAPI
from netkit.security._policy import (
    REGISTRY_GRPC_READS,
    REGISTRY_GRPC_WRITES,
    REGISTRY_REST_READS,
    REGISTRY_REST_WRITES,
    REGISTRY_SERVICE,
)


def test_grpc_tables_name_every_registry_method() -> None:
    paths = [method.path for method in RegistryBase().__rpc_methods__()]
    listed = [f"{REGISTRY_SERVICE}/{name}" for name in REGISTRY_GRPC_WRITES + REGISTRY_GRPC_READS]
    assert sorted(listed) == sorted(paths)


def test_rest_tables_name_every_registry_route() -> None:
    api = RestAPI()
    add_registry_routes(api, MemoryRegistry())
    routes = [
        (method, resource.template)
        for resource in api.router.resources
        for method in resource.endpoints
    ]
    assert sorted(REGISTRY_REST_WRITES + REGISTRY_REST_READS) == sorted(routes)
