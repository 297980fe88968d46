"""Custom-Metadata (netkit.wire.grpc_metadata): key syntax and reservation, unpadded
base64 for -bin keys, strict encoding, lenient decoding that is always safe to echo, and
the gRPC content-type."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.wire import (
    InvalidMetadata,
    content_type_is_grpc,
    decode_binary,
    decode_binary_values,
    decode_metadata,
    encode_binary,
    encode_metadata,
    is_reserved,
    is_valid_key,
)

NAMES = st.from_regex(r"[0-9a-z_.\-]{1,16}", fullmatch=True).filter(
    lambda key: not is_reserved(key) and not key.endswith("-bin")
)
ASCII_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
PAIRS = st.lists(
    st.tuples(NAMES, ASCII_VALUES) | st.tuples(NAMES.map(lambda k: k + "-bin"), st.binary()),
    max_size=8,
)
ANY_HEADERS = st.lists(
    st.tuples(
        st.binary(max_size=12) | st.sampled_from([b":path", b"te", b"x-bin", b"grpc-status"]),
        st.binary(max_size=12),
    ),
    max_size=8,
)


@pytest.mark.parametrize("key", ["a", "x-user-id", "trace.id_1", "0", "grpc-status", "a-bin"])
def test_valid_keys(key: str) -> None:
    assert is_valid_key(key)


@pytest.mark.parametrize("key", ["", "A", "X-User", "x user", ":path", "é", "key\n", "x/y", "a:b"])
def test_invalid_keys(key: str) -> None:
    assert not is_valid_key(key)


@pytest.mark.parametrize(
    "key",
    [":path", ":authority", "grpc-timeout", "grpc-status-details-bin", "grpc-anything",
     "content-type", "te", "user-agent", "connection", "transfer-encoding", "content-length"],
)  # fmt: skip
def test_reserved_keys(key: str) -> None:
    assert is_reserved(key)
    with pytest.raises(InvalidMetadata) as info:
        encode_metadata([(key, b"" if key.endswith("-bin") else "v")])
    assert info.value.key == key


@pytest.mark.parametrize("key", ["x-grpc-thing", "grpcx", "authorization", "x-te", "trace-bin"])
def test_application_keys_are_not_reserved(key: str) -> None:
    assert not is_reserved(key)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"", ""), (b"a", "YQ"), (b"ab", "YWI"), (b"abc", "YWJj"), (b"\xfb\xff", "+/8")],
)
def test_encode_binary_is_unpadded(raw: bytes, encoded: str) -> None:
    assert encode_binary(raw) == encoded


@given(st.binary())
def test_binary_accepts_padded_and_unpadded(raw: bytes) -> None:
    padded = base64.b64encode(raw).decode()
    unpadded = encode_binary(raw)
    assert "=" not in unpadded
    assert padded.startswith(unpadded)
    assert decode_binary(padded) == raw
    assert decode_binary(unpadded) == raw


@pytest.mark.parametrize(
    "value", ["Y", "YWJjZ", "YQ===", "Y=Q", "YQ==YQ", "-_8", "YQ,YQ", "é", " YQ"]
)
def test_malformed_base64_is_refused(value: str) -> None:
    with pytest.raises(InvalidMetadata):
        decode_binary(value)


def test_joined_binary_values_are_split_before_decoding() -> None:
    assert decode_binary_values("YQ,YWI=") == [b"a", b"ab"]
    assert decode_binary_values("YQ, YWI") == [b"a", b"ab"]
    assert decode_binary_values("") == [b""]
    with pytest.raises(InvalidMetadata):
        decode_binary_values("YQ,!!")


def test_encode_metadata() -> None:
    assert encode_metadata([("x-id", "42"), ("blob-bin", b"\x00\xff"), ("x-id", "")]) == [
        (b"x-id", b"42"),
        (b"blob-bin", b"AP8"),
        (b"x-id", b""),
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("X-Id", "upper-case key"),
        ("x id", "space in key"),
        ("", "empty key"),
        ("blob-bin", "text for a binary key"),
        ("x-id", b"bytes for a text key"),
        ("x-id", "line\nbreak"),
        ("x-id", "tab\t"),
        ("x-id", "non-ascii é"),
        ("x-id", "\x7f"),
    ],
)
def test_encode_metadata_refuses(key: str, value: str | bytes) -> None:
    with pytest.raises(InvalidMetadata) as info:
        encode_metadata([("ok", "fine"), (key, value)])
    assert info.value.key == key


def test_decode_metadata_keeps_only_the_application_part() -> None:
    headers = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-encoding", b"gzip"),
        (b"x-id", b"42"),
        (b"trace-bin", b"AAE, AAE="),
        (b"bad-bin", b"not base64!"),
        (b"x-obs", b"caf\xe9"),  # a valid HTTP field-value, not a valid ASCII-Value
        (b"X-Upper", b"v"),
        ("x-str", "as str"),
    ]
    assert decode_metadata(headers) == [
        ("x-id", "42"),
        ("trace-bin", b"\x00\x01"),
        ("trace-bin", b"\x00\x01"),
        ("x-str", "as str"),
    ]


@given(PAIRS)
def test_metadata_round_trip(pairs: list[tuple[str, str | bytes]]) -> None:
    assert decode_metadata(encode_metadata(pairs)) == pairs


@given(ANY_HEADERS)
def test_decoded_metadata_can_always_be_echoed(headers: list[tuple[bytes, bytes]]) -> None:
    decoded = decode_metadata(headers)
    encoded = encode_metadata(decoded)  # must not raise
    assert decode_metadata(encoded) == decoded


@pytest.mark.parametrize(
    "value",
    [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc+my-codec",
        "Application/GRPC",
        "application/grpc; charset=utf-8",
        "application/grpc+proto ;x=y",
    ],
)
def test_grpc_content_types(value: str) -> None:
    assert content_type_is_grpc(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
        "application/grpcx",
        "application/grpc+",
        "application/json",
        "text/grpc",
        "application/grpc/proto",
    ],
)
def test_other_content_types(value: str | None) -> None:
    assert not content_type_is_grpc(value)
