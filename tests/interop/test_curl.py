"""curl (libcurl with nghttp2 and OpenSSL) agrees with the server."""

from __future__ import annotations

import random
import re
import ssl
from pathlib import Path

import pytest

from tests.helpers import running_server, url
from tests.interop.peers import HELLO, assert_same_bytes, run_tool

pytestmark = pytest.mark.interop

#: curl's switch for each protocol, and the ``%{http_version}`` it then reports.
PROTOCOLS = pytest.mark.parametrize(
    ("flag", "version"),
    [("--http1.1", "1.1"), ("--http2-prior-knowledge", "2")],
    ids=["http1.1", "h2-prior-knowledge"],
)
WRITE_OUT = "%{http_version} %{response_code}"


@PROTOCOLS
async def test_get_hello(curl: str, flag: str, version: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with running_server() as server:
        result = await run_tool([curl, "-sS", flag, "-o", str(out), "-w", WRITE_OUT, url(server)])
    assert result.stdout.decode() == f"{version} 200"
    assert out.read_bytes() == HELLO


@PROTOCOLS
async def test_post_echo_comes_back_byte_exact(
    curl: str, flag: str, version: str, tmp_path: Path
) -> None:
    body = random.Random(3).randbytes(1 << 20)
    (tmp_path / "body").write_bytes(body)
    out = tmp_path / "out"
    async with running_server() as server:
        result = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "--data-binary",
                f"@{tmp_path / 'body'}",
                "-H",
                "content-type: application/octet-stream",
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                url(server, "/echo"),
            ]
        )
    assert result.stdout.decode() == f"{version} 200"
    assert_same_bytes(out.read_bytes(), body)


@PROTOCOLS
async def test_verbose_output_shows_the_protocol_spoken(curl: str, flag: str, version: str) -> None:
    async with running_server() as server:
        result = await run_tool([curl, "-sv", flag, url(server)])
    status_line = b"< HTTP/2 200" if version == "2" else b"< HTTP/1.1 200 OK"
    assert status_line in result.stderr
    assert result.stdout == HELLO


# curl 7.88 cannot reuse a prior-knowledge HTTP/2 connection (curl/curl#10634, fixed in 8.0):
# the connection tests speak HTTP/2 through TLS and ALPN instead.
@pytest.mark.parametrize("scheme", ["http", "https"], ids=["http1.1", "h2-tls"])
async def test_one_connection_serves_several_requests(
    curl: str, scheme: str, server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    tls = scheme == "https"
    args = [curl, "-sv", "--cacert", str(ca_file), "--http2" if tls else "--http1.1"]
    async with running_server(ssl_context=server_ssl_context if tls else None) as server:
        targets = [url(server, scheme=scheme)] * 3
        result = await run_tool(args + targets)
    assert result.stdout == HELLO * 3
    assert result.stderr.count(b"Re-using existing connection #0") == 2
    assert result.stderr.count(b"< HTTP/2 200" if tls else b"< HTTP/1.1 200 OK") == 3
    assert b"Connection #1" not in result.stderr


async def test_parallel_requests_multiplex_over_one_h2_connection(
    curl: str, server_ssl_context: ssl.SSLContext, ca_file: Path
) -> None:
    args = [curl, "-sv", "--parallel", "--http2", "--cacert", str(ca_file)]
    async with running_server(ssl_context=server_ssl_context) as server:
        targets = [url(server, path, "https") for path in ("/hello", "/health", "/nope")]
        result = await run_tool([*args, "-w", "\n%{http_version} %{response_code}\n", *targets])
    assert sorted(re.findall(rb"^2 (\d{3})$", result.stdout, re.M)) == [b"200", b"200", b"404"]
    assert result.stderr.count(b"Connected to 127.0.0.1") == 1
    assert b"Multiplexed connection found" in result.stderr


async def test_h2c_upgrade_offer_with_a_body_is_answered_over_http11(
    curl: str, tmp_path: Path
) -> None:
    """``curl --http2`` on cleartext offers ``Upgrade: h2c`` on every request. The server
    upgrades bodyless ones only (tests/interop/test_h2c_upgrade.py); an offer on a POST
    must be ignored and the request answered, whole, as plain HTTP/1.1."""
    body = random.Random(7).randbytes(50_000)
    (tmp_path / "body").write_bytes(body)
    out = tmp_path / "out"
    async with running_server() as server:
        result = await run_tool(
            [
                curl,
                "-sv",
                "--http2",
                "--data-binary",
                f"@{tmp_path / 'body'}",
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                url(server, "/echo"),
            ]
        )
    assert b"Upgrade: h2c" in result.stderr
    assert b"< HTTP/1.1 101" not in result.stderr
    assert result.stdout.decode() == "1.1 200"
    assert_same_bytes(out.read_bytes(), body)


async def test_expect_100_continue(curl: str, tmp_path: Path) -> None:
    body = random.Random(4).randbytes(100_000)
    (tmp_path / "body").write_bytes(body)
    out = tmp_path / "out"
    async with running_server() as server:
        result = await run_tool(
            [
                curl,
                "-sv",
                "--http1.1",
                "--expect100-timeout",
                "1",
                "-H",
                "expect: 100-continue",
                "--data-binary",
                f"@{tmp_path / 'body'}",
                "-o",
                str(out),
                url(server, "/echo"),
            ]
        )
    # The 100 comes before the 200 (the reason phrase is optional), and curl did not have
    # to give up waiting for it ("Done waiting for 100-continue").
    assert re.search(rb"< HTTP/1.1 100\b.*< HTTP/1.1 200 OK", result.stderr, re.S)
    assert b"Done waiting for 100-continue" not in result.stderr
    assert_same_bytes(out.read_bytes(), body)


@PROTOCOLS
async def test_head_gets_the_headers_without_a_body(curl: str, flag: str, version: str) -> None:
    async with running_server() as server:
        result = await run_tool(
            [curl, "-sS", "--head", flag, "-w", WRITE_OUT, url(server)], check=False
        )
    assert result.returncode == 0, result.stderr
    head, _, write_out = result.stdout.rpartition(b"\r\n\r\n")
    assert write_out.decode() == f"{version} 200"
    assert f"content-length: {len(HELLO)}".encode() in head.lower()


@pytest.mark.parametrize(
    ("flag", "version"), [("--http2", "2"), ("--http1.1", "1.1")], ids=["h2", "http1.1"]
)
async def test_tls_alpn_picks_the_protocol(
    curl: str,
    flag: str,
    version: str,
    server_ssl_context: ssl.SSLContext,
    ca_file: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    async with running_server(ssl_context=server_ssl_context) as server:
        result = await run_tool(
            [
                curl,
                "-sv",
                flag,
                "--cacert",
                str(ca_file),
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                url(server, scheme="https"),
            ]
        )
    assert result.stdout.decode() == f"{version} 200"
    assert out.read_bytes() == HELLO
    alpn = b"h2" if version == "2" else b"http/1.1"
    assert b"ALPN: server accepted " + alpn in result.stderr
