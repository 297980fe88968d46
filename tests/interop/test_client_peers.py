"""netkit's HTTP/2 client against servers we did not write: nghttpd (nghttp2) and hypercorn.

Each server runs as a subprocess on 127.0.0.1 under ``trio.run_process`` in a nursery, so
it is killed when its test ends, and every test has a trio deadline. nghttpd cannot report
a port it picked, so it gets a free one; hypercorn binds port 0 and logs the port.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trustme

from netkit import ClientConfig, H2ClientConnection
from tests.interop.peers import assert_same_bytes, tool

pytestmark = pytest.mark.interop

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_listening(port: int, process: trio.Process) -> None:
    while True:
        if process.returncode is not None:
            pytest.fail(f"server exited with {process.returncode} before listening")
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.02)
            continue
        await stream.aclose()
        return


@asynccontextmanager
async def nghttpd(
    docroot: Path, *args: str, tls: tuple[Path, Path] | None = None
) -> AsyncIterator[int]:
    """Run nghttpd serving ``docroot``; yields its port."""
    port = _free_port()
    cmd = [tool("nghttpd"), "-a", "127.0.0.1", "-d", str(docroot), *args]
    cmd += [str(port), str(tls[0]), str(tls[1])] if tls else ["--no-tls", str(port)]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(_run, cmd)
        with trio.fail_after(5):
            await _wait_listening(port, process)
        try:
            yield port
        finally:
            nursery.cancel_scope.cancel()


async def _run(cmd: Sequence[str], *, task_status: trio.TaskStatus[trio.Process]) -> None:
    await trio.run_process(
        list(cmd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        task_status=task_status,
    )


@pytest.fixture
def docroot(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "htdocs"
    root.mkdir()
    big = os.urandom(MiB)
    (root / "big.bin").write_bytes(big)
    (root / "small.txt").write_bytes(b"small file\n")
    return root, big


async def test_nghttpd_concurrent_downloads_with_small_window(docroot: tuple[Path, bytes]) -> None:
    root, big = docroot
    results: dict[int, tuple[int, bytes]] = {}
    config = ClientConfig(initial_window_size=16 * 1024)
    with trio.fail_after(15):
        async with (
            nghttpd(root) as port,
            H2ClientConnection.connect("127.0.0.1", port, config=config) as conn,
        ):

            async def get(i: int) -> None:
                path = "/big.bin" if i % 2 else "/small.txt"
                status, _, body = await conn.request("GET", path)
                results[i] = (status, body)

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(get, i)
            status, _, _ = await conn.request("GET", "/missing")
            assert status == 404
    for i, (status, body) in results.items():
        assert status == 200
        assert_same_bytes(body, big if i % 2 else b"small file\n")


async def test_nghttpd_echoes_a_large_upload(docroot: tuple[Path, bytes]) -> None:
    root, _ = docroot
    payload = os.urandom(2 * MiB)
    with trio.fail_after(15):
        async with (
            nghttpd(root, "--echo-upload") as port,
            H2ClientConnection.connect("127.0.0.1", port) as conn,
        ):
            status, _, body = await conn.request("POST", "/small.txt", body=payload)
    assert status == 200
    assert_same_bytes(body, payload)


async def test_nghttpd_max_concurrent_streams_is_respected(docroot: tuple[Path, bytes]) -> None:
    """nghttp2 refuses streams over its limit; ``open_stream`` must wait instead."""
    root, big = docroot
    statuses: list[int] = []
    with trio.fail_after(15):
        async with (
            nghttpd(root, "-m", "2") as port,
            H2ClientConnection.connect("127.0.0.1", port) as conn,
        ):

            async def get() -> None:
                # open_stream, not request(): request() would hide a refusal by retrying.
                async with conn.stream("GET", "/big.bin", end_stream=True) as stream:
                    assert conn.open_stream_count <= 2
                    status, _ = await stream.receive_headers()
                    assert_same_bytes(await stream.read_body(), big)
                    statuses.append(status)

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(get)
    assert statuses == [200] * 8


async def test_nghttpd_tls_alpn(
    docroot: tuple[Path, bytes], ca: trustme.CA, client_ssl_context: ssl.SSLContext, tmp_path: Path
) -> None:
    root, _ = docroot
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    with trio.fail_after(10):
        async with (
            nghttpd(root, tls=(key_file, cert_file)) as port,
            H2ClientConnection.connect(
                "127.0.0.1", port, ssl_context=client_ssl_context, server_hostname="localhost"
            ) as conn,
        ):
            assert conn.scheme == "https"
            status, _, body = await conn.request("GET", "/small.txt")
    assert (status, body) == (200, b"small file\n")


# -- hypercorn ------------------------------------------------------------------------------

_ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = message["type"] + ".complete"
            await send({"type": done})
            if message["type"] == "lifespan.shutdown":
                return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"x-http-version", scope["http_version"].encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": bytes(body) or scope["path"].encode()})
"""

_RUNNING_ON = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


@asynccontextmanager
async def hypercorn(tmp_path: Path) -> AsyncIterator[int]:
    """Run hypercorn (trio worker, in-process) with a tiny echo app; yields its port."""
    (tmp_path / "asgi_echo.py").write_text(_ASGI_APP)
    cmd = [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0"]
    cmd += ["--bind", "127.0.0.1:0", "asgi_echo:app"]  # imported from cwd
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                cmd,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stderr is not None
        log = b""
        with trio.fail_after(10):
            while (match := _RUNNING_ON.search(log)) is None:
                chunk = await process.stderr.receive_some(4096)
                if not chunk:
                    pytest.fail(f"hypercorn exited before listening: {log!r}")
                log += chunk

        async def drain() -> None:  # keep reading so hypercorn never blocks on its log
            assert process.stderr is not None
            while await process.stderr.receive_some(4096):
                pass

        nursery.start_soon(drain)
        try:
            yield int(match.group(1))
        finally:
            nursery.cancel_scope.cancel()


async def test_hypercorn_h2c_echo_and_concurrency(tmp_path: Path) -> None:
    pytest.importorskip("hypercorn")
    payload = os.urandom(MiB)
    with trio.fail_after(20):
        async with (
            hypercorn(tmp_path) as port,
            H2ClientConnection.connect("127.0.0.1", port) as conn,
        ):
            status, headers, body = await conn.request("POST", "/echo", body=payload)
            assert status == 200
            assert headers.get("x-http-version") == "2"
            assert_same_bytes(body, payload)

            paths: dict[int, bytes] = {}

            async def get(i: int) -> None:
                status, _, body = await conn.request("GET", f"/item/{i}")
                assert status == 200
                paths[i] = body

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(get, i)
    assert paths == {i: f"/item/{i}".encode() for i in range(20)}
