"""Helpers of the interop tests: running peer programs we did not write (curl, nghttp,
h2load), reading what they print, comparing large bodies.

Every subprocess runs under ``trio.run_process`` inside a ``trio.fail_after`` deadline, so
a peer that hangs fails its test instead of the suite. A missing peer program skips its
tests on a developer machine but fails them when ``CI`` is set, where it must be present.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

HELLO = b'{"message":"hello, world"}'
ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The path of the program ``name``; skip (fail under CI) if it is not installed."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, but CI must provide it")
        pytest.skip(f"{name} is not installed")
    return path


async def run_tool(
    args: Sequence[str], *, seconds: float = 4.0, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run a peer program to completion within ``seconds``, capturing its output.

    With ``check`` a non-zero exit fails the test and shows what the program printed.
    """
    with trio.fail_after(seconds):
        result = await trio.run_process(
            list(args), capture_stdout=True, capture_stderr=True, check=False
        )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout[-2000:]!r}\nstderr: {result.stderr[-2000:]!r}"
        )
    return result


def assert_same_bytes(got: bytes, expected: bytes) -> None:
    """Byte-exact equality with a short message (no megabyte-sized diff) when it fails."""
    if got == expected:
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
        min(len(got), len(expected)),
    )
    pytest.fail(f"got {len(got)} bytes, expected {len(expected)}; first difference at {first}")


_STATS_ROW = re.compile(rb"^ *\d+ +\+\S+ +\+\S+ +\S+ +(\d{3}) +(\S+) +(\S+) *$", re.M)
_DATA_FRAME = re.compile(rb"recv DATA frame <length=(\d+), flags=(0x[0-9a-f]+), stream_id=(\d+)>")


def nghttp_statuses(output: bytes) -> dict[str, int]:
    """Request path -> HTTP status, from the statistics ``nghttp -s`` prints."""
    return {path.decode(): int(code) for code, _size, path in _STATS_ROW.findall(output)}


def nghttp_bodies(output: bytes) -> dict[int, tuple[int, bool]]:
    """Stream id -> (DATA bytes received, END_STREAM seen), from ``nghttp -v`` frame logs."""
    bodies: dict[int, tuple[int, bool]] = {}
    for length, flags, sid in _DATA_FRAME.findall(output):
        total, ended = bodies.get(int(sid), (0, False))
        bodies[int(sid)] = (total + int(length), ended or bool(int(flags, 16) & 0x1))
    return bodies
