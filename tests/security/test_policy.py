"""The policy's decisions, and the topic-pattern algebra checked against a brute-force model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.security import AUTHENTICATED, DENY, PUBLIC, Policy, Principal, Requirement, require
from netkit.security._policy import covers, overlaps
from netkit.wire.ws_envelope import topic_matches as matches

ALPHABET = ["a", "b"]


#: Every topic of up to 4 segments over a two-letter alphabet (the model's universe).
TOPICS = [".".join(s) for n in range(1, 5) for s in itertools.product(ALPHABET, repeat=n)]

segment = st.sampled_from([*ALPHABET, "*"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    segments = draw(st.lists(segment, min_size=1, max_size=3))
    if draw(st.booleans()):
        segments.append(">")
    return ".".join(segments)


@given(patterns(), patterns())
def test_covers_means_every_matched_topic_is_matched(rule: str, pattern: str) -> None:
    # Topics of up to 4 segments decide it for patterns of up to 4 segments, except that
    # '>' in the pattern reaches deeper: covered only by a '>' rule (checked by covers).
    expected = all(matches(rule, t) for t in TOPICS if matches(pattern, t))
    if pattern.endswith(">") and not rule.endswith(">"):
        expected = False
    assert covers(rule, pattern) == expected


@given(patterns(), patterns())
def test_overlaps_means_some_topic_matches_both(a: str, b: str) -> None:
    expected = any(matches(a, t) and matches(b, t) for t in TOPICS)
    assert overlaps(a, b) == expected
    assert overlaps(b, a) == expected


def test_requirement_scopes_roles_public_deny() -> None:
    alice = Principal("alice", {"a", "b"}, {"admin"})
    assert require("a", "b").allows(alice)
    assert not require("a", "c").allows(alice)
    assert require(roles=["admin", "ops"]).allows(alice)
    assert not require(roles=["ops"]).allows(alice)
    assert AUTHENTICATED.allows(alice) and not AUTHENTICATED.allows(None)
    assert PUBLIC.allows(None)
    assert not DENY.allows(alice)
    assert Requirement(scopes="x") == require("x")


def test_most_specific_rule_wins() -> None:
    policy = (
        Policy(default=DENY)
        .route("*", "/v1/orders/{id}", "orders:any")
        .route("GET", "/v1/orders/{id}", "orders:read")
        .grpc("*", "all")
        .grpc("/pkg.S/*", "service")
        .grpc("/pkg.S/M", "method")
        .topic("orders.>", subscribe="o")
        .topic("orders.eu.*", subscribe="eu")
    )
    assert policy.for_route("GET", "/v1/orders/{id}") == require("orders:read")
    assert policy.for_route("HEAD", "/v1/orders/{id}") == require("orders:read")
    assert policy.for_route("DELETE", "/v1/orders/{id}") == require("orders:any")
    assert policy.for_route("GET", "/v1/other") == DENY
    assert policy.for_grpc("/pkg.S/M") == require("method")
    assert policy.for_grpc("/pkg.S/N") == require("service")
    assert policy.for_grpc("/other.T/M") == require("all")
    assert policy.for_topic("subscribe", "orders.eu.x") == [require("eu")]
    # A wide subscription must satisfy every narrower rule it reaches into.
    assert set(policy.for_topic("subscribe", "orders.>")) == {require("o"), require("eu")}
    assert policy.for_topic("publish", "orders.eu.x") == [DENY]


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        Policy().grpc("pkg.S/M", "x")
    with pytest.raises(ValueError):
        Policy().topic("a.>.b", subscribe="x")
    with pytest.raises(ValueError):
        Policy().for_topic("delete", "a")


def test_registry_rules_are_there_from_the_start() -> None:
    from netkit.security import REGISTRY_READ, REGISTRY_WRITE

    policy = Policy(default=PUBLIC).grpc("*", PUBLIC)
    write, read = require(REGISTRY_WRITE), require(REGISTRY_READ)
    for name in ("Register", "RegisterMany", "Heartbeat", "KeepAlive", "Deregister"):
        assert policy.for_grpc(f"/netkit.registry.v1.Registry/{name}") == write
    assert policy.for_grpc("/netkit.registry.v1.Registry/Watch") == read
    assert policy.for_route("PUT", "/v1/services/{service}/{instance_id}") == write
    assert policy.for_route("DELETE", "/v1/services/{service}/{instance_id}") == write
    assert policy.for_route("HEAD", "/v1/services/{service}") == read
    assert policy.for_grpc("/shop.v1.Orders/Get") == PUBLIC
    opened = Policy(registry_read=PUBLIC)
    assert opened.for_grpc("/netkit.registry.v1.Registry/Discover") == PUBLIC
    assert opened.for_grpc("/netkit.registry.v1.Registry/Register") == write
