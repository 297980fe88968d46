"""The proxy's HTTP/1.1 upstream (``netkit.wire.h1_client``) in front of nginx.

nginx is the HTTP/1.1 server we did not write that backends most often are, and it
exercises what netkit's own backends do not: gzip-compressed chunked responses, static
files with ETags (304s) and HEAD, and connections it ends itself after
``keepalive_requests``. The client is httpx. nginx cannot bind port 0, so it gets a port
the kernel just handed out (as nghttpd does in ``test_client_peers``).
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from netkit.balance import Backend, Balancer, ReverseProxy, StaticBackends
from tests.helpers import running_server
from tests.interop.peers import tool

BIG = os.urandom(1 << 20)
TEXT = "".join(f"line {i}: the quick brown fox\n" for i in range(2000))

_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 3;
    default_type application/octet-stream;
    types {{ text/plain txt; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        gzip on;
        gzip_types text/plain;
        gzip_min_length 1;
        gzip_proxied any;  # the request carries Via: nginx would not compress otherwise
        location = /who {{
            default_type text/plain;
            return 200 "$connection $connection_requests $http_x_forwarded_for $http_via\\n";
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def nginx(tmp_path: Path) -> AsyncIterator[int]:
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "big.bin").write_bytes(BIG)
    (root / "text.txt").write_text(TEXT)
    port = _free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(_CONFIG.format(tmp=tmp_path, port=port, root=root))
    cmd = [tool("nginx"), "-p", str(tmp_path), "-c", str(config)]
    async with trio.open_nursery() as nursery:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
        run = functools.partial(trio.run_process, cmd, **quiet)
        process: trio.Process = await nursery.start(run)
        with trio.fail_after(10):
            while True:
                if process.returncode is not None:
                    pytest.fail(f"nginx exited ({process.returncode}) before listening")
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                break
        try:
            yield port
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def proxied_nginx(tmp_path: Path) -> AsyncIterator[str]:
    """nginx behind netkit's proxy (``protocol=auto``: REST over HTTP/1.1); its URL."""
    async with nginx(tmp_path) as port, trio.open_nursery() as nursery:
        proxy = ReverseProxy(Balancer(StaticBackends([Backend("127.0.0.1", port)])))
        await nursery.start(proxy.run)
        async with running_server(proxy) as front:
            yield f"http://127.0.0.1:{front.port}"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("http2", [False, True])
async def test_static_files_gzip_chunked_head_and_304_through_the_proxy(
    tmp_path: Path, http2: bool
) -> None:
    with trio.fail_after(20):
        async with (
            proxied_nginx(tmp_path) as url,
            httpx.AsyncClient(http1=not http2, http2=http2) as client,
        ):
            big = await client.get(f"{url}/big.bin")
            assert big.status_code == 200 and big.content == BIG  # streamed, 1 MiB
            assert big.headers["content-length"] == str(len(BIG))
            # gzip makes nginx answer chunked (its length is not known up front).
            text = await client.get(f"{url}/text.txt", headers={"accept-encoding": "gzip"})
            assert text.status_code == 200 and text.headers["content-encoding"] == "gzip"
            assert text.text == TEXT
            raw = await client.get(f"{url}/text.txt", headers={"accept-encoding": "identity"})
            assert raw.text == TEXT and "content-encoding" not in raw.headers
            head = await client.head(f"{url}/big.bin")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(BIG))
            etag = big.headers["etag"]
            cached = await client.get(f"{url}/big.bin", headers={"if-none-match": etag})
            assert cached.status_code == 304 and cached.content == b""
            missing = await client.get(f"{url}/nothing-here")
            assert missing.status_code == 404
            # And the connection is still good after all of those.
            again = await client.get(f"{url}/text.txt", headers={"accept-encoding": "gzip"})
            assert again.text == TEXT


async def test_connections_are_reused_until_nginx_ends_them(tmp_path: Path) -> None:
    """nginx closes a connection after 3 requests (``keepalive_requests 3``, with
    ``Connection: close`` on the third answer): the proxy reuses each connection for
    exactly those 3 and then opens a new one, without a failed request."""
    with trio.fail_after(20):
        async with proxied_nginx(tmp_path) as url, httpx.AsyncClient() as client:
            seen = []
            for _ in range(7):
                r = await client.get(f"{url}/who")
                assert r.status_code == 200, r.text
                connection, nth, forwarded_for, via = r.text.split(maxsplit=3)
                seen.append((connection, int(nth)))
                assert forwarded_for == "127.0.0.1" and "netkit" in via
    assert [nth for _, nth in seen] == [1, 2, 3, 1, 2, 3, 1]
    connections = [c for c, _ in seen]
    assert len(set(connections)) == 3  # one upstream connection per three requests
