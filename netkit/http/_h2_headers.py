"""HTTP/2 header rules (RFC 9113 §8.2-8.3) checked in one pass, for both directions.

Why not h2's own checks: h2 runs every header block through a chain of up to a dozen
generators (one per rule), and for a unary gRPC call that chain was the largest single
cost of netkit's HTTP/2 server: about a fifth of its CPU time on the request's HEADERS
and a quarter on the response's HEADERS and trailers. Here every rule is applied in one
loop, character rules are one regular-expression search each, and header pairs that
recur on every request (``content-type: application/grpc``, ``te: trailers``, a
client's ``user-agent``) are remembered once they passed.

Inbound (server requests) the rules are exactly h2's, so that switching h2's checks off
changes nothing a peer can observe except one thing, on purpose: a malformed request is
a *stream* error (RST_STREAM PROTOCOL_ERROR, RFC 9113 §8.1.1) instead of h2's
connection error, so one bad request does not end its neighbours.
``tests/http/test_h2_header_rules.py`` holds both sides against h2's chain with
hypothesis.

Outbound the rules are h2's normalization (lower-case names, surrounding whitespace
stripped, connection-specific fields dropped, credentials marked never-indexed) and
validation, plus the character rules h2 applies only to what it receives: a response
header carrying CR/LF or NUL is a handler bug (or a header injection) and is refused
before it reaches the HPACK encoder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from hpack import NeverIndexedHeaderTuple

from ._headers import HeaderPair

#: Hop-by-hop fields, forbidden in HTTP/2 (RFC 9113 §8.2.2).
CONNECTION_FIELDS = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_PSEUDO = _REQUEST_PSEUDO | {b":status"}
#: Fields whose values HPACK must never index (guessable credentials).
_SECRET = frozenset({b"authorization", b"proxy-authorization"})
#: Fields whose values are new on every message (request ids, trace contexts): indexing
#: them only evicts useful entries, and every insertion changes the table, so the
#: indexed fields around them would have to be re-encoded each time (see ``_hpack``).
_UNIQUE = frozenset({b"x-request-id", b"traceparent"})
_NOT_INDEXED = _SECRET | _UNIQUE

#: A field name: visible ASCII except upper case, and no colon (pseudo names are checked
#: against the fixed set instead).
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]").search
#: A field value: no NUL, CR or LF anywhere, no space or tab at either end.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search

#: netkit decodes these two as ASCII: a method is a token (RFC 9110 §9.1), a scheme
#: a URI scheme (RFC 3986 §3.1). h2 lets any bytes through.
_METHOD = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*").fullmatch

#: Pairs known to pass the per-field rules. Bounded in entries and in pair size, so an
#: attacker sending ever-new values costs a cleared dict, never memory.
_KNOWN_GOOD: dict[tuple[bytes, bytes], None] = {}
_KNOWN_GOOD_ENTRIES = 1024
_KNOWN_GOOD_PAIR_SIZE = 256

#: Outbound blocks already prepared (see ``prepare_outbound``), bounded the same way.
_KNOWN_BLOCKS: dict[tuple[object, ...], tuple[HeaderPair, ...]] = {}
#: Blocks known but for their per-message values (``_UNIQUE``): the prepared block and
#: where in it those values go.
_KNOWN_SHAPES: dict[tuple[object, ...], tuple[tuple[HeaderPair, ...], tuple[int, ...]]] = {}
#: A proxied request head (forwarding headers, a user agent) is larger than a response's.
_KNOWN_SHAPE_SIZE = 2048
_KNOWN_BLOCK_ENTRIES = 256
_KNOWN_BLOCK_SIZE = 512


class MalformedHeaders(ValueError):
    """A header block that breaks RFC 9113's rules; the message says which."""


def _check_field(name: bytes, value: bytes) -> None:
    """The rules every regular field obeys, in whichever block and direction."""
    if (name, value) in _KNOWN_GOOD:
        return
    if not name:
        raise MalformedHeaders("empty header name")
    if _BAD_NAME(name):
        raise MalformedHeaders(f"invalid header name {name!r}")
    if value and _BAD_VALUE(value):
        raise MalformedHeaders(f"invalid value for header {name.decode('latin-1')!r}")
    if name in CONNECTION_FIELDS:
        raise MalformedHeaders(f"connection-specific header {name.decode('latin-1')!r}")
    if name == b"te" and value.lower() != b"trailers":
        raise MalformedHeaders(f"TE header must be 'trailers', got {value!r}")
    if len(name) + len(value) <= _KNOWN_GOOD_PAIR_SIZE and name not in _UNIQUE:
        # (A value new on every message would only push the recurring ones out.)
        if len(_KNOWN_GOOD) >= _KNOWN_GOOD_ENTRIES:
            _KNOWN_GOOD.clear()
        _KNOWN_GOOD[(name, value)] = None


def split_request(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[dict[bytes, bytes], list[HeaderPair]]:
    """A received request head as (pseudo-header fields, regular fields).

    Applies every rule h2 would, and its one normalization: cookie fields a client split
    for compression are joined back into one, placed last. Raises MalformedHeaders.
    """
    pseudo: dict[bytes, bytes] = {}
    regular: list[HeaderPair] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    for name, value in headers:
        if name[:1] == b":":
            if regular or cookies:
                raise MalformedHeaders(f"pseudo-header {name!r} after a regular header")
            if name not in _REQUEST_PSEUDO:
                raise MalformedHeaders(f"pseudo-header {name!r} not allowed in a request")
            if name in pseudo:
                raise MalformedHeaders(f"duplicate pseudo-header {name!r}")
            if value and _BAD_VALUE(value):
                raise MalformedHeaders(f"invalid value for {name.decode()!r}")
            pseudo[name] = value
            continue
        _check_field(name, value)
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            if host is not None:
                raise MalformedHeaders("more than one host header")
            host = value
        regular.append((name, value))
    if cookies:
        regular.append(NeverIndexedHeaderTuple(b"cookie", b"; ".join(cookies)))
    _check_request_pseudo(pseudo, host)
    return pseudo, regular


def _check_request_pseudo(pseudo: dict[bytes, bytes], host: bytes | None) -> None:
    method = pseudo.get(b":method")
    if method is None:
        raise MalformedHeaders("request without :method")
    if not _METHOD(method):
        raise MalformedHeaders(f"invalid :method {method!r}")
    scheme = pseudo.get(b":scheme")
    if scheme is not None and not _SCHEME(scheme):
        raise MalformedHeaders(f"invalid :scheme {scheme!r}")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            raise MalformedHeaders("CONNECT must not carry :scheme or :path")
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            raise MalformedHeaders("request without :scheme or :path")
        if b":protocol" in pseudo and method != b"CONNECT":
            raise MalformedHeaders(":protocol is only allowed on CONNECT")
    if b":path" in pseudo and not pseudo[b":path"]:
        raise MalformedHeaders("empty :path")
    authority = pseudo.get(b":authority")
    if authority is None and host is None:
        raise MalformedHeaders("request without :authority or host")
    if authority is not None and host is not None and authority != host:
        raise MalformedHeaders(":authority and host differ")


def check_trailers(headers: Iterable[tuple[bytes, bytes]]) -> list[HeaderPair]:
    """Received trailers: regular fields only (cookies joined). Raises MalformedHeaders."""
    out: list[HeaderPair] = []
    cookies: list[bytes] = []
    for name, value in headers:
        if name[:1] == b":":
            raise MalformedHeaders(f"pseudo-header {name!r} in trailers")
        _check_field(name, value)
        if name == b"cookie":
            cookies.append(value)
        else:
            out.append((name, value))
    if cookies:
        out.append(NeverIndexedHeaderTuple(b"cookie", b"; ".join(cookies)))
    return out


def check_response(headers: Iterable[tuple[bytes, bytes]], *, is_trailer: bool) -> None:
    """A received response head (or its trailers), client side: h2's rules in one pass.

    Raises MalformedHeaders. The ``:status`` value itself is the client's to check.
    """
    status = False
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if is_trailer:
                raise MalformedHeaders(f"pseudo-header {name!r} in trailers")
            if regular:
                raise MalformedHeaders(f"pseudo-header {name!r} after a regular header")
            if name != b":status":
                raise MalformedHeaders(f"pseudo-header {name!r} not allowed in a response")
            if status:
                raise MalformedHeaders("duplicate pseudo-header b':status'")
            if value and _BAD_VALUE(value):
                raise MalformedHeaders("invalid value for ':status'")
            status = True
            continue
        regular = True
        _check_field(name, value)
    if not is_trailer and not status:
        raise MalformedHeaders("response without :status")


def prepare_outbound(
    headers: Sequence[HeaderPair], *, client: bool, is_trailer: bool
) -> list[HeaderPair]:
    """Headers we are about to send, normalized and checked; raises MalformedHeaders.

    ``headers`` have lower-case ``bytes`` names (``_headers.normalize``); pseudo-header
    fields first. Returns the list to hand to h2, which is configured not to normalize
    or validate again. Whole blocks that recur (a gRPC server's response head and its
    ``grpc-status: 0`` trailers) are remembered once prepared.
    """
    # A block that recurs but for values new on every message (a proxied request with its
    # request id, a response echoing it) is known by its shape: the rules hold for the
    # rest as they did, and only those values are checked. This was the largest cost of
    # a proxied request's head after HPACK.
    unique = [pair for pair in headers if pair[0] in _UNIQUE]
    if unique:
        shape = (client, is_trailer, *[p if p[0] not in _UNIQUE else (p[0],) for p in headers])
        template = _KNOWN_SHAPES.get(shape)
        if template is not None:
            prepared, slots = template
            out = list(prepared)
            for slot, (name, value) in zip(slots, unique, strict=True):
                out[slot] = NeverIndexedHeaderTuple(name, _unique_value(name, value))
            return out
    else:
        key = (client, is_trailer, *headers)
        known = _KNOWN_BLOCKS.get(key)
        if known is not None:
            return list(known)
    out = _prepare_outbound(headers, client=client, is_trailer=is_trailer)
    size = sum(len(name) + len(value) for name, value in out)
    if unique and size <= _KNOWN_SHAPE_SIZE:
        slots = tuple(i for i, (name, _) in enumerate(out) if name in _UNIQUE)
        if len(slots) == len(unique):
            if len(_KNOWN_SHAPES) >= _KNOWN_BLOCK_ENTRIES:
                _KNOWN_SHAPES.clear()
            _KNOWN_SHAPES[shape] = (tuple(out), slots)
    elif not unique and size <= _KNOWN_BLOCK_SIZE:
        if len(_KNOWN_BLOCKS) >= _KNOWN_BLOCK_ENTRIES:
            _KNOWN_BLOCKS.clear()
        _KNOWN_BLOCKS[key] = tuple(out)
    return out


def _unique_value(name: bytes, value: bytes) -> bytes:
    """A per-message value, checked and trimmed as ``_prepare_outbound`` would."""
    value = value.strip()
    if value and _BAD_VALUE(value):
        raise MalformedHeaders(f"invalid value for header {name.decode('latin-1')!r}")
    return value


def _prepare_outbound(
    headers: Sequence[HeaderPair], *, client: bool, is_trailer: bool
) -> list[HeaderPair]:
    out: list[HeaderPair] = []
    pseudo: dict[bytes, bytes] = {}
    host: bytes | None = None
    regular = False
    for name, value in headers:
        if (name, value) not in _KNOWN_GOOD:
            name, value = name.strip(), value.strip()
        if name[:1] == b":":
            if is_trailer:
                raise MalformedHeaders(f"pseudo-header {name!r} in trailers")
            if regular:
                raise MalformedHeaders(f"pseudo-header {name!r} after a regular header")
            if name not in _PSEUDO or (name == b":status") is client:
                raise MalformedHeaders(f"pseudo-header {name!r} not allowed here")
            if name in pseudo:
                raise MalformedHeaders(f"duplicate pseudo-header {name!r}")
            if value and _BAD_VALUE(value):
                raise MalformedHeaders(f"invalid value for {name.decode()!r}")
            pseudo[name] = value
            out.append((name, value))
            continue
        if name in CONNECTION_FIELDS:
            continue  # meaningless in HTTP/2: dropped, as h2 does
        regular = True
        _check_field(name, value)
        if name == b"host":
            if host is not None and client and not is_trailer:
                raise MalformedHeaders("more than one host header")
            host = value
        if name in _NOT_INDEXED or (name == b"cookie" and len(value) < 20):
            out.append(NeverIndexedHeaderTuple(name, value))
        else:
            out.append((name, value))
    if is_trailer:
        return out
    if client:
        _check_request_pseudo(pseudo, host)
    elif b":status" not in pseudo:
        raise MalformedHeaders("response without :status")
    return out
