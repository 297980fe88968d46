"""RFC 6455 frame headers, unmasking and server frames: the WebSocket hot path (sans-I/O).

netkit's WebSocket session keeps wsproto's frame-level ``Connection`` as the authority
for everything unusual (fragmented messages, control frames, compression, every
protocol error). What it does not need wsproto for is the common case: a complete,
masked, unfragmented text or binary frame from a client, and an unfragmented frame to
it. wsproto spends most of an echo's time in its per-frame generator machinery, its
event objects and its unmasking; the functions here do the same work with a few C
calls per frame.

* :func:`parse_header` reads one frame header from a buffer (``None`` until complete).
  It never rejects anything: :attr:`FrameHeader.plain` tells the caller whether the
  frame is one it may handle itself; anything else goes to wsproto, which fails the
  connection with the right close code.
* :func:`unmask` XORs a payload with its 4-byte key with four ``bytes.translate`` calls
  over strided slices (no per-byte Python loop). ``netkit.ws`` uses the ``websockets``
  package's C ``apply_mask`` instead when it is installed (``pip install
  netkit[speedups]``); this module stays standard-library only.
* :func:`encode_frame` writes one unmasked (server) frame.

Nothing here imports trio or the rest of netkit.
"""

from __future__ import annotations

from typing import NamedTuple

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_KNOWN_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})


class FrameHeader(NamedTuple):
    """One frame's header as read from the wire."""

    fin: bool
    #: RSV1..RSV3 as the three high bits of the first byte (0 when none is set).
    rsv: int
    opcode: int
    #: The 4-byte masking key, or None for an unmasked frame.
    mask: bytes | None
    #: Bytes of the header (2 to 14).
    size: int
    #: Declared payload length.
    length: int
    #: The length used the shortest encoding and, for 8 bytes, a clear top bit.
    canonical: bool

    @property
    def plain(self) -> bool:
        """A well-formed client frame (masked, known opcode, canonical length, and for
        a control frame unfragmented with at most 125 bytes). Anything else is for
        wsproto to refuse."""
        if self.mask is None or not self.canonical or self.opcode not in _KNOWN_OPCODES:
            return False
        return self.opcode < OP_CLOSE or (self.fin and self.length <= 125)


def parse_header(buf: bytes | bytearray, pos: int = 0) -> FrameHeader | None:
    """The header of the frame starting at ``buf[pos]``, or None if it is incomplete."""
    end = len(buf)
    if end - pos < 2:
        return None
    b0 = buf[pos]
    b1 = buf[pos + 1]
    length = b1 & 0x7F
    size = 2
    canonical = True
    if length == 126:
        if end - pos < 4:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
        size = 4
        canonical = length >= 126
    elif length == 127:
        if end - pos < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        size = 10
        canonical = 0xFFFF < length < 1 << 63
    mask = None
    if b1 & 0x80:
        if end - pos < size + 4:
            return None
        mask = bytes(buf[pos + size : pos + size + 4])
        size += 4
    return FrameHeader(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, mask, size, length, canonical)


_TABLES: dict[int, bytes] = {}


def _xor_table(key: int) -> bytes:
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = bytes(b ^ key for b in range(256))
    return table


def unmask_translate(payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask``: four C-level translations."""
    data = bytearray(payload)
    if len(data) <= 64:
        # Short payloads: one multiplication of small ints beats four slices.
        n = len(data)
        key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")
    for lane in range(4):
        data[lane::4] = data[lane::4].translate(_xor_table(mask[lane]))
    return bytes(data)


#: XOR a payload with its mask, in pure Python (``netkit.ws`` swaps in a C version when
#: the optional accelerator is installed).
unmask = unmask_translate


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """One unmasked frame, as a server sends it."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        head = bytes((b0, n))
    elif n < 1 << 16:
        head = bytes((b0, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 127)) + n.to_bytes(8, "big")
    return head + payload
