"""The WebSocket frame helpers against wsproto (the reference we keep) and a naive XOR."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from netkit.wire import ws_frames
from netkit.wire.ws_frames import FrameHeader, encode_frame, parse_header
from netkit.ws._accel import c_unmask

#: Payloads of every length class (7-bit, 16-bit, 64-bit) without drawing 64 KiB of bytes.
LONG = st.integers(120, 70_000).map(lambda n: (bytes(range(256)) * (n // 256 + 1))[:n])


def naive_xor(payload: bytes, mask: bytes) -> bytes:
    return bytes(b ^ k for b, k in zip(payload, itertools.cycle(mask), strict=False))


UNMASKERS = [ws_frames.unmask_translate] + ([c_unmask] if c_unmask else [])


@pytest.mark.parametrize("unmask", UNMASKERS)
@given(payload=st.binary(max_size=300) | LONG, mask=st.binary(min_size=4, max_size=4))
def test_unmask_is_xor_with_the_repeated_key(
    unmask: Callable[[bytes | memoryview, bytes], bytes], payload: bytes, mask: bytes
) -> None:
    assert unmask(payload, mask) == naive_xor(payload, mask)
    assert unmask(memoryview(b"--" + payload)[2:], mask) == naive_xor(payload, mask)


@given(
    payload=st.binary(max_size=200) | LONG,
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
    fin=st.booleans(),
)
def test_headers_of_wsproto_client_frames(payload: bytes, opcode: Opcode, fin: bool) -> None:
    """Every frame wsproto's client writes parses to what it wrote, and unmasks back."""
    proto = FrameProtocol(client=True, extensions=[])
    data = payload.decode("latin-1") if opcode is Opcode.TEXT else payload
    wire = bytes(proto.send_data(data, fin))
    body = data.encode() if isinstance(data, str) else data
    header = parse_header(wire)
    assert header is not None
    assert (header.fin, header.rsv, header.opcode) == (fin, 0, int(opcode))
    assert header.length == len(body) and header.size + header.length == len(wire)
    assert header.plain and header.canonical and header.mask is not None
    assert ws_frames.unmask(wire[header.size :], header.mask) == body
    # Every strict prefix of the header is incomplete, never an error.
    for cut in range(header.size):
        assert parse_header(wire[:cut]) is None
    # The same header further into a buffer.
    assert parse_header(b"xyz" + wire, 3) == header


@given(
    payload=st.one_of(
        st.text(max_size=300).map(lambda t: (0x1, t.encode())),
        (st.binary(max_size=200) | LONG).map(lambda b: (0x2, b)),
        st.binary(max_size=125).flatmap(lambda b: st.sampled_from([(0x9, b), (0xA, b)])),
    )
)
def test_server_frames_are_read_back_by_wsproto(payload: tuple[int, bytes]) -> None:
    opcode, body = payload
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(encode_frame(opcode, body))
    (frame,) = list(proto.received_frames())
    assert int(frame.opcode) == opcode and frame.frame_finished and frame.message_finished
    got = frame.payload.encode() if isinstance(frame.payload, str) else bytes(frame.payload)
    assert got == body


@pytest.mark.parametrize(
    ("wire", "plain"),
    [
        (b"\x81\xfe\x00\x05" + b"\x00" * 4 + b"hello", False),  # 2-byte length for 5 bytes
        (b"\x82\xff" + (200).to_bytes(8, "big") + b"\x00" * 4, False),  # 8 bytes for 200
        (b"\x82\xff" + (1 << 63).to_bytes(8, "big") + b"\x00" * 4, False),  # top bit set
        (b"\x81\x05hello", False),  # unmasked
        (b"\x83\x80\x00\x00\x00\x00", False),  # reserved opcode 3
        (b"\x09\x80\x00\x00\x00\x00", False),  # fragmented ping
        (b"\x89\xfe\x00\x7e" + b"\x00" * 4, False),  # 126-byte ping
        (b"\xc1\x80\x00\x00\x00\x00", True),  # RSV1: well formed; the caller decides
        (b"\x89\x80\x00\x00\x00\x00", True),  # empty ping
    ],
)
def test_plain_is_false_for_what_wsproto_must_refuse(wire: bytes, plain: bool) -> None:
    header = parse_header(wire)
    assert isinstance(header, FrameHeader)
    assert header.plain is plain
