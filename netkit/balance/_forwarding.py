"""Header rules of a forwarding proxy: hop-by-hop removal, Forwarded/X-Forwarded-*,
Via and the request id (RFC 9110 §7.6, RFC 7239). Pure functions, no I/O."""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import os
import secrets
from collections.abc import Iterable

from ..http import Headers
from ..ws._handshake import _GUID

#: Connection-specific headers (RFC 9110 §7.6.1) plus the ones HTTP/2 forbids.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"host",
    }
)
REQUEST_ID = b"x-request-id"


def end_to_end(headers: Headers | Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop ones and without those ``Connection`` names.

    One pass in the usual case (no ``Connection`` field): this runs twice per proxied
    request, once per direction.
    """
    pairs = headers.raw() if isinstance(headers, Headers) else headers
    out: list[tuple[bytes, bytes]] = []
    connection: list[bytes] = []
    for pair in pairs:
        name = pair[0]
        if name in HOP_BY_HOP:
            if name == b"connection":
                connection.append(pair[1])
            continue
        out.append(pair)
    if connection:
        named = {
            token.strip().lower().encode()
            for value in connection
            for token in value.decode("latin-1").split(",")
        }
        out = [(n, v) for n, v in out if n not in named]
    return out


def _forwarded_node(ip: str) -> str:
    try:
        if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address):
            return f'"[{ip}]"'
    except ValueError:
        return "unknown"
    return ip


@functools.lru_cache(maxsize=1024)
def _forwarded_element(client_ip: str, authority: str, scheme: str) -> str:
    """The RFC 7239 element this hop adds: the same for every request of a client."""
    host = f';host="{authority}"' if authority else ""
    return f"for={_forwarded_node(client_ip)}{host};proto={scheme}"


def append_value(pairs: list[tuple[bytes, bytes]], name: bytes, value: str) -> None:
    """Append ``value`` to header ``name`` (comma-joined into one field)."""
    for i, (n, v) in enumerate(pairs):
        if n == name:
            pairs[i] = (n, v + b", " + value.encode("latin-1"))
            return
    pairs.append((name, value.encode("latin-1")))


def new_request_id() -> str:
    """128 random bits as 32 hex digits (the shape of a UUID's hex, without its version
    bits): unique per request, and a fraction of ``uuid4()``'s cost."""
    return secrets.token_hex(16)


def forwarding_headers(
    pairs: list[tuple[bytes, bytes]],
    *,
    client_ip: str,
    scheme: str,
    authority: str,
    http_version: str,
    via: str,
) -> str:
    """Add X-Forwarded-For/-Proto/-Host, Forwarded, Via and a request id; return the id."""
    names = {name for name, _ in pairs}
    if b"x-forwarded-for" in names:
        append_value(pairs, b"x-forwarded-for", client_ip)
    else:
        pairs.append((b"x-forwarded-for", client_ip.encode("latin-1")))
    if b"x-forwarded-proto" not in names:
        pairs.append((b"x-forwarded-proto", scheme.encode()))
    if b"x-forwarded-host" not in names and authority:
        pairs.append((b"x-forwarded-host", authority.encode("latin-1")))
    forwarded = _forwarded_element(client_ip, authority, scheme)
    if b"forwarded" in names:
        append_value(pairs, b"forwarded", forwarded)
    else:
        pairs.append((b"forwarded", forwarded.encode("latin-1")))
    hop = f"{http_version} {via}"
    if b"via" in names:
        append_value(pairs, b"via", hop)
    else:
        pairs.append((b"via", hop.encode("latin-1")))
    if REQUEST_ID in names:
        return next(v.decode("latin-1") for n, v in pairs if n == REQUEST_ID)
    request_id = new_request_id()
    pairs.append((REQUEST_ID, request_id.encode()))
    return request_id


def websocket_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def websocket_accept(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a backend owes for ``key`` (RFC 6455 §4.2.2).

    ``netkit.ws``'s ``accept_key`` over bytes: the client's key is forwarded as it came,
    ASCII or not, and compared as such.
    """
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())  # the RFC's choice
