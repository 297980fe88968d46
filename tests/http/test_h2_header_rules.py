"""netkit's one-pass HTTP/2 header rules against h2's own chain of checks.

The drivers switch h2's header validation off and use ``_h2_headers`` instead (it is
several times cheaper), so these properties hold the two to the same verdicts: any
header block h2 would refuse, netkit refuses; any block h2 accepts comes out the same.
Outbound, netkit is deliberately stricter on one point (CR, LF and NUL in values,
illegal characters in names), and the property says exactly that.
"""

from __future__ import annotations

import h2.exceptions
import h2.utilities
import pytest
from hpack import NeverIndexedHeaderTuple
from hypothesis import given
from hypothesis import strategies as st

from netkit.http import _h2_headers as rules
from netkit.http._h2_headers import MalformedHeaders

PSEUDO_NAMES = [b":method", b":scheme", b":authority", b":path", b":status", b":protocol", b":x"]
NAMES = [
    b"content-type",
    b"te",
    b"host",
    b"cookie",
    b"connection",
    b"upgrade",
    b"authorization",
    b"x-tag",
    b"X-Upper",
    b"bad name",
    b"x:colon",
    b"",
]
VALUES = [
    b"application/grpc",
    b"trailers",
    b"TRAILERS",
    b"gzip",
    b"127.0.0.1:8080",
    b"example.com",
    b"a=1",
    b"CONNECT",
    b"GET",
    b"http",
    b"/",
    b"",
    b" lead",
    b"trail\t",
    b"a\r\nb",
    b"nul\x00",
    b"x" * 30,
]
REQUEST_START = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/svc/Method"),
    (b":authority", b"example.com"),
]

pairs = st.tuples(st.sampled_from(PSEUDO_NAMES + NAMES), st.sampled_from(VALUES))


@st.composite
def header_blocks(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Mostly plausible requests with a few mutations, so both verdicts come up often."""
    block = list(draw(st.sampled_from([REQUEST_START, REQUEST_START[:3], []])))
    block += draw(st.lists(pairs, max_size=6))
    for _ in range(draw(st.integers(0, 2))):
        if block:
            block.insert(draw(st.integers(0, len(block))), draw(pairs))
    return block


def flags(*, client: bool, trailer: bool, response: bool) -> h2.utilities.HeaderValidationFlags:
    return h2.utilities.HeaderValidationFlags(
        is_client=client, is_trailer=trailer, is_response_header=response, is_push_promise=False
    )


def h2_inbound(block: list[tuple[bytes, bytes]], *, trailer: bool) -> list[tuple[bytes, bytes]]:
    """h2's verdict on a received request head (or trailers), then its cookie joining."""
    f = flags(client=False, trailer=trailer, response=False)
    checked = list(h2.utilities.validate_headers(block, f))
    return list(h2.utilities.normalize_inbound_headers(checked, f))


def _typed(block: list[tuple[bytes, bytes]]) -> list[tuple[bool, bytes, bytes]]:
    return [(isinstance(h, NeverIndexedHeaderTuple), h[0], h[1]) for h in block]


@given(header_blocks())
def test_request_heads_get_h2s_verdict(block: list[tuple[bytes, bytes]]) -> None:
    try:
        expected = h2_inbound(block, trailer=False)
    except h2.exceptions.ProtocolError:
        with pytest.raises(MalformedHeaders):
            rules.split_request(block)
        return
    pseudo, regular = rules.split_request(block)
    assert [(n, v) for n, v in expected if n.startswith(b":")] == list(pseudo.items())
    assert _typed([h for h in expected if not h[0].startswith(b":")]) == _typed(regular)


@given(st.lists(pairs, max_size=6))
def test_trailers_get_h2s_verdict(block: list[tuple[bytes, bytes]]) -> None:
    try:
        expected = h2_inbound(block, trailer=True)
    except h2.exceptions.ProtocolError:
        with pytest.raises(MalformedHeaders):
            rules.check_trailers(block)
        return
    assert _typed(expected) == _typed(rules.check_trailers(block))


@given(block=header_blocks(), status_first=st.booleans(), trailer=st.booleans())
def test_responses_get_h2s_verdict(
    block: list[tuple[bytes, bytes]], status_first: bool, trailer: bool
) -> None:
    """The client's one-pass check of a response head or trailers, against h2's chain."""
    if status_first:
        block = [(b":status", b"200"), *[h for h in block if h[0] != b":method"]]
    f = flags(client=True, trailer=trailer, response=not trailer)
    try:
        list(h2.utilities.validate_headers(block, f))
        # A head without :status is refused too (the client checked that itself before).
        acceptable = trailer or any(n == b":status" for n, _ in block)
    except h2.exceptions.ProtocolError:
        acceptable = False
    if acceptable:
        rules.check_response(block, is_trailer=trailer)
    else:
        with pytest.raises(MalformedHeaders):
            rules.check_response(block, is_trailer=trailer)


def _has_bad_characters(block: list[tuple[bytes, bytes]]) -> bool:
    return any(
        (not name.startswith(b":") and rules._BAD_NAME(name)) or (value and rules._BAD_VALUE(value))
        for name, value in block
    )


@pytest.mark.parametrize(
    ("client", "trailer"), [(False, False), (False, True), (True, False), (True, True)]
)
@given(block=header_blocks(), status_first=st.booleans())
def test_outbound_blocks_get_h2s_verdict_plus_character_rules(
    client: bool, trailer: bool, block: list[tuple[bytes, bytes]], status_first: bool
) -> None:
    if not client and status_first:
        block = [(b":status", b"200"), *[h for h in block if h[0] != b":method"]]
    block = [(name.lower(), value) for name, value in block]  # as _headers.normalize does
    f = flags(client=client, trailer=trailer, response=not client and not trailer)
    try:
        normalized = list(h2.utilities.normalize_outbound_headers(block, f))
        expected = list(h2.utilities.validate_outbound_headers(normalized, f))
    except (h2.exceptions.ProtocolError, IndexError):  # h2 crashes on an empty name
        with pytest.raises(MalformedHeaders):
            rules.prepare_outbound(block, client=client, is_trailer=trailer)
        return
    if _has_bad_characters(expected):
        with pytest.raises(MalformedHeaders):
            rules.prepare_outbound(block, client=client, is_trailer=trailer)
        return
    got = rules.prepare_outbound(block, client=client, is_trailer=trailer)
    assert _typed(expected) == _typed(got)


@pytest.mark.parametrize(
    "bad",
    [
        [(b":method", b"G\xe9T")],  # not a token: netkit decodes methods as ASCII
        [(b":method", b"GET"), (b":scheme", b"ht\xfftp")],
    ],
)
def test_methods_and_schemes_must_be_ascii_tokens(bad: list[tuple[bytes, bytes]]) -> None:
    block = [*bad, *[h for h in REQUEST_START if h[0] not in {b for b, _ in bad}]]
    with pytest.raises(MalformedHeaders):
        rules.split_request(block)


def test_known_good_cache_stays_bounded() -> None:
    for i in range(3 * rules._KNOWN_GOOD_ENTRIES):
        rules.check_trailers([(b"x-n", str(i).encode())])
    assert len(rules._KNOWN_GOOD) <= rules._KNOWN_GOOD_ENTRIES
    big = b"v" * (rules._KNOWN_GOOD_PAIR_SIZE + 1)
    rules.check_trailers([(b"x-big", big)])
    assert (b"x-big", big) not in rules._KNOWN_GOOD


def test_known_blocks_are_reused_and_stay_bounded() -> None:
    head = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    first = rules.prepare_outbound(head, client=False, is_trailer=False)
    again = rules.prepare_outbound(head, client=False, is_trailer=False)
    assert first == again and first is not again  # a fresh list each time (h2 may keep it)
    with pytest.raises(MalformedHeaders):  # the same block is not known good as a request
        rules.prepare_outbound(head, client=True, is_trailer=False)
    for i in range(3 * rules._KNOWN_BLOCK_ENTRIES):
        rules.prepare_outbound([(b"x-n", str(i).encode())], client=False, is_trailer=True)
    assert len(rules._KNOWN_BLOCKS) <= rules._KNOWN_BLOCK_ENTRIES


unique_values = st.binary(max_size=40) | st.sampled_from(
    [b"0af7651916cd43dd", b" padded ", b"bad\r\nx: y", b"nul\x00", b"", b"\t"]
)


@pytest.mark.parametrize(
    ("client", "trailer"), [(False, False), (False, True), (True, False), (True, True)]
)
@given(
    block=header_blocks(),
    names=st.lists(st.sampled_from(sorted(rules._UNIQUE)), min_size=1, max_size=3),
    positions=st.lists(st.integers(0, 20), min_size=3, max_size=3),
    rounds=st.lists(st.lists(unique_values, min_size=3, max_size=3), min_size=1, max_size=4),
)
def test_blocks_known_but_for_per_message_values_prepare_as_new_ones(
    client: bool,
    trailer: bool,
    block: list[tuple[bytes, bytes]],
    names: list[bytes],
    positions: list[int],
    rounds: list[list[bytes]],
) -> None:
    """The same block again and again with new request ids or trace contexts (from its
    known shape) gives exactly what preparing it from scratch gives: the same list, or
    the same refusal."""
    block = [(name.lower(), value) for name, value in block]
    for values in rounds:
        this = list(block)
        for name, at, value in zip(names, positions, values, strict=False):
            this.insert(min(at, len(this)), (name, value))
        try:
            expected = rules._prepare_outbound(this, client=client, is_trailer=trailer)
        except MalformedHeaders:
            with pytest.raises(MalformedHeaders):
                rules.prepare_outbound(this, client=client, is_trailer=trailer)
            continue
        got = rules.prepare_outbound(this, client=client, is_trailer=trailer)
        assert _typed(got) == _typed(expected)


def test_a_known_shape_is_reused_with_the_new_values() -> None:
    head = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-request-id", b"a")]
    rules.prepare_outbound(head, client=False, is_trailer=False)
    again = [*head[:2], (b"x-request-id", b"b")]
    assert rules.prepare_outbound(again, client=False, is_trailer=False)[2] == (
        b"x-request-id",
        b"b",
    )
    shape = (False, False, *head[:2], (b"x-request-id",))
    assert shape in rules._KNOWN_SHAPES
    with pytest.raises(MalformedHeaders):
        rules.prepare_outbound(
            [*head[:2], (b"x-request-id", b"b\r\nevil: 1")], client=False, is_trailer=False
        )


def test_known_shapes_stay_bounded_and_large_ones_are_not_kept() -> None:
    for i in range(3 * rules._KNOWN_BLOCK_ENTRIES):
        head = [(b":status", b"200"), (b"x-n", str(i).encode()), (b"x-request-id", b"r")]
        rules.prepare_outbound(head, client=False, is_trailer=False)
    assert len(rules._KNOWN_SHAPES) <= rules._KNOWN_BLOCK_ENTRIES
    rules._KNOWN_SHAPES.clear()
    big = [(b":status", b"200"), (b"x-big", b"v" * rules._KNOWN_SHAPE_SIZE)]
    rules.prepare_outbound([*big, (b"x-request-id", b"r")], client=False, is_trailer=False)
    assert not rules._KNOWN_SHAPES
