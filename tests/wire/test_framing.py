"""Length-Prefixed-Message framing and per-message compression (netkit.wire.grpc_framing).

The decoder's contract is checked against every way the stream can be cut: whatever the
DATA frame boundaries, the same messages come out, ``pending`` counts exactly the bytes
of the unfinished message, and ``at_boundary`` is True exactly between messages.
"""

from __future__ import annotations

import gzip
import itertools
import struct
import time
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Frame,
    FramingError,
    MessageDecoder,
    MessageTooLarge,
    UnsupportedEncoding,
    compress,
    decompress,
    encode_message,
)

MESSAGES = st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=8)
ENCODINGS = ["identity", "gzip", "deflate"]


def test_encode_message_layout() -> None:
    assert encode_message(b"hi") == b"\x00\x00\x00\x00\x02hi"
    assert encode_message(b"", compressed=True) == b"\x01\x00\x00\x00\x00"
    assert encode_message(b"x" * 0x10203) == b"\x00\x00\x01\x02\x03" + b"x" * 0x10203


def test_default_limit_is_4_mib() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 4 * 1024 * 1024
    assert MessageDecoder().max_message_size == DEFAULT_MAX_MESSAGE_SIZE


@given(messages=MESSAGES, data=st.data())
def test_any_split_of_the_stream_gives_the_same_messages(
    messages: list[tuple[bool, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_message(payload, compressed=flag) for flag, payload in messages)
    # Repeated cut points make empty chunks, which must be harmless too.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=24), label="cuts"))
    boundaries = {0, *itertools.accumulate(5 + len(payload) for _, payload in messages)}
    decoder = MessageDecoder()
    received: list[Frame] = []
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        received += decoder.feed(stream[start:end])
        consumed = sum(5 + len(frame.payload) for frame in received)
        assert decoder.pending == end - consumed
        assert decoder.at_boundary == (end in boundaries)
    assert received == [Frame(compressed=flag, payload=payload) for flag, payload in messages]
    assert decoder.pending == 0


def test_one_byte_at_a_time() -> None:
    stream = encode_message(b"first") + encode_message(b"second", compressed=True)
    decoder = MessageDecoder()
    out = [decoder.feed(stream[i : i + 1]) for i in range(len(stream))]
    assert out[9] == [Frame(compressed=False, payload=b"first")]
    assert out[-1] == [Frame(compressed=True, payload=b"second")]
    assert sum(len(frames) for frames in out) == 2
    assert decoder.at_boundary


def test_partial_message_is_buffered_not_returned() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(encode_message(b"abc") + b"\x00\x00\x00") == [Frame(False, b"abc")]
    assert decoder.pending == 3
    assert not decoder.at_boundary
    assert decoder.feed(b"\x00\x02h") == []
    assert decoder.pending == 6
    assert decoder.feed(b"i") == [Frame(False, b"hi")]
    assert decoder.at_boundary


def test_big_message_in_small_chunks_is_linear() -> None:
    # 32,768 feeds of 64 bytes into a 2 MiB message: re-copying the buffer on every feed
    # would move ~34 GB and take minutes; a linear decoder takes a few tens of ms.
    payload = bytes(range(256)) * 8192
    stream = encode_message(payload)
    decoder = MessageDecoder()
    started = time.perf_counter()
    frames: list[Frame] = []
    for i in range(0, len(stream), 64):
        frames += decoder.feed(stream[i : i + 64])
    assert time.perf_counter() - started < 2.0
    assert frames == [Frame(False, payload)]


def test_many_messages_in_one_chunk_is_linear() -> None:
    stream = b"".join(encode_message(i.to_bytes(3, "big")) for i in range(100_000))
    started = time.perf_counter()
    frames = MessageDecoder().feed(stream)
    assert time.perf_counter() - started < 2.0
    assert [int.from_bytes(f.payload, "big") for f in frames] == list(range(100_000))


def test_size_limit_triggers_on_the_prefix_alone() -> None:
    decoder = MessageDecoder(max_message_size=10)
    prefix = struct.pack(">BI", 0, 11)
    for byte in prefix[:4]:
        assert decoder.feed(bytes([byte])) == []
    with pytest.raises(MessageTooLarge) as info:
        decoder.feed(prefix[4:])  # no payload byte was ever sent
    assert (info.value.declared, info.value.limit) == (11, 10)


def test_size_limit_applies_to_huge_declared_lengths() -> None:
    with pytest.raises(MessageTooLarge) as info:
        MessageDecoder().feed(b"\x00\xff\xff\xff\xff")
    assert info.value.declared == 0xFFFF_FFFF


def test_message_exactly_at_the_limit_is_accepted() -> None:
    decoder = MessageDecoder(max_message_size=10)
    assert decoder.feed(encode_message(b"0123456789")) == [Frame(False, b"0123456789")]
    assert MessageDecoder(max_message_size=0).feed(encode_message(b"")) == [Frame(False, b"")]


@pytest.mark.parametrize("flag", [2, 7, 0x80, 0xFF])
def test_compressed_flag_must_be_0_or_1(flag: int) -> None:
    decoder = MessageDecoder()
    with pytest.raises(FramingError):
        decoder.feed(encode_message(b"ok") + bytes([flag]) + b"\x00\x00\x00\x00")


def test_decoder_refuses_input_after_an_error() -> None:
    decoder = MessageDecoder(max_message_size=1)
    with pytest.raises(MessageTooLarge):
        decoder.feed(encode_message(b"too big"))
    with pytest.raises(FramingError):
        decoder.feed(encode_message(b""))


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        MessageDecoder(max_message_size=-1)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(payload=st.binary(max_size=2000) | st.binary(max_size=20).map(lambda b: b * 200))
def test_compress_round_trip(encoding: str, payload: bytes) -> None:
    compressed = compress(payload, encoding)
    assert decompress(compressed, encoding, max_size=len(payload)) == payload
    if payload:
        with pytest.raises(MessageTooLarge):
            decompress(compressed, encoding, max_size=len(payload) - 1)


def test_formats_match_the_standard_libraries() -> None:
    # gzip is RFC 1952 and "deflate" the zlib format (RFC 1950), as in HTTP and grpc-core.
    payload = b"hello, gzip " * 50
    assert gzip.decompress(compress(payload, "gzip")) == payload
    assert zlib.decompress(compress(payload, "deflate")) == payload
    assert decompress(gzip.compress(payload), "gzip", max_size=10_000) == payload
    assert decompress(zlib.compress(payload), "deflate", max_size=10_000) == payload
    assert compress(payload, "identity") is payload
    assert len(compress(payload, "gzip")) < len(payload)


def test_encoding_names_are_case_insensitive() -> None:
    assert decompress(compress(b"abc", "GZIP"), "gzip", max_size=3) == b"abc"


@pytest.mark.parametrize("encoding", ["snappy", "br", "", "zstd"])
def test_unknown_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as info:
        compress(b"abc", encoding)
    assert info.value.name == encoding
    with pytest.raises(UnsupportedEncoding):
        decompress(b"abc", encoding, max_size=100)


def test_decompression_bomb_is_stopped_at_the_limit() -> None:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    megabyte = bytes(1 << 20)
    bomb = b"".join(compressor.compress(megabyte) for _ in range(100)) + compressor.flush()
    assert len(bomb) < 1 << 20  # 100 MiB of zeros in well under 1 MiB
    started = time.perf_counter()
    with pytest.raises(MessageTooLarge) as info:
        decompress(bomb, "gzip", max_size=1 << 16)
    # Inflating all 100 MiB takes far longer than this; stopping at 64 KiB is instant.
    assert time.perf_counter() - started < 0.05
    assert info.value.limit == 1 << 16
    assert info.value.declared > 1 << 16


def test_identity_respects_the_limit_too() -> None:
    assert decompress(b"abcd", "identity", max_size=4) == b"abcd"
    with pytest.raises(MessageTooLarge):
        decompress(b"abcd", "identity", max_size=3)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_corrupt_truncated_or_padded_streams_are_framing_errors(encoding: str) -> None:
    good = compress(b"some payload " * 10, encoding)
    for bad in [b"not compressed at all", good[:-3], good + b"trailing", b""]:
        with pytest.raises(FramingError):
            decompress(bad, encoding, max_size=10_000)
