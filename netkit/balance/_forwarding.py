"""Header rules of a forwarding proxy: hop-by-hop removal, Forwarded/X-Forwarded-*,
Via and the request id (RFC 9110 §7.6, RFC 7239). Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import uuid
from collections.abc import Iterable

from ..http import Headers

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
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def end_to_end(headers: Headers | Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop ones and without those ``Connection`` names."""
    pairs = list(headers.raw() if isinstance(headers, Headers) else headers)
    named = {
        token.strip().lower().encode()
        for name, value in pairs
        if name == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    return [(n, v) for n, v in pairs if n not in HOP_BY_HOP and n not in named]


def _forwarded_node(ip: str) -> str:
    try:
        if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address):
            return f'"[{ip}]"'
    except ValueError:
        return "unknown"
    return ip


def append_value(pairs: list[tuple[bytes, bytes]], name: bytes, value: str) -> None:
    """Append ``value`` to header ``name`` (comma-joined into one field)."""
    for i, (n, v) in enumerate(pairs):
        if n == name:
            pairs[i] = (n, v + b", " + value.encode("latin-1"))
            return
    pairs.append((name, value.encode("latin-1")))


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
    append_value(pairs, b"x-forwarded-for", client_ip)
    if not any(n == b"x-forwarded-proto" for n, _ in pairs):
        pairs.append((b"x-forwarded-proto", scheme.encode()))
    if not any(n == b"x-forwarded-host" for n, _ in pairs) and authority:
        pairs.append((b"x-forwarded-host", authority.encode("latin-1")))
    node = _forwarded_node(client_ip)
    host = f';host="{authority}"' if authority else ""
    append_value(pairs, b"forwarded", f"for={node}{host};proto={scheme}")
    append_value(pairs, b"via", f"{http_version} {via}")
    request_id = next((v.decode("latin-1") for n, v in pairs if n == REQUEST_ID), None)
    if request_id is None:
        request_id = uuid.uuid4().hex
        pairs.append((REQUEST_ID, request_id.encode()))
    return request_id


def websocket_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def websocket_accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
