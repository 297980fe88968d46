"""Content codings and entity tags: the sans-I/O helpers, property-tested."""

from __future__ import annotations

import gzip
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.errors import HTTPStatusError
from netkit.rest._caching import etag_of_bytes, gzip_etag, if_match, none_match, parse_etags
from netkit.rest._encoding import GzipReader, accepts_gzip, request_coding


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("br, deflate", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # gzip named explicitly: its q wins over *
        ("identity, x-gzip", True),
        ("gzip;q=bogus", False),
    ],
)
def test_accept_encoding(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_request_coding() -> None:
    assert request_coding(None) == "identity"
    assert request_coding("identity") == "identity"
    assert request_coding("GZIP") == "gzip"
    for bad in ("br", "gzip, gzip", "deflate"):
        with pytest.raises(HTTPStatusError) as info:
            request_coding(bad)
        assert info.value.status == 415


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


@given(st.binary(max_size=4096), st.lists(st.integers(0, 10_000), max_size=8), st.integers(1, 3))
def test_gzip_reader_inflates_any_chunking_and_members(
    body: bytes, cuts: list[int], members: int
) -> None:
    data = b"".join(gzip.compress(body) for _ in range(members))
    reader = GzipReader(limit=len(body) * members)
    for chunk in chunked(data, cuts):
        reader.feed(chunk)
    assert reader.finish() == body * members


@given(st.integers(1, 5000), st.lists(st.integers(0, 10_000), max_size=8))
def test_gzip_reader_stops_at_the_limit(limit: int, cuts: list[int]) -> None:
    data = gzip.compress(b"a" * (limit + 1))
    reader = GzipReader(limit)
    with pytest.raises(HTTPStatusError) as info:
        for chunk in chunked(data, cuts):
            reader.feed(chunk)
        reader.finish()
    assert info.value.status == 413


def test_zip_bomb_is_refused_after_little_output() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB that compresses to ~64 KiB
    reader = GzipReader(limit=1024 * 1024)
    with pytest.raises(HTTPStatusError) as info:
        for i in range(0, len(bomb), 16384):
            reader.feed(bomb[i : i + 16384])
    assert info.value.status == 413
    assert sum(len(p) for p in reader._parts) <= 1024 * 1024 + 1


def test_broken_and_truncated_gzip_are_400() -> None:
    for data in (b"not gzip at all", gzip.compress(b"hello world")[:-6]):
        reader = GzipReader(1000)
        with pytest.raises(HTTPStatusError) as info:
            reader.feed(data)
            reader.finish()
        assert info.value.status == 400


tags = st.text(alphabet="abcXYZ09-,", min_size=1, max_size=8).map(lambda t: f'"{t}"')


@given(st.lists(st.tuples(st.booleans(), tags), min_size=1, max_size=5))
def test_parse_etags_round_trips(items: list[tuple[bool, str]]) -> None:
    rendered = [("W/" if weak else "") + tag for weak, tag in items]
    assert parse_etags(" , ".join(rendered)) == rendered


def test_comparisons() -> None:
    tag = etag_of_bytes(b"body")
    assert tag == etag_of_bytes(b"body") != etag_of_bytes(b"other")
    assert none_match(tag, tag) and none_match(f"W/{tag}", tag) and none_match("*", tag)
    assert none_match(gzip_etag(tag), tag)
    assert not none_match('"x"', tag) and not none_match("*", None)
    assert if_match(tag, tag) and if_match("*", tag) and if_match(f'"x", {tag}', tag)
    assert not if_match(f"W/{tag}", tag)  # strong comparison
    assert not if_match("*", None) and not if_match('"x"', tag)
