"""The REST client's public names are exported from netkit.rest and from netkit."""

import types

import netkit
import netkit.rest

CLIENT_NAMES = [
    "APIConnectionError",
    "APIError",
    "APITimeout",
    "BearerToken",
    "RestClient",
    "RestClientError",
    "RetryPolicy",
]


def test_rest_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(netkit.rest).items()
        if not name.startswith("_") and not isinstance(obj, types.ModuleType)
    }
    assert set(netkit.rest.__all__) == public
    assert {*CLIENT_NAMES, "AuthProvider"} <= public


def test_client_api_reachable_from_top_level() -> None:
    for name in CLIENT_NAMES:
        assert getattr(netkit, name) is getattr(netkit.rest, name)


def test_client_errors_are_netkit_errors_but_not_http_status_errors() -> None:
    for error in (netkit.APIError, netkit.APITimeout, netkit.APIConnectionError):
        assert issubclass(error, netkit.RestClientError)
        assert issubclass(error, netkit.NetkitError)
        assert not issubclass(error, netkit.HTTPStatusError)
