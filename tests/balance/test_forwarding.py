"""The proxy's header rules (one-pass versions) against their plain definitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netkit.balance import ProxyConfig, ReverseProxy
from netkit.balance._forwarding import HOP_BY_HOP, REQUEST_ID, end_to_end, forwarding_headers
from netkit.http import Headers

NAMES = [
    b"connection",
    b"keep-alive",
    b"te",
    b"host",
    b"via",
    b"x-request-id",
    b"x-forwarded-for",
    b"forwarded",
    b"x-custom",
    b"content-type",
]
VALUES = [b"close", b"x-custom", b"keep-alive, X-Custom", b"1.1 other", b"abc", b"v"]
pairs = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=8)


def reference_end_to_end(block: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 9110 §7.6.1 as written: drop hop-by-hop fields and those Connection names."""
    named = {
        token.strip().lower().encode()
        for name, value in block
        if name == b"connection"
        for token in value.decode().split(",")
    }
    return [(n, v) for n, v in block if n not in HOP_BY_HOP and n not in named]


@given(pairs)
def test_end_to_end_is_the_definition(block: list[tuple[bytes, bytes]]) -> None:
    assert end_to_end(Headers(block)) == reference_end_to_end(block)
    assert end_to_end(block) == reference_end_to_end(block)


@given(pairs)
def test_forwarding_headers(block: list[tuple[bytes, bytes]]) -> None:
    out = end_to_end(block)
    before = list(out)
    request_id = forwarding_headers(
        out,
        client_ip="10.0.0.7",
        scheme="http",
        authority="example.com",
        http_version="1.1",
        via="netkit",
    )
    names = [n for n, _ in out]
    for name in (b"x-forwarded-for", b"forwarded", b"via", REQUEST_ID):
        assert names.count(name) == max(1, [n for n, _ in before].count(name))
    firsts = {n: v for n, v in reversed(out)}
    assert firsts[b"x-forwarded-for"].endswith(b"10.0.0.7")
    assert firsts[b"forwarded"].endswith(b'for=10.0.0.7;host="example.com";proto=http')
    assert firsts[b"via"].endswith(b"1.1 netkit")
    assert firsts[REQUEST_ID] == request_id.encode()
    if REQUEST_ID not in [n for n, _ in before]:
        assert len(request_id) == 32 and int(request_id, 16) >= 0


@given(pairs)
def test_response_headers_append_via_once_and_echo_the_id(
    block: list[tuple[bytes, bytes]],
) -> None:
    proxy = ReverseProxy.__new__(ReverseProxy)
    proxy.config = ProxyConfig()
    out = proxy._response_headers(Headers(block), "rid", "2")
    expected = reference_end_to_end(block)
    vias = [i for i, (n, _) in enumerate(expected) if n == b"via"]
    if vias:
        n, v = expected[vias[0]]
        expected[vias[0]] = (n, v + b", 2 netkit")
    else:
        expected.append((b"via", b"2 netkit"))
    if not any(n == REQUEST_ID for n, _ in expected):
        expected.append((REQUEST_ID, b"rid"))
    assert out == expected
