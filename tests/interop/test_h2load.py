"""h2load (nghttp2's load generator) gets every response, on both protocols.

Not a benchmark: the request counts are small enough to finish in well under a second;
the point is many concurrent streams (HTTP/2) or pipelined requests (HTTP/1.1 with
``-m``) across several connections, all answered 2xx.
"""

from __future__ import annotations

import random
import re
import ssl
from pathlib import Path

import pytest

from tests.helpers import running_server, url
from tests.interop.peers import run_tool

pytestmark = pytest.mark.interop


def summary(output: bytes) -> dict[str, int]:
    """The request and status-code counts of h2load's report; fails if they are missing."""
    text = output.decode(errors="replace")
    requests = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    )
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if requests is None or statuses is None:
        pytest.fail(f"no h2load report in:\n{text[-2000:]}")
    keys = ["total", "started", "done", "succeeded", "failed", "errored", "timeout"]
    counts = dict(zip(keys, map(int, requests.groups()), strict=True))
    counts.update(zip(["2xx", "3xx", "4xx", "5xx"], map(int, statuses.groups()), strict=True))
    return counts


def all_succeeded(n: int) -> dict[str, int]:
    return {
        "total": n,
        "started": n,
        "done": n,
        "succeeded": n,
        "failed": 0,
        "errored": 0,
        "timeout": 0,
        "2xx": n,
        "3xx": 0,
        "4xx": 0,
        "5xx": 0,
    }


@pytest.mark.parametrize(
    ("extra", "protocol"), [([], "h2c"), (["--h1"], "http/1.1")], ids=["h2", "http1.1"]
)
async def test_all_requests_succeed(h2load: str, extra: list[str], protocol: str) -> None:
    async with running_server() as server:
        result = await run_tool([h2load, *extra, "-n", "2000", "-c", "4", "-m", "16", url(server)])
    assert f"Application protocol: {protocol}".encode() in result.stdout
    assert summary(result.stdout) == all_succeeded(2000)


async def test_concurrent_uploads_all_echoed(h2load: str, tmp_path: Path) -> None:
    """64 KiB request bodies on 32 concurrent streams: every byte comes back."""
    body = tmp_path / "body"
    body.write_bytes(random.Random(6).randbytes(65536))
    async with running_server() as server:
        result = await run_tool(
            [h2load, "-n", "200", "-c", "4", "-m", "8", "-d", str(body), url(server, "/echo")]
        )
    assert summary(result.stdout) == all_succeeded(200)
    # the data received is exactly the 200 echoed bodies
    assert b"(%d) data" % (200 * 65536) in result.stdout


async def test_tls_with_alpn(h2load: str, server_ssl_context: ssl.SSLContext) -> None:
    async with running_server(ssl_context=server_ssl_context) as server:
        result = await run_tool(
            [h2load, "-n", "500", "-c", "4", "-m", "16", url(server, scheme="https")]
        )
    assert b"Application protocol: h2" in result.stdout
    assert summary(result.stdout) == all_succeeded(500)
