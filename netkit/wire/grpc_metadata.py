"""Custom-Metadata: which header names an application may use, how ``-bin`` values are
base64-encoded, and what counts as a gRPC content-type.

From PROTOCOL-HTTP2.md:

- ``Header-Name → 1*( %x30-39 / %x61-7A / "_" / "-" / ".")`` and
  ``ASCII-Value → 1*( %x20-%x7E )``.
- Names ending in "-bin" carry binary values, base64-encoded; implementations "MUST
  accept padded and un-padded values and should emit un-padded values", and "must split
  Binary-Headers on "," before decoding", because duplicates may have been joined.
- "Header names starting with "grpc-" but not listed here are reserved for future GRPC
  use and should not be used by applications as Custom-Metadata."
- On an ASCII-Value outside the range that is still valid HTTP, implementations "must not
  error"; they "may throw the value away or accept" it, but "the application should not
  trigger an error by providing that same list as the metadata in the response".

Hence the asymmetry: :func:`encode_metadata` is strict and raises (the application made a
mistake, and we say so before anything is sent), :func:`decode_metadata` never raises and
drops what :func:`encode_metadata` would refuse, so received metadata can always be
echoed back.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

from .errors import InvalidMetadata

__all__ = [
    "content_type_is_grpc",
    "decode_binary",
    "decode_binary_values",
    "decode_metadata",
    "encode_binary",
    "encode_metadata",
    "is_reserved",
    "is_valid_key",
]

_KEY = re.compile(r"[0-9a-z_.\-]+")
_ASCII_VALUE = re.compile(r"[\x20-\x7e]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")

# Headers the transport writes or HTTP/2 forbids (RFC 9113 section 8.2.2) -- an
# application setting them would break the call or the connection. Pseudo-headers
# (":path" ...) and every "grpc-" name are reserved too, see is_reserved.
_RESERVED = frozenset(
    {
        "content-type",
        "te",
        "user-agent",
        "content-length",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    }
)

# type "/" subtype, then an optional "+suffix" (RFC 6839 style), case-insensitive.
_GRPC_MEDIA_TYPE = re.compile(r"application/grpc(?:\+[!#$%&'*.^_`|~0-9a-z\-]+)?")


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the syntax of a gRPC Header-Name: one or more of lowercase
    ``a-z``, ``0-9``, ``_``, ``-`` and ``.``.

    Syntax only: ``grpc-status`` is a valid key. Whether an application may send it is
    :func:`is_reserved`'s question.
    """
    return _KEY.fullmatch(key) is not None


def is_reserved(key: str) -> bool:
    """Whether ``key`` belongs to the protocol rather than to the application: a
    pseudo-header (":path"), any "grpc-" name, or a header the transport owns
    (content-type, te, user-agent, content-length, host and HTTP/1 connection headers).
    """
    return key.startswith((":", "grpc-")) or key in _RESERVED


def encode_binary(value: bytes) -> str:
    """``value`` in base64 (RFC 4648 section 4, standard alphabet) without padding, as
    the protocol asks implementations to emit."""
    return base64.b64encode(value).decode("ascii").rstrip("=")


def decode_binary(value: str) -> bytes:
    """The bytes of one base64 value, padded or not.

    Raises :class:`InvalidMetadata` for anything that is not base64 -- including a ","
    (a joined list: use :func:`decode_binary_values`) and the URL-safe alphabet.
    """
    unpadded = value.rstrip("=")
    # At most two "=", only at the end, and a length base64 can produce (4n + 1 cannot).
    if (
        len(value) - len(unpadded) > 2
        or _BASE64.fullmatch(unpadded) is None
        or len(unpadded) % 4 == 1
    ):
        raise InvalidMetadata(f"not base64: {value!r}")
    return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)


def decode_binary_values(value: str) -> list[bytes]:
    """The values of a binary header whose duplicates may have been joined with ",".

    Each part is decoded on its own (spaces around a comma are ignored: base64 has none).
    Raises :class:`InvalidMetadata` if any part is not base64.
    """
    return [decode_binary(part.strip(" ")) for part in value.split(",")]


def encode_metadata(pairs: Iterable[tuple[str, str | bytes]]) -> list[tuple[bytes, bytes]]:
    """Application metadata as HTTP/2 header fields, in order.

    Keys ending in "-bin" take ``bytes`` and are base64-encoded; other keys take ``str``
    of printable ASCII (0x20-0x7E). Raises :class:`InvalidMetadata` for an invalid or
    reserved key, a value of the wrong type, or a value outside that range.
    """
    fields: list[tuple[bytes, bytes]] = []
    for key, value in pairs:
        if not is_valid_key(key):
            raise InvalidMetadata("keys are one or more of lowercase a-z, 0-9, '_-.'", key=key)
        if is_reserved(key):
            raise InvalidMetadata("reserved for the gRPC protocol", key=key)
        if key.endswith("-bin"):
            if not isinstance(value, bytes):
                raise InvalidMetadata("a '-bin' key takes a bytes value", key=key)
            fields.append((key.encode("ascii"), encode_binary(value).encode("ascii")))
        else:
            if not isinstance(value, str):
                raise InvalidMetadata("a key without '-bin' takes a str value", key=key)
            if _ASCII_VALUE.fullmatch(value) is None:
                raise InvalidMetadata(
                    "values must be printable ASCII; use a '-bin' key for other data", key=key
                )
            fields.append((key.encode("ascii"), value.encode("ascii")))
    return fields


def decode_metadata(
    headers: Iterable[tuple[bytes | str, bytes | str]],
) -> list[tuple[str, str | bytes]]:
    """The application's metadata among received header fields, in order.

    Never raises. Drops reserved keys (the gRPC layer reads those itself), keys that are
    not valid Header-Names, ASCII values outside 0x20-0x7E, and binary values that are
    not base64 -- everything :func:`encode_metadata` would refuse to send back. A binary
    header joined with "," yields one entry per part.
    """
    metadata: list[tuple[str, str | bytes]] = []
    for raw_key, raw_value in headers:
        key = raw_key.decode("latin-1") if isinstance(raw_key, bytes) else raw_key
        if not is_valid_key(key) or is_reserved(key):
            continue
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        if key.endswith("-bin"):
            try:
                parts = decode_binary_values(value)
            except InvalidMetadata:
                continue
            metadata.extend((key, part) for part in parts)
        elif _ASCII_VALUE.fullmatch(value) is not None:
            metadata.append((key, value))
    return metadata


def content_type_is_grpc(value: str | None) -> bool:
    """Whether a content-type names gRPC over HTTP/2: ``application/grpc``, optionally
    with a ``+suffix`` (``+proto``, ``+json``, custom) and parameters, case-insensitive.

    ``application/grpc-web`` and ``application/grpc-web-text`` are a different protocol
    and are refused. A server answers 415 when this is False.
    """
    if value is None:
        return False
    media_type = value.partition(";")[0].strip(" \t").lower()
    return _GRPC_MEDIA_TYPE.fullmatch(media_type) is not None
