"""netkit.security's main names reach the top level (its export list: tests/test_exports.py)."""

from __future__ import annotations

import netkit
import netkit.security


def test_top_level_names_are_the_same_objects() -> None:
    for name in ["Security", "Policy", "Principal", "PeerIdentity"]:
        assert getattr(netkit, name) is getattr(netkit.security, name)
    assert netkit.server_context is netkit.security.server_context
    assert netkit.client_context is netkit.security.client_context
