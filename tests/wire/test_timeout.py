"""grpc-timeout encoding (netkit.wire.grpc_timeout): at most 8 digits, finest unit,
rounded up so the server never sees less time than the client has; strict decoding."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from netkit.wire import MAX_TIMEOUT, InvalidTimeout, decode_timeout, encode_timeout

UNIT_SECONDS = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "S": Fraction(1),
    "M": Fraction(60),
    "H": Fraction(3600),
}
FINER = dict(zip("umSMH", "numSM", strict=True))


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (1e-9, "1n"),
        (1.5e-9, "2n"),
        (5e-324, "1n"),
        (0.099999999, "99999999n"),
        (0.1, "100000u"),  # 100000000n would be 9 digits
        (1, "1000000u"),
        (1.0000000001, "1000001u"),  # rounded up, not to nearest
        (99.999999, "99999999u"),
        (100, "100000m"),
        (100_000, "100000S"),
        (100_000_000, "1666667M"),
        (MAX_TIMEOUT - 1, "99999999H"),
    ],
)
def test_encode_examples(seconds: float, header: str) -> None:
    assert encode_timeout(seconds) == header


@pytest.mark.parametrize("seconds", [0, 0.0, -0.0, -1, -1e308])
def test_expired_deadlines_encode_as_the_smallest_positive_timeout(seconds: float) -> None:
    assert encode_timeout(seconds) == "1n"


def test_beyond_the_largest_value_is_clamped() -> None:
    assert encode_timeout(MAX_TIMEOUT) == "99999999H"
    assert encode_timeout(1e300) == "99999999H"


@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan])
def test_no_deadline_is_not_encodable(seconds: float) -> None:
    with pytest.raises(ValueError):
        encode_timeout(seconds)


@given(st.floats(min_value=0, max_value=MAX_TIMEOUT, exclude_min=True, exclude_max=True))
@example(0.1)
@example(0.3)
@example(1 / 3)
@example(2.675)
@example(99_999_999 * 3600 - 0.5)
def test_round_trip_never_shortens_and_loses_at_most_one_unit(seconds: float) -> None:
    header = encode_timeout(seconds)
    match = re.fullmatch(r"([0-9]{1,8})([HMSmun])", header)
    assert match is not None, header
    unit = UNIT_SECONDS[match[2]]
    decoded = decode_timeout(header)
    assert decoded >= seconds
    assert Fraction(decoded) - Fraction(seconds) <= unit + Fraction(math.ulp(decoded))
    if match[2] != "n":
        # The finest unit that fits: the next finer one would need 9 digits.
        assert seconds > 99_999_999 * UNIT_SECONDS[FINER[match[2]]] * (1 - 2**-50)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1H", 3600.0),
        ("5M", 300.0),
        ("10S", 10.0),
        ("250m", 0.25),
        ("7u", 7e-6),
        ("3n", 3e-9),
        ("0n", 0.0),  # what grpc-go sends for an expired deadline
        ("00000001S", 1.0),
        ("99999999H", MAX_TIMEOUT),
    ],
)
def test_decode_examples(header: str, seconds: float) -> None:
    assert decode_timeout(header) == seconds


@pytest.mark.parametrize(
    "header",
    [
        "",
        "S",
        "1",
        "123456789S",
        "1s",
        "1h",
        "1x",
        "-1S",
        "+1S",
        " 1S",
        "1S ",
        "1 S",
        "1.5S",
        "1e3m",
        "1SS",
        "1S\n",
        "0x1S",
        "\u0661S",  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit, not to the grammar
    ],
)
def test_malformed_values_are_rejected(header: str) -> None:
    with pytest.raises(InvalidTimeout) as info:
        decode_timeout(header)
    assert info.value.value == header


@given(st.text(alphabet="0123456789HMSmun -+. x", max_size=11) | st.text(max_size=11))
def test_decoding_accepts_exactly_the_grammar(header: str) -> None:
    valid = re.fullmatch(r"[0-9]{1,8}[HMSmun]", header, flags=re.ASCII) is not None
    try:
        decoded = decode_timeout(header)
    except InvalidTimeout:
        assert not valid
    else:
        assert valid
        assert decoded == float(int(header[:-1]) * UNIT_SECONDS[header[-1]])
