"""The exceptions of the sans-I/O wire layer, in one tree.

::

    WireError                  bytes or header values that break a gRPC wire rule
    ├── FramingError           a Length-Prefixed-Message or its compressed payload is corrupt
    ├── MessageTooLarge        a message (declared or decompressed) exceeds the configured limit
    ├── UnsupportedEncoding    a grpc-encoding we do not implement
    ├── InvalidTimeout         a grpc-timeout value that is not ``1*8DIGIT unit``
    └── InvalidMetadata        a metadata key or value that may not go on the wire

These carry no I/O context: the trio drivers catch them at the stream boundary and turn
them into a gRPC status. Each class names the status a server answers with in
``status_hint`` (taken from doc/statuscodes.md in grpc/grpc), so that decision is made
once, here, and not in every driver -- the same idea as h11's ``error_status_hint``.
``MessageTooLarge`` is deliberately *not* a ``FramingError``: the message was well
formed, it was just too big, and the two map to different statuses.
"""

from __future__ import annotations

from typing import ClassVar

from .grpc_status import StatusCode

__all__ = [
    "FramingError",
    "InvalidMetadata",
    "InvalidTimeout",
    "MessageTooLarge",
    "UnsupportedEncoding",
    "WireError",
]


class WireError(Exception):
    """Base class of every error raised by :mod:`netkit.wire`.

    ``status_hint`` is the gRPC status to report when this error ends a call.
    """

    status_hint: ClassVar[StatusCode] = StatusCode.INTERNAL


class FramingError(WireError):
    """The message stream is corrupt: a bad Compressed-Flag, a payload that does not
    decompress, or a decoder used again after it failed.

    statuscodes.md: "Could not decompress, but compression algorithm supported" is
    INTERNAL, as is any other broken framing.
    """

    status_hint = StatusCode.INTERNAL


class MessageTooLarge(WireError):
    """A message is larger than ``limit`` bytes.

    ``declared`` is the Message-Length from the prefix; for a decompressed payload the
    true size is unknown (we stop inflating at the limit), so it is a lower bound:
    ``limit + 1``. statuscodes.md: "Sent or received message was larger than configured
    limit" is RESOURCE_EXHAUSTED.
    """

    status_hint = StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, declared: int, limit: int) -> None:
        super().__init__(f"message of {declared} bytes exceeds the limit of {limit} bytes")
        self.declared = declared
        self.limit = limit


class UnsupportedEncoding(WireError):
    """A message encoding (grpc-encoding) we cannot compress or decompress.

    statuscodes.md: "Compression mechanism used by client not supported at server" is
    UNIMPLEMENTED; the server should also list what it supports in grpc-accept-encoding.
    """

    status_hint = StatusCode.UNIMPLEMENTED

    def __init__(self, name: str) -> None:
        super().__init__(f"unsupported message encoding {name!r}")
        self.name = name


class InvalidTimeout(WireError):
    """A grpc-timeout header value that does not follow ``TimeoutValue TimeoutUnit``.

    ``value`` is the offending header value, kept for the log line.
    """

    status_hint = StatusCode.INTERNAL

    def __init__(self, value: str) -> None:
        super().__init__(f"malformed grpc-timeout {value!r}")
        self.value = value


class InvalidMetadata(WireError):
    """Metadata that may not be sent: a bad key, a reserved key, or a value outside the
    range the protocol allows for it.

    Raised when *encoding* (an application bug, caught before anything is sent); received
    metadata is decoded leniently instead. ``reason`` says which rule was broken and
    ``key`` names the offending key (None when only a value was checked, as in
    ``decode_binary``).
    """

    status_hint = StatusCode.INTERNAL

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        super().__init__(f"metadata {key!r}: {reason}" if key is not None else reason)
        self.reason = reason
        self.key = key
