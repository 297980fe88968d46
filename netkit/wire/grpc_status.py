"""gRPC status codes, the statuses synthesised from HTTP and HTTP/2 failures, and the
percent-encoding of ``grpc-message``.

The numbers and mappings follow grpc/grpc's doc/statuscodes.md,
doc/http-grpc-status-mapping.md and doc/PROTOCOL-HTTP2.md ("Errors"). A client needs the
synthesised statuses because "implementations should expect broken deployments to send
non-200 HTTP status codes ... and to omit Status & Status-Message", and must then
"synthesize a Status & Status-Message to propagate to the application layer".
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "StatusCode",
    "decode_grpc_message",
    "encode_grpc_message",
    "status_from_http",
    "status_from_rst_stream",
]


class StatusCode(enum.IntEnum):
    """The 17 gRPC status codes, numbered as on the wire (``grpc-status``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# http-grpc-status-mapping.md. "This table is to be used _only_ for clients that received
# a response that did not include grpc-status"; servers must not invert it.
_FROM_HTTP: dict[int, StatusCode] = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    431: StatusCode.INTERNAL,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def status_from_http(http_status: int) -> StatusCode:
    """The status for a response whose HTTP status is ``http_status`` and which carried
    no ``grpc-status``.

    Every code not in the table is UNKNOWN, 200 included ("there should be a grpc-status
    in case of truly OK response"). A 1xx is not a final response: the caller skips it
    and reads the next header block instead of calling this.
    """
    return _FROM_HTTP.get(http_status, StatusCode.UNKNOWN)


# PROTOCOL-HTTP2.md, "Errors", keyed by the HTTP/2 error code (RFC 9113 section 7).
_FROM_RST_STREAM: dict[int, StatusCode] = {
    0x0: StatusCode.INTERNAL,  # NO_ERROR: an explicit OK should have been sent
    0x1: StatusCode.INTERNAL,  # PROTOCOL_ERROR
    0x2: StatusCode.INTERNAL,  # INTERNAL_ERROR
    0x3: StatusCode.INTERNAL,  # FLOW_CONTROL_ERROR
    0x4: StatusCode.INTERNAL,  # SETTINGS_TIMEOUT
    0x5: StatusCode.INTERNAL,  # STREAM_CLOSED: "no mapping", see status_from_rst_stream
    0x6: StatusCode.INTERNAL,  # FRAME_SIZE_ERROR
    0x7: StatusCode.UNAVAILABLE,  # REFUSED_STREAM: nothing was processed, safe to retry
    0x8: StatusCode.CANCELLED,  # CANCEL
    0x9: StatusCode.INTERNAL,  # COMPRESSION_ERROR
    0xA: StatusCode.INTERNAL,  # CONNECT_ERROR
    0xB: StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM: the resource is bandwidth
    0xC: StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
}


def status_from_rst_stream(error_code: int) -> StatusCode:
    """The status a call ends with when the peer resets its stream with ``error_code``.

    The table is PROTOCOL-HTTP2.md's. Two rows need a decision:

    - STREAM_CLOSED has "no mapping as there is no open stream to propagate to"; if a
      caller does have a call to end, it gets INTERNAL, like the other protocol errors.
    - HTTP_1_1_REQUIRED and unknown codes are not in the table; RFC 9113 section 7 says
      unknown codes "MAY be treated ... as being equivalent to INTERNAL_ERROR", which
      maps to INTERNAL.

    CANCEL is CANCELLED for a client; a server treats the same code as the client
    cancelling the call, which it reports as CANCELLED too.
    """
    return _FROM_RST_STREAM.get(error_code, StatusCode.INTERNAL)


# Percent-Byte-Unencoded is %x20-24 / %x26-7E: printable ASCII except "%".
_UNENCODED = frozenset(range(0x20, 0x7F)) - {ord("%")}
_ENCODE_TABLE: tuple[str, ...] = tuple(
    chr(byte) if byte in _UNENCODED else f"%{byte:02X}" for byte in range(256)
)
_NEEDS_ENCODING = re.compile(r"[^\x20-\x24\x26-\x7e]")
# ABNF's HEXDIG is case-insensitive, so lowercase escapes from other peers decode too.
_PERCENT_BYTE = re.compile(rb"%([0-9A-Fa-f]{2})")


def encode_grpc_message(text: str) -> str:
    """``text`` as a ``grpc-message`` value: UTF-8, then every byte outside printable
    ASCII (and "%" itself) as ``%XX`` with uppercase hex.

    Never raises, because it runs on error paths: a lone surrogate (not encodable as
    UTF-8) becomes "?".
    """
    if _NEEDS_ENCODING.search(text) is None:
        return text
    data = text.encode("utf-8", errors="replace")
    return "".join([_ENCODE_TABLE[byte] for byte in data])


def decode_grpc_message(value: str) -> str:
    """The text of a received ``grpc-message`` value.

    Lenient, as the protocol demands ("implementations MUST NOT error or throw away the
    message"): a "%" not followed by two hex digits is kept as it is, and bytes that are
    not valid UTF-8 become U+FFFD. Characters that should have been escaped but were not
    are kept.
    """
    if "%" not in value and value.isascii():
        return value
    raw = value.encode("utf-8", errors="surrogatepass")
    unescaped = _PERCENT_BYTE.sub(lambda match: bytes([int(match[1], 16)]), raw)
    return unescaped.decode("utf-8", errors="replace")
