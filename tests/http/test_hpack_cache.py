"""The caching HPACK encoder against hpack's own: the same bytes, block after block.

``CachingEncoder`` skips re-encoding fields whose table index cannot have changed; the
property is that it never changes a single byte of any block in any sequence of blocks
and table resizes (except that never-indexed fields go without Huffman coding), and
that a decoder follows it.
"""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder, HPACKDecodingError, NeverIndexedHeaderTuple
from hypothesis import given
from hypothesis import strategies as st

from netkit.http import _hpack
from netkit.http._hpack import CachingDecoder, CachingEncoder

NAMES = [b":method", b":path", b"content-type", b"x-request-id", b"via", b"x-long", b"cookie"]
VALUES = [b"GET", b"/", b"/hello", b"application/grpc", b"2 netkit", b"", b"a" * 300, b"b" * 50]

field = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES) | st.binary(max_size=40))
header = field | field.map(lambda pair: NeverIndexedHeaderTuple(*pair))
step = st.lists(header, max_size=12) | st.sampled_from([0, 64, 256, 4096])


@given(st.lists(step, max_size=25))
def test_same_bytes_as_hpack(steps: list[list[tuple[bytes, bytes]] | int]) -> None:
    ours, theirs, decoder = CachingEncoder(), Encoder(), Decoder()
    for item in steps:
        if isinstance(item, int):  # the peer's SETTINGS_HEADER_TABLE_SIZE changed
            # (Setting the same size twice makes hpack itself forget the pending size
            # update, an hpack bug outside this property: h2 only sets it on a change.)
            if item != theirs.header_table_size:
                ours.header_table_size = theirs.header_table_size = item
            continue
        block, expected = ours.encode(item), theirs.encode(item)
        if not any(isinstance(h, NeverIndexedHeaderTuple) for h in item):
            assert block == expected  # (never-indexed ones go without Huffman coding)
        assert decoder.decode(block, raw=True) == [(bytes(n), bytes(v)) for n, v in item]


def test_recurring_block_is_remembered() -> None:
    encoder = CachingEncoder()
    block = [(b":status", b"200"), (b"content-type", b"application/json"), (b"via", b"2 x")]
    first = encoder.encode(block)
    second = encoder.encode(block)  # now all indexed: remembered
    assert len(second) < len(first)
    assert encoder._known.keys() >= set(block)
    assert encoder.encode(block) == second
    # A never-indexed unique field does not change the table: the rest stays known.
    encoder.encode([*block, NeverIndexedHeaderTuple(b"x-request-id", b"0123")])
    assert encoder._known.keys() >= set(block)


# -- the decoder ----------------------------------------------------------------------
#: A block as a peer may send it: an encoder's output, or raw bytes (often invalid).
decoder_step = (
    st.lists(header, max_size=12).map(lambda item: ("block", item))
    | st.sampled_from([0, 64, 256, 4096]).map(lambda size: ("resize", size))
    | st.sampled_from([64, 4096, 1 << 16]).map(lambda size: ("limits", size))
    | st.binary(max_size=12).map(lambda raw: ("raw", raw))
)


def _outcome(decoder: Decoder, block: bytes) -> object:
    try:
        return ("ok", [(bytes(n), bytes(v)) for n, v in decoder.decode(block, raw=True)])
    except Exception as exc:  # the same failure is what is compared
        return ("error", type(exc))


@given(st.lists(decoder_step, max_size=30), st.integers(0, 3))
def test_caching_decoder_decodes_as_hpack(steps: list[tuple[str, object]], repeat: int) -> None:
    """Whatever arrives, in any order, repeated or not: the same headers or the same
    error as hpack's decoder (its cache may only skip work whose result is known)."""
    encoder, ours, theirs = Encoder(), CachingDecoder(), Decoder()
    blocks: list[bytes] = []
    for kind, item in steps:
        if kind == "resize":
            if item != encoder.header_table_size:
                encoder.header_table_size = item
            continue
        if kind == "limits":  # our SETTINGS changed what the peer may use
            ours.max_header_list_size = theirs.max_header_list_size = item
            ours.max_allowed_table_size = theirs.max_allowed_table_size = item
            continue
        block = encoder.encode(item) if kind == "block" else item
        blocks.append(block)
        for again in [block, *blocks[-repeat:]] if repeat else [block]:
            assert _outcome(ours, again) == _outcome(theirs, again)


def test_recurring_block_is_decoded_once() -> None:
    encoder, decoder = Encoder(), CachingDecoder()
    block = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    decoder.decode(encoder.encode(block), raw=True)  # inserts: not kept
    assert not decoder._blocks
    indexed = encoder.encode(block)
    assert decoder.decode(indexed, raw=True) == block
    assert list(decoder._blocks) == [(indexed, True)]
    assert decoder.decode(indexed, raw=True) == block
    # A size update of 0 empties the table: the block's index no longer exists.
    decoder.decode(b"\x20", raw=True)
    with pytest.raises(HPACKDecodingError):
        decoder.decode(indexed, raw=True)


def test_remembered_blocks_stay_bounded() -> None:
    decoder = CachingDecoder()
    for i in range(1, 62):  # blocks of static-table indexes: they never change the table
        for j in range(1, 6):
            decoder.decode(bytes([0x80 | i, 0x80 | j]), raw=True)
    assert 0 < len(decoder._blocks) <= _hpack._MAX_BLOCKS
