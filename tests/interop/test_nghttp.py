"""nghttp (the nghttp2 reference client, strict about framing) agrees with the server.

nghttp exits 0 even when a stream fails, so every test also checks what it printed.
"""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest

from tests.helpers import running_server, url
from tests.interop.peers import (
    HELLO,
    assert_same_bytes,
    nghttp_bodies,
    nghttp_statuses,
    run_tool,
)

pytestmark = pytest.mark.interop

NOT_PROCESSED = b"Some requests were not processed"


async def test_get_hello(nghttp: str) -> None:
    async with running_server() as server:
        body = await run_tool([nghttp, url(server)])
        stats = await run_tool([nghttp, "-n", "-s", url(server)])
    assert body.stdout == HELLO
    assert NOT_PROCESSED not in body.stdout + body.stderr
    assert nghttp_statuses(stats.stdout) == {"/hello": 200}


@pytest.mark.parametrize(
    "windows",
    [[], ["--window-bits=14", "--connection-window-bits=15"]],
    ids=["default-windows", "small-client-windows"],
)
async def test_post_echo_comes_back_byte_exact(
    nghttp: str, windows: list[str], tmp_path: Path
) -> None:
    """1 MiB each way: nghttp waits for our WINDOW_UPDATEs, we wait for its."""
    data = random.Random(5).randbytes(1 << 20)
    (tmp_path / "body").write_bytes(data)
    async with running_server() as server:
        result = await run_tool(
            [nghttp, *windows, "-d", str(tmp_path / "body"), url(server, "/echo")]
        )
    assert NOT_PROCESSED not in result.stdout + result.stderr
    assert_same_bytes(result.stdout, data)


async def test_several_uris_share_one_connection(nghttp: str) -> None:
    paths = ["/hello", "/health", "/nope", "/hello?again=1"]
    async with running_server() as server:
        result = await run_tool([nghttp, "-v", "-n", "-s", *(url(server, p) for p in paths)])
    out = result.stdout
    assert NOT_PROCESSED not in out + result.stderr
    assert out.count(b"] Connected") == 1
    assert nghttp_statuses(out) == {
        "/hello": 200,
        "/health": 200,
        "/nope": 404,
        "/hello?again=1": 200,
    }
    bodies = nghttp_bodies(out)
    assert len(bodies) == 4 and all(ended for _, ended in bodies.values())


async def test_head_response_has_no_data(nghttp: str) -> None:
    """RFC 9110 9.3.2 / RFC 9113 8.1.1: a response to HEAD has no content; nghttp2 resets
    the stream (PROTOCOL_ERROR) if DATA arrives for it."""
    async with running_server() as server:
        result = await run_tool([nghttp, "-v", "-H", ":method: HEAD", url(server)])
    out = result.stdout
    assert NOT_PROCESSED not in out + result.stderr, out[-1500:].decode(errors="replace")
    assert b":status: 200" in out
    assert b"send RST_STREAM" not in out
    assert sum(length for length, _ in nghttp_bodies(out).values()) == 0


async def test_tls_alpn_negotiates_h2(nghttp: str, server_ssl_context: ssl.SSLContext) -> None:
    async with running_server(ssl_context=server_ssl_context) as server:
        # nghttp does not verify certificates; ALPN is what this test is about.
        result = await run_tool([nghttp, "-v", "-s", url(server, scheme="https")])
    out = result.stdout
    assert b"The negotiated protocol: h2" in out
    assert NOT_PROCESSED not in out + result.stderr
    assert nghttp_statuses(out) == {"/hello": 200}
    assert HELLO in out
