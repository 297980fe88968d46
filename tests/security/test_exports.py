"""netkit.security's export list is complete, and its main names reach the top level."""

from __future__ import annotations

import types

import netkit
import netkit.security


def test_all_lists_exactly_the_public_names() -> None:
    module = netkit.security
    public = {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and not isinstance(obj, types.ModuleType)
    }
    assert set(module.__all__) == public


def test_top_level_names_are_the_same_objects() -> None:
    for name in ["Security", "Policy", "Principal", "PeerIdentity"]:
        assert getattr(netkit, name) is getattr(netkit.security, name)
    assert netkit.server_context is netkit.security.server_context
    assert netkit.client_context is netkit.security.client_context
