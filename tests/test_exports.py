"""The public API is what the packages re-export, and the export lists are complete."""

import types

import attrs
import pytest

import netkit
import netkit.discovery
import netkit.examples.order_service
import netkit.http
import netkit.observe
import netkit.security
import netkit.testing
import netkit.up


@pytest.mark.parametrize(
    "module",
    [
        netkit,
        netkit.http,
        netkit.discovery,
        netkit.security,
        netkit.observe,
        netkit.testing,
        netkit.up,
        netkit.examples.order_service,
    ],
)
def test_all_lists_exactly_the_public_names(module) -> None:
    public = {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and not isinstance(obj, types.ModuleType)
    }
    assert set(module.__all__) == public
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_http_api_reachable_from_top_level() -> None:
    for name in [
        "serve",
        "Server",
        "ServerConfig",
        "HTTPStream",
        "Request",
        "Headers",
        "H2ClientConnection",
        "ClientStream",
        "ClientConfig",
    ]:
        assert getattr(netkit, name) is getattr(netkit.http, name)


def test_discovery_api_reachable_from_top_level() -> None:
    for name in [
        "MemoryRegistry",
        "EtcdRegistry",
        "RegistryService",
        "RegistrationAgent",
        "DiscoveryClient",
        "InstanceSpec",
        "RegistryConfig",
        "RegistryUnavailable",
        "add_registry_routes",
    ]:
        assert name in netkit.__all__
        assert getattr(netkit, name) is getattr(netkit.discovery, name)


def test_config_is_frozen_and_validated() -> None:
    config = netkit.ServerConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.max_connections = 5  # type: ignore[misc]
    with pytest.raises((ValueError, TypeError)):
        netkit.ServerConfig(max_concurrent_streams=0)
    with pytest.raises((ValueError, TypeError)):
        netkit.ServerConfig(keep_alive_timeout=-1)
    with pytest.raises((ValueError, TypeError)):
        netkit.ServerConfig(h2_max_frame_size=100)
