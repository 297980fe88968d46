"""The ``grpc-timeout`` header: how a client's deadline travels to the server.

PROTOCOL-HTTP2.md: ``Timeout → "grpc-timeout" TimeoutValue TimeoutUnit``, where
TimeoutValue is a "positive integer as ASCII string of at most 8 digits" and the unit is
one of ``H M S m u n``. "If Timeout is omitted a server should assume an infinite
timeout", which is why :func:`encode_timeout` refuses infinity rather than inventing a
value: no deadline means no header.

Rounding: the encoder rounds *up* in its unit, because a server that sees a shorter
timeout than the client holds would cancel work the client is still waiting for, while a
slightly longer one costs nothing (the client's own deadline still fires). The value is
taken at the float's shortest decimal form (``repr``), so ``0.1`` means 100 ms and not
0.1000000000000000055 s; the decoded float is still never less than the float passed in.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

from .errors import InvalidTimeout

__all__ = ["MAX_TIMEOUT", "decode_timeout", "encode_timeout"]

_MAX_VALUE = 99_999_999  # 8 digits

# Finest first: the encoder takes the first unit whose count fits in 8 digits.
_UNITS: tuple[tuple[str, Fraction], ...] = (
    ("n", Fraction(1, 10**9)),
    ("u", Fraction(1, 10**6)),
    ("m", Fraction(1, 10**3)),
    ("S", Fraction(1)),
    ("M", Fraction(60)),
    ("H", Fraction(3600)),
)
_UNIT_SECONDS = dict(_UNITS)

#: The longest timeout the header can carry: 99999999 hours, about 11,400 years.
MAX_TIMEOUT = float(_MAX_VALUE * 3600)

_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")


def encode_timeout(seconds: float) -> str:
    """The ``grpc-timeout`` value for a call with ``seconds`` left, in the finest unit
    whose count fits in 8 digits, rounded up.

    - ``seconds <= 0`` (the deadline has passed) gives ``"1n"``: the grammar asks for a
      positive integer, and 1 ns is the smallest timeout it can say. grpc-core does the
      same; grpc-go sends ``"0n"``, which :func:`decode_timeout` accepts.
    - More than :data:`MAX_TIMEOUT` is clamped to ``"99999999H"``: the only place where
      the peer sees less than was asked, and only beyond 11,000 years.
    - NaN and infinity raise ValueError: send no header for a call without a deadline.
    """
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"cannot encode a timeout of {seconds!r}; omit the header instead")
    if seconds <= 0:
        return "1n"
    if seconds >= MAX_TIMEOUT:
        return f"{_MAX_VALUE}H"
    exact = Fraction(Decimal(repr(seconds)))
    for unit, unit_seconds in _UNITS:
        count = math.ceil(exact / unit_seconds)
        if count <= _MAX_VALUE:
            return f"{count}{unit}"
    raise AssertionError("unreachable: seconds < MAX_TIMEOUT fits in hours")


def decode_timeout(value: str) -> float:
    """The timeout, in seconds, that a ``grpc-timeout`` header value carries.

    Strict about the shape -- 1 to 8 ASCII digits then one unit letter, nothing else (no
    sign, no spaces, no fraction) -- because a value we misread would set a wrong
    deadline silently; raises :class:`InvalidTimeout` otherwise. Lenient about one thing:
    a value of zero (``"0n"``, which grpc-go sends for an expired deadline) is accepted
    and gives 0.0, although the grammar says "positive".
    """
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        raise InvalidTimeout(value)
    count = int(match[1])
    unit_seconds = _UNIT_SECONDS[match[2]]
    # int / int and int * int are exact or correctly rounded: no float error creeps in.
    return count * unit_seconds.numerator / unit_seconds.denominator
