"""Status codes, statuses synthesised from HTTP and RST_STREAM, and grpc-message
percent-encoding (netkit.wire.grpc_status). The tables are grpc/grpc's documents."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from netkit.wire import (
    StatusCode,
    decode_grpc_message,
    encode_grpc_message,
    status_from_http,
    status_from_rst_stream,
)

# doc/statuscodes.md and the code.proto numbering.
CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def test_status_codes_are_numbered_as_on_the_wire() -> None:
    assert {code.name: code.value for code in StatusCode} == CODES
    assert StatusCode(14) is StatusCode.UNAVAILABLE
    assert str(int(StatusCode.UNAUTHENTICATED)) == "16"


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (400, StatusCode.INTERNAL),
        (401, StatusCode.UNAUTHENTICATED),
        (403, StatusCode.PERMISSION_DENIED),
        (404, StatusCode.UNIMPLEMENTED),
        (429, StatusCode.UNAVAILABLE),
        (431, StatusCode.INTERNAL),
        (502, StatusCode.UNAVAILABLE),
        (503, StatusCode.UNAVAILABLE),
        (504, StatusCode.UNAVAILABLE),
        (200, StatusCode.UNKNOWN),  # a real OK carries grpc-status
        (204, StatusCode.UNKNOWN),
        (302, StatusCode.UNKNOWN),
        (405, StatusCode.UNKNOWN),
        (415, StatusCode.UNKNOWN),
        (500, StatusCode.UNKNOWN),
        (501, StatusCode.UNKNOWN),
        (999, StatusCode.UNKNOWN),
    ],
)
def test_status_from_http(http_status: int, code: StatusCode) -> None:
    assert status_from_http(http_status) is code


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        (0x0, StatusCode.INTERNAL),  # NO_ERROR
        (0x1, StatusCode.INTERNAL),  # PROTOCOL_ERROR
        (0x2, StatusCode.INTERNAL),  # INTERNAL_ERROR
        (0x3, StatusCode.INTERNAL),  # FLOW_CONTROL_ERROR
        (0x4, StatusCode.INTERNAL),  # SETTINGS_TIMEOUT
        (0x5, StatusCode.INTERNAL),  # STREAM_CLOSED ("no mapping")
        (0x6, StatusCode.INTERNAL),  # FRAME_SIZE_ERROR
        (0x7, StatusCode.UNAVAILABLE),  # REFUSED_STREAM
        (0x8, StatusCode.CANCELLED),  # CANCEL
        (0x9, StatusCode.INTERNAL),  # COMPRESSION_ERROR
        (0xA, StatusCode.INTERNAL),  # CONNECT_ERROR
        (0xB, StatusCode.RESOURCE_EXHAUSTED),  # ENHANCE_YOUR_CALM
        (0xC, StatusCode.PERMISSION_DENIED),  # INADEQUATE_SECURITY
        (0xD, StatusCode.INTERNAL),  # HTTP_1_1_REQUIRED, not in the table
        (0xFF, StatusCode.INTERNAL),  # unknown: treated as INTERNAL_ERROR (RFC 9113 s7)
    ],
)
def test_status_from_rst_stream(error_code: int, code: StatusCode) -> None:
    assert status_from_rst_stream(error_code) is code


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", ""),
        ("not found", "not found"),
        ("~!$&'()*+,;=:@[]{}|^`\"<>?/\\#", "~!$&'()*+,;=:@[]{}|^`\"<>?/\\#"),
        ("100%", "100%25"),
        ("%25", "%2525"),
        ("line\nbreak\ttab", "line%0Abreak%09tab"),
        ("\x00\x7f", "%00%7F"),
        ("héllo", "h%C3%A9llo"),
        ("€", "%E2%82%AC"),
        ("🚀", "%F0%9F%9A%80"),
    ],
)
def test_encode_grpc_message_examples(text: str, encoded: str) -> None:
    assert encode_grpc_message(text) == encoded
    assert decode_grpc_message(encoded) == text


def test_lone_surrogates_do_not_break_the_error_path() -> None:
    assert encode_grpc_message("a\ud800b") == "a?b"


@given(st.text())
@example("%")
@example("%%41")
@example("\x7f é \U0010ffff")
def test_grpc_message_round_trip(text: str) -> None:
    encoded = encode_grpc_message(text)
    # Only Percent-Byte-Unencoded characters and "%" + two uppercase hex digits.
    assert re.fullmatch(r"(?:[\x20-\x24\x26-\x7e]|%[0-9A-F]{2})*", encoded), encoded
    assert decode_grpc_message(encoded) == text


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("%", "%"),
        ("100%", "100%"),
        ("%4", "%4"),
        ("%zz", "%zz"),
        ("%G1%41", "%G1A"),
        ("%%41", "%A"),
        ("%c3%a9", "é"),  # lowercase hex from lenient peers
        ("%C3", "\ufffd"),  # truncated UTF-8
        ("%FF ok", "\ufffd ok"),
        ("raw é", "raw é"),  # unescaped non-ASCII is kept
    ],
)
def test_decoding_is_lenient(value: str, decoded: str) -> None:
    assert decode_grpc_message(value) == decoded


@given(st.text(alphabet="%0123456789abcdefABCDEFgz é\x00") | st.text())
def test_decoding_garbage_never_raises(value: str) -> None:
    decoded = decode_grpc_message(value)
    assert isinstance(decoded, str)
    if "%" not in value:
        # Nothing to unescape: the text comes back as it was (valid UTF-8 in, same out).
        assert decoded == value.encode("utf-8", "replace").decode("utf-8")
