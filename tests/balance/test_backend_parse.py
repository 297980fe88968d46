"""Backend specs as the CLI and targets write them, and outlier detection switched off."""

from __future__ import annotations

import pytest

from netkit.balance import Backend, BalancerConfig, LoadBalancer, OutlierConfig, RoundRobin
from netkit.balance._balancer import Outcome


def test_backend_specs() -> None:
    assert Backend.parse("10.0.0.1:9000") == Backend("10.0.0.1", 9000)
    assert Backend.parse("h:1;weight=3;protocol=h1") == Backend("h", 1, weight=3, protocol="h1")
    assert Backend.parse("[::1]:80") == Backend("::1", 80)
    assert Backend.parse("[::1]:80").address == "[::1]:80"
    assert Backend("h", 1).protocol == "auto"


@pytest.mark.parametrize(
    "spec", ["nohost", "h:port", ":80", "h:1;color=red", "h:1;protocol=h3", "h:70000"]
)
def test_bad_backend_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Backend.parse(spec)


def test_disabled_outlier_detection_never_ejects() -> None:
    lb = LoadBalancer(RoundRobin(), BalancerConfig(outlier=OutlierConfig(enabled=False)))
    lb.update([Backend("a", 1), Backend("b", 2)], 0.0)
    state = lb.members[0]
    for i in range(50):
        lb.start(state, float(i))
        lb.end(state, float(i), Outcome.SERVER_ERROR)
    assert not lb.ejected(50.0) and state.consecutive_failures == 0
