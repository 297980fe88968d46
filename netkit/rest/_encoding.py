"""Content codings: gzip for responses the client accepts (whole or streamed), gzip request
bodies with a bound.

A gzip request body is decompressed as it arrives, in steps of at most the remaining
allowance, so a small body that inflates to gigabytes (a zip bomb) costs at most
``max_decompressed_body_size`` + one step of memory before the 413.
"""

from __future__ import annotations

import gzip
import zlib

from ..errors import HTTPStatusError
from ..http import HTTPStream

_GZIP_NAMES = frozenset({"gzip", "x-gzip"})


def _qvalue(params: list[str]) -> float:
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does ``Accept-Encoding`` allow gzip? (RFC 9110 §12.5.3, q-values and ``*``)."""
    if not accept_encoding:
        return False
    star: float | None = None
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        coding = coding.strip().lower()
        if coding in _GZIP_NAMES:
            return _qvalue(params) > 0
        if coding == "*":
            star = _qvalue(params)
    return star is not None and star > 0


def gzip_body(body: bytes, level: int) -> bytes:
    """gzip with a zero mtime, so the same body always compresses to the same bytes."""
    return gzip.compress(body, compresslevel=level, mtime=0)


class GzipStream:
    """gzip a body that is produced while it is sent (sans-I/O: chunk, then end).

    Each chunk is compressed and flushed with ``Z_SYNC_FLUSH``, so everything fed so far
    can be decoded by the client now: a streamed event is never held back in the
    compressor waiting for more. The price is a few bytes per chunk and a worse ratio for
    tiny chunks. The header has a zero mtime, as :func:`gzip_body`'s does.
    """

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        """The end of the deflate stream and the gzip trailer (CRC-32, length)."""
        return self._z.flush(zlib.Z_FINISH)


def request_coding(content_encoding: str | None) -> str:
    """``"identity"`` or ``"gzip"``; anything else is 415 (RFC 9110 §15.5.16)."""
    if not content_encoding:
        return "identity"
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in _GZIP_NAMES:
        return "gzip"
    raise UnsupportedEncoding(content_encoding)


class UnsupportedEncoding(HTTPStatusError):
    def __init__(self, coding: str) -> None:
        super().__init__(415, f"content-encoding {coding[:40]!r} is not supported (use gzip)")


class DecompressedTooLarge(HTTPStatusError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"decompressed request body larger than {limit} bytes")
        self.limit = limit


class GzipReader:
    """Incremental gzip decoder with an output bound (sans-I/O: feed, then finish)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._z = zlib.decompressobj(wbits=31)
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        while data:
            if self._z.eof:  # a following gzip member (RFC 1952 allows several)
                self._z = zlib.decompressobj(wbits=31)
            try:
                out = self._z.decompress(data, self.limit - self._size + 1)
            except zlib.error as exc:
                raise HTTPStatusError(400, "request body is not valid gzip") from exc
            self._size += len(out)
            if self._size > self.limit:
                raise DecompressedTooLarge(self.limit)
            self._parts.append(out)
            data = self._z.unused_data if self._z.eof else self._z.unconsumed_tail

    def finish(self) -> bytes:
        if not self._z.eof:
            raise HTTPStatusError(400, "request body is truncated gzip")
        return b"".join(self._parts)


async def read_body(stream: HTTPStream, coding: str, limit: int) -> bytes:
    """The request body, decoded; ``limit`` bounds the decoded size (413 past it)."""
    if coding == "identity":
        return await stream.read_body()
    reader = GzipReader(limit)
    saw_data = False
    async for chunk in stream:
        saw_data = True
        reader.feed(chunk)
    return reader.finish() if saw_data else b""
