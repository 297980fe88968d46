"""An HPACK encoder that remembers the bytes of fields it has already encoded.

Why: hpack's encoder searches its tables and builds each field's bytes anew for every
header block, and on a proxy (two HTTP/2 connections per request) that was about a tenth
of the CPU, although most blocks repeat the previous one field for field. A field found
in the tables encodes as an index, and the index stays valid exactly as long as the
dynamic table does not change; so the bytes of such a field are kept, keyed by the
field, until the next change of the table (an insertion, an eviction, a resize), and a
recurring block costs one dict lookup per field.

What changes the table is what the encoder does anyway (a literal with incremental
indexing), so indexed fields encode byte for byte as hpack's own encoder would in the
same state: the cache only skips work whose result is known. 3-tuples and ``str`` pairs
go through hpack's encoder untouched.

One deliberate difference: a field marked never-indexed (``NeverIndexedHeaderTuple``:
credentials, and values new on every message such as request ids) is sent as a raw
literal, without Huffman coding. Such values are mostly random (hex or base64), where
Huffman saves a few bytes, and hpack's pure-Python Huffman coder costs more per request
than anything else in the block.
"""

from __future__ import annotations

from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

#: Fields remembered per table state; a block rarely has more than a few dozen.
_MAX_KNOWN = 256
#: Decoded header blocks remembered per table state.
_MAX_BLOCKS = 64


class _CountingTable(HeaderTable):
    """hpack's header table with a counter of changes (insertions and resizes)."""

    def __init__(self) -> None:
        self.changes = 0
        super().__init__()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        # Any resize counts: a size of 0 empties the table without a _shrink().
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    def _shrink(self) -> None:
        self.changes += 1
        super()._shrink()


class CachingEncoder(Encoder):
    """hpack's :class:`~hpack.Encoder`, remembering fully indexed fields (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = self._table = _CountingTable()
        self._known: dict[tuple[bytes, bytes], bytes] = {}
        self._state = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self._table
        if table.resized or not huffman or isinstance(headers, dict):
            self._known.clear()
            return super().encode(headers, huffman)
        known = self._known
        if self._state != table.changes:
            known.clear()
            self._state = table.changes
        parts: list[bytes] = []
        for header in headers:
            encoded = known.get(header) if type(header) is tuple else None
            if encoded is None:
                encoded = self._encode_one(header)
            parts.append(encoded)
        return b"".join(parts)

    def _encode_one(self, header: Any) -> bytes:
        table = self._table
        if type(header) is tuple and len(header) == 2:
            name, value = header
            if type(name) is bytes and type(value) is bytes:
                encoded = self.add((name, value), False, True)
                if self._state == table.changes:
                    if len(self._known) < _MAX_KNOWN:
                        self._known[(name, value)] = encoded
                else:
                    self._known.clear()
                    self._state = table.changes
                return encoded
        if isinstance(header, HeaderTuple) and not header.indexable:
            name, value = header
            if type(name) is bytes and type(value) is bytes:
                return self.add((name, value), True, False)  # never indexed, no Huffman
        encoded = super().encode([header], True)
        if self._state != table.changes:
            self._known.clear()
            self._state = table.changes
        return encoded


class CachingDecoder(Decoder):
    """hpack's :class:`~hpack.Decoder`, remembering blocks that left the table unchanged.

    Why: the same reasoning as the encoder's, from the other side. A peer that repeats a
    request or response (a load generator, a gRPC client calling one method, a backend
    answering the proxy) sends, once its fields are in the dynamic table, the same bytes
    for every block: indexes only. Decoding those bytes gives the same list for as long
    as the table and the decoder's limits stay as they are, so such a block is decoded
    once per table state and then looked up. A block that changes the table (a literal
    with incremental indexing, a size update) is decoded every time and never kept.
    """

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self.header_table = self._table = _CountingTable()
        self._blocks: dict[tuple[bytes, bool], list[Any]] = {}
        self._state: tuple[int, int, int] = (-1, 0, 0)

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self._table
        state = (table.changes, self.max_header_list_size, self.max_allowed_table_size)
        blocks = self._blocks
        if state != self._state:
            blocks.clear()
            self._state = state
        key = (bytes(data), raw)
        known = blocks.get(key)
        if known is not None:
            return list(known)
        headers = super().decode(data, raw)
        if table.changes == state[0] and data and data[0] & 0xE0 != 0x20:
            if len(blocks) >= _MAX_BLOCKS:
                blocks.clear()
            blocks[key] = list(headers)
        return headers
