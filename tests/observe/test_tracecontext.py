"""The W3C Trace Context codec, property-tested: round trips, arbitrary input never
raises, and every rule that makes a header invalid."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netkit.observe import (
    TraceParent,
    format_traceparent,
    format_tracestate,
    parse_traceparent,
    parse_tracestate,
)
from netkit.observe._context import from_headers

trace_ids = st.integers(1, 2**128 - 1)
span_ids = st.integers(1, 2**64 - 1)
flags = st.integers(0, 255)
SAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@given(trace_ids, span_ids, flags)
def test_traceparent_round_trips(trace_id: int, parent_id: int, flag: int) -> None:
    text = format_traceparent(trace_id, parent_id, flag)
    assert len(text) == 55 and text == text.lower()
    assert parse_traceparent(text) == TraceParent(trace_id, parent_id, flag)


@given(st.text(max_size=80))
def test_arbitrary_text_never_raises(text: str) -> None:
    parsed = parse_traceparent(text)
    if parsed is not None:  # only well-formed hex headers parse
        assert format_traceparent(parsed.trace_id, parsed.parent_id, parsed.flags) in (
            text.strip(" \t")[:55],
            text.strip(" \t")[:53] + f"{parsed.flags:02x}",
        )
    parse_tracestate(text)


def test_the_specification_example() -> None:
    parsed = parse_traceparent(SAMPLE)
    assert parsed is not None
    assert parsed.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert parsed.parent_id == 0x00F067AA0BA902B7
    assert parsed.sampled


def test_invalid_headers_are_refused() -> None:
    bad = [
        "",
        SAMPLE.upper(),
        "ff" + SAMPLE[2:],  # version ff is forbidden
        "00-" + "0" * 32 + SAMPLE[35:],  # all-zero trace id
        SAMPLE[:36] + "0" * 16 + SAMPLE[52:],  # all-zero parent id
        SAMPLE + "-extra",  # version 00 is exactly 55 characters
        SAMPLE.replace("-", "_"),
        SAMPLE[:-1],
        SAMPLE[:10] + "g" + SAMPLE[11:],
    ]
    for text in bad:
        assert parse_traceparent(text) is None, text


def test_a_future_version_is_read_as_version_00() -> None:
    parsed = parse_traceparent("cc" + SAMPLE[2:-2] + "09-what-the-future-holds")
    assert parsed is not None
    assert parsed.version == 0xCC and parsed.flags == 0x01  # unknown flag bits dropped
    assert parse_traceparent("cc" + SAMPLE[2:] + "x") is None  # not followed by "-"


member_keys = st.from_regex(r"[a-z][a-z0-9_\-*/]{0,20}", fullmatch=True) | st.from_regex(
    r"[a-z0-9][a-z0-9_\-*/]{0,10}@[a-z][a-z0-9_\-*/]{0,13}", fullmatch=True
)
member_values = st.from_regex(
    r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,20}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", fullmatch=True
)


@given(st.dictionaries(member_keys, member_values, max_size=32))
def test_tracestate_round_trips(members: dict[str, str]) -> None:
    items = tuple(members.items())
    assert parse_tracestate(format_tracestate(items)) == items
    # Optional whitespace and empty members are allowed between list members.
    spaced = " , ".join(f"{k}={v}" for k, v in items) + " ,,"
    assert parse_tracestate(spaced) == items


def test_invalid_tracestate_is_dropped_whole() -> None:
    assert parse_tracestate("a=1,a=2") is None  # duplicate key
    assert parse_tracestate("A=1") is None  # upper-case key
    assert parse_tracestate("a=1,b") is None  # no '='
    assert parse_tracestate("a=x=y") is None  # '=' in a value
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(33))) is None
    assert parse_tracestate("vendor@sys=v,k=v") == (("vendor@sys", "v"), ("k", "v"))


@given(st.one_of(st.none(), st.text(max_size=60)), st.one_of(st.none(), st.text(max_size=60)))
def test_inbound_span_always_valid(parent: str | None, state: str | None) -> None:
    span = from_headers(parent, state)
    assert 0 < span.trace_id < 2**128 and 0 < span.span_id < 2**64
    parsed = parse_traceparent(parent) if parent is not None else None
    if parsed is None:
        assert span.parent_id is None and span.tracestate is None
    else:
        assert (span.trace_id, span.parent_id) == (parsed.trace_id, parsed.parent_id)
    assert parse_traceparent(span.traceparent) is not None
