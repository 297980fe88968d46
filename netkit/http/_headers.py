"""An immutable, ordered header list with case-insensitive lookup.

h11 and h2 both hand us headers as ``(bytes, bytes)`` pairs with lower-cased names; we
keep exactly that representation (no decoding on the hot path) and decode only the
values a caller asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

HeaderPair = tuple[bytes, bytes]
HeadersLike = Iterable[tuple[bytes | str, bytes | str]]


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def normalize(headers: HeadersLike) -> list[HeaderPair]:
    """Turn user-supplied pairs into lower-cased ``bytes`` pairs for h11/h2."""
    return [(_b(name).lower(), _b(value)) for name, value in headers]


class Headers:
    """Ordered header pairs as received; names are lower-case bytes."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[HeaderPair] = ()) -> None:
        self._pairs: tuple[HeaderPair, ...] = tuple(pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` decoded as latin-1, or ``default``."""
        key = name.lower().encode("latin-1")
        for k, v in self._pairs:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._pairs if k == key]

    def raw(self) -> tuple[HeaderPair, ...]:
        return self._pairs

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self._pairs)

    def __iter__(self) -> Iterator[HeaderPair]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({list(self._pairs)!r})"
