"""netkit.rest's export list is complete, and the top level re-exports the main names."""

import types

import netkit
import netkit.rest


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(netkit.rest).items()
        if not name.startswith("_") and not isinstance(obj, types.ModuleType)
    }
    assert set(netkit.rest.__all__) == public


def test_rest_api_reachable_from_top_level() -> None:
    for name in [
        "RestAPI",
        "RestConfig",
        "RestRequest",
        "Response",
        "StreamingResponse",
        "Problem",
    ]:
        assert getattr(netkit, name) is getattr(netkit.rest, name)


def test_app_has_a_rest_api() -> None:
    assert isinstance(netkit.App().rest, netkit.rest.RestAPI)
