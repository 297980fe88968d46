"""``GzipStream`` without a network: any chunking decodes to the input, and everything fed
so far is decodable at once (``Z_SYNC_FLUSH``), so no streamed event is held back."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from netkit.rest._encoding import GzipStream

CHUNKS = st.lists(st.binary(max_size=2000) | st.text(max_size=300).map(str.encode), max_size=12)


@given(chunks=CHUNKS, level=st.integers(1, 9))
def test_every_chunk_is_decodable_as_soon_as_it_is_sent(chunks: list[bytes], level: int) -> None:
    encoder = GzipStream(level)
    decoder = zlib.decompressobj(wbits=31)
    sent: list[bytes] = []
    for chunk in chunks:
        if not chunk:
            continue  # the REST layer skips empty chunks
        out = encoder.chunk(chunk)
        sent.append(out)
        assert decoder.decompress(out) == chunk  # nothing held back in the compressor
    tail = encoder.end()
    assert decoder.decompress(tail) == b"" and decoder.eof and not decoder.unused_data
    whole = b"".join(sent) + tail
    assert whole[:2] == b"\x1f\x8b"
    assert gzip.decompress(whole) == b"".join(chunks)  # CRC and length in the trailer agree
