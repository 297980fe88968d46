"""Length-Prefixed-Messages: the framing of gRPC messages inside HTTP/2 DATA frames,
and the per-message compression it announces.

Each message is ``Compressed-Flag (1 byte, 0 or 1) | Message-Length (4 bytes, big
endian) | Message``. PROTOCOL-HTTP2.md: "DATA frame boundaries have no relation to
Length-Prefixed-Message boundaries", so :class:`MessageDecoder` accepts bytes cut
anywhere and returns whole messages.

Theory of operation of the decoder: the received bytes live in one ``bytearray``;
``feed`` appends (amortised O(1)), then walks complete messages with an offset, copying
each payload out exactly once, and finally deletes the consumed prefix in one go (CPython
deletes a bytearray's head by moving its start, not by copying the tail). So feeding a
message one byte at a time, or a thousand messages in one chunk, stays linear in the
bytes received. The size limit is checked on the 5-byte prefix, before any of the payload
is buffered: a peer cannot make us hold more than ``max_message_size + 4`` bytes.

Compression: "Compression contexts are NOT maintained over message boundaries", so every
message is (de)compressed on its own. :func:`decompress` inflates at most ``max_size + 1``
bytes, so a small compressed bomb costs no more memory than an honest message.
"""

from __future__ import annotations

import struct
import zlib

import attrs

from .errors import FramingError, MessageTooLarge, UnsupportedEncoding

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Frame",
    "MessageDecoder",
    "compress",
    "decompress",
    "encode_message",
]

#: 4 MiB, the receive limit gRPC implementations use by default.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

_PREFIX = struct.Struct(">BI")
_MAX_LENGTH = 0xFFFF_FFFF  # what a 4-byte Message-Length can say

# "deflate" is the zlib format (RFC 1950), as in HTTP content coding and grpc-core;
# 31 = 15-bit window + gzip header and trailer.
_WBITS = {"gzip": 31, "deflate": 15}


@attrs.frozen
class Frame:
    """One received message. ``compressed`` is the Compressed-Flag: when True,
    ``payload`` is compressed with the stream's grpc-encoding and still needs
    :func:`decompress`."""

    compressed: bool
    payload: bytes


def encode_message(payload: bytes, *, compressed: bool = False) -> bytes:
    """``payload`` framed as one Length-Prefixed-Message.

    ``compressed`` only sets the flag; compress the payload first with :func:`compress`.
    Raises :class:`MessageTooLarge` if the length does not fit in 4 bytes.
    """
    if len(payload) > _MAX_LENGTH:
        raise MessageTooLarge(len(payload), _MAX_LENGTH)
    return _PREFIX.pack(1 if compressed else 0, len(payload)) + payload


class MessageDecoder:
    """Turns the bytes of one direction of one call into :class:`Frame` objects.

    Sans-I/O: the driver feeds what it reads and acts on what comes back. An error
    (:class:`FramingError`, :class:`MessageTooLarge`) ends the call, so a decoder that
    raised refuses further input instead of resynchronising on garbage. Messages that
    completed in the same ``feed`` as the error are dropped with it.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._failed = False

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    @property
    def at_boundary(self) -> bool:
        """True when no partial message is buffered: if the stream ends now, it ended
        cleanly. A stream that ends while this is False was truncated mid-message."""
        return not self._buffer

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every message it completes, in order (possibly none).

        Raises :class:`FramingError` for a Compressed-Flag other than 0 or 1, and
        :class:`MessageTooLarge` as soon as a prefix declares more than
        ``max_message_size`` bytes.
        """
        if self._failed:
            raise FramingError("the message decoder already failed; the stream is unusable")
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        end = len(buffer)
        try:
            # One memoryview for the walk, so each payload is copied exactly once; it is
            # released before the buffer is resized below.
            with memoryview(buffer) as view:
                while end - offset >= _PREFIX.size:
                    flag, length = _PREFIX.unpack_from(view, offset)
                    if flag > 1:
                        raise FramingError(f"Compressed-Flag must be 0 or 1, got {flag}")
                    if length > self.max_message_size:
                        raise MessageTooLarge(length, self.max_message_size)
                    start = offset + _PREFIX.size
                    if end - start < length:
                        break
                    payload = view[start : start + length].tobytes()
                    frames.append(Frame(compressed=flag == 1, payload=payload))
                    offset = start + length
        except (FramingError, MessageTooLarge):
            self._failed = True
            buffer.clear()
            raise
        del buffer[:offset]
        return frames


def _normalise(encoding: str) -> str:
    # Content codings are case-insensitive (RFC 9110 section 8.4.1).
    name = encoding.lower()
    if name != "identity" and name not in _WBITS:
        raise UnsupportedEncoding(encoding)
    return name


def compress(payload: bytes, encoding: str) -> bytes:
    """``payload`` compressed with ``encoding`` ("identity", "gzip" or "deflate"), in a
    fresh context. Raises :class:`UnsupportedEncoding` for anything else."""
    name = _normalise(encoding)
    if name == "identity":
        return payload
    compressor = zlib.compressobj(wbits=_WBITS[name])
    return compressor.compress(payload) + compressor.flush()


def decompress(payload: bytes, encoding: str, *, max_size: int) -> bytes:
    """``payload`` decompressed, refusing to produce more than ``max_size`` bytes.

    Raises :class:`MessageTooLarge` once the output would exceed ``max_size`` (without
    inflating the rest), :class:`FramingError` for corrupt or truncated data or trailing
    bytes after the compressed stream, :class:`UnsupportedEncoding` for an unknown
    ``encoding``.
    """
    name = _normalise(encoding)
    if name == "identity":
        if len(payload) > max_size:
            raise MessageTooLarge(len(payload), max_size)
        return payload
    decompressor = zlib.decompressobj(wbits=_WBITS[name])
    try:
        # One byte over the limit is enough to know the limit is broken.
        data = decompressor.decompress(payload, max_size + 1)
    except zlib.error as exc:
        raise FramingError(f"corrupt {name} message: {exc}") from exc
    if len(data) > max_size:
        raise MessageTooLarge(len(data), max_size)
    if not decompressor.eof:
        raise FramingError(f"truncated {name} message")
    if decompressor.unused_data:
        raise FramingError(f"{len(decompressor.unused_data)} bytes after the {name} stream")
    return data
