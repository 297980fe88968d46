"""Entity tags and conditional requests (RFC 9110 §8.8.3, §13).

A GET response's strong ETag is a hash of its (identity) body, unless the handler gives
one. The gzip-coded form of a response is a different representation, so its tag gets a
``-gzip`` suffix inside the quotes (as Apache does); comparisons ignore that suffix, so a
client that cached either form revalidates with either tag.

``If-None-Match`` uses weak comparison (a ``W/`` tag matches its strong twin);
``If-Match`` uses strong comparison (a weak tag never matches), as the RFC says.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._shapes import jsonable

GZIP_SUFFIX = "-gzip"


def etag_of_bytes(body: bytes) -> str:
    """The strong ETag netkit gives a response body: ``"<24 hex digits>"``."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_json(value: Any) -> bytes:
    """The JSON bytes netkit sends for ``value`` (compact, UTF-8)."""
    return _ENCODE(jsonable(value)).encode()


def etag_for(value: Any) -> str:
    """The ETag a GET returning ``value`` gets: give it from ``etag=`` hooks to match."""
    return etag_of_bytes(encode_json(value))


def quote_etag(tag: str) -> str:
    """Accept a bare opaque tag from handlers (``v7``) and quote it (``"v7"``)."""
    if tag.startswith('"') or tag.startswith('W/"'):
        return tag
    return f'"{tag}"'


def gzip_etag(tag: str) -> str:
    if tag.endswith('"'):
        return tag[:-1] + GZIP_SUFFIX + '"'
    return tag


def parse_etags(header: str) -> list[str] | None:
    """The entity tags of an ``If-Match``/``If-None-Match`` value; ``None`` for ``*``.

    Tolerant of spaces; an unquoted token is taken as a tag as clients sometimes send.
    """
    text = header.strip()
    if text == "*":
        return None
    tags: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        start = i
        if text.startswith("W/", i):
            i += 2
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            i = n if end < 0 else end + 1
        else:
            while i < n and text[i] != ",":
                i += 1
        tags.append(text[start:i].strip())
    return tags


def _opaque(tag: str) -> str:
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = quote_etag(tag)
    if tag.endswith(GZIP_SUFFIX + '"'):
        tag = tag[: -len(GZIP_SUFFIX) - 1] + '"'
    return tag


def none_match(header: str, current: str | None) -> bool:
    """True when ``If-None-Match: header`` matches ``current`` (the condition is *false*)."""
    if current is None:
        return False
    tags = parse_etags(header)
    if tags is None:
        return True
    want = _opaque(current)
    return any(_opaque(t) == want for t in tags)


def if_match(header: str, current: str | None) -> bool:
    """True when ``If-Match: header`` holds for ``current`` (``None``: no such resource)."""
    if current is None:
        return False
    tags = parse_etags(header)
    if tags is None:
        return True
    if current.startswith("W/"):
        return False
    want = _opaque(current)
    return any(not t.startswith("W/") and _opaque(t) == want for t in tags)
