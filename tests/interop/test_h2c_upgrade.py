"""HTTP/1.1 ``Upgrade: h2c``: real clients (curl, nghttp) switch to HTTP/2 on one connection."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import trio

from tests.helpers import running_server, url


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: scripts/setup installs it")
    return path


async def test_curl_upgrades_to_h2c() -> None:
    curl = _need("curl")
    async with running_server() as server:
        with trio.fail_after(10):
            result = await trio.run_process(
                [curl, "-s", "-v", "--http2", url(server)], capture_stdout=True, capture_stderr=True
            )
    assert result.stdout == b'{"message":"hello, world"}'
    log = result.stderr.decode()
    assert "HTTP/1.1 101" in log
    assert "HTTP/2 200" in log


async def test_nghttp_upgrade_then_more_streams_on_the_same_connection() -> None:
    nghttp = _need("nghttp")
    async with running_server() as server:
        with trio.fail_after(10):
            result = await trio.run_process(
                [nghttp, "-u", "-n", "-s", url(server), url(server, "/health")],
                capture_stdout=True,
                stderr=subprocess.STDOUT,
            )
    out = result.stdout.decode()
    # nghttp prints one line per stream: both answered 200 over HTTP/2.
    assert out.count(" 200 ") == 2, out
