"""W3C Trace Context (``traceparent`` / ``tracestate``): a sans-I/O codec.

``traceparent`` is ``version-traceid-parentid-flags`` in lower-case hex
(``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``). Version ``00`` is exactly
55 characters; a later version may append fields after a ``-``, which a version-00
reader ignores (Trace Context §3.2.4); version ``ff``, an all-zero trace id or parent
id, upper-case hex or any other shape makes the header invalid, and an invalid header
is treated as absent: the receiver starts a new trace.

``tracestate`` is a comma-separated list of at most 32 ``key=value`` members (empty
members and optional whitespace allowed). A malformed list, or one naming a key twice,
is dropped whole, as the specification allows. Nothing here touches I/O; the parsers
never raise on input, they return None.
"""

from __future__ import annotations

import re

import attrs

_HEX = frozenset("0123456789abcdef")
_MAX_MEMBERS = 32
_KEY = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})\Z"
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")

#: The ``sampled`` bit of the trace flags.
SAMPLED = 0x01


@attrs.frozen
class TraceParent:
    """A valid ``traceparent``: ids as integers (128 and 64 bits), flags as a byte."""

    trace_id: int
    parent_id: int
    flags: int = SAMPLED
    version: int = 0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.trace_id < 1 << 128:
            raise ValueError("trace id must be a non-zero 128-bit number")
        if not 0 < self.parent_id < 1 << 64:
            raise ValueError("parent id must be a non-zero 64-bit number")
        if not 0 <= self.flags <= 0xFF or not 0 <= self.version < 0xFF:
            raise ValueError("flags must be a byte and version below 0xff")

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def _hex(text: str, length: int) -> int | None:
    if len(text) != length or not _HEX.issuperset(text):
        return None
    return int(text, 16)


def parse_traceparent(value: str) -> TraceParent | None:
    """The header's fields, or None when it is invalid (see the module docstring)."""
    value = value.strip(" \t")
    if len(value) < 55:
        return None
    version = _hex(value[0:2], 2)
    if version is None or version == 0xFF or value[2] != "-":
        return None
    if version == 0 and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    trace_id = _hex(value[3:35], 32)
    parent_id = _hex(value[36:52], 16)
    flags = _hex(value[53:55], 2)
    if trace_id is None or parent_id is None or flags is None:
        return None
    if value[35] != "-" or value[52] != "-" or not trace_id or not parent_id:
        return None
    # A version-00 reader keeps only the flags it knows of a future version (§3.2.4.2).
    return TraceParent(trace_id, parent_id, flags if version == 0 else flags & SAMPLED, version)


def format_traceparent(trace_id: int, parent_id: int, flags: int) -> str:
    """A version-00 ``traceparent`` (what we send, whatever version we received)."""
    return f"00-{trace_id:032x}-{parent_id:016x}-{flags:02x}"


def parse_tracestate(value: str) -> tuple[tuple[str, str], ...] | None:
    """The members in order, or None when the list is invalid and must be dropped."""
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or not _KEY.match(key) or not _VALUE.match(val) or key in seen:
            return None
        seen.add(key)
        members.append((key, val))
    if len(members) > _MAX_MEMBERS:
        return None
    return tuple(members)


def format_tracestate(members: tuple[tuple[str, str], ...]) -> str:
    """The header value for ``members`` (empty string for none: then send no header)."""
    return ",".join(f"{key}={val}" for key, val in members)
