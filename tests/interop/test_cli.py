"""``netkit serve`` as a real process: it serves, and SIGTERM shuts it down gracefully.

The server binds port 0 and the test reads the port from the ``netkit serving ...`` line.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from tests.interop.peers import HELLO, ROOT, nghttp_bodies, nghttp_statuses, run_tool
from tests.interop.slow_app import SLOW_BODY, STARTED

pytestmark = pytest.mark.interop


class Output:
    """Line-by-line reader of the server's merged stdout and stderr."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.lines: list[bytes] = []

    async def readline(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        self.lines.append(bytes(line))
        return bytes(line)

    async def wait_for(self, needle: bytes) -> bytes:
        while (line := await self.readline()) is not None:
            if needle in line:
                return line
        pytest.fail(f"server exited without printing {needle!r}:\n{self.text()}")

    async def read_to_end(self) -> None:
        while await self.readline() is not None:
            pass

    def text(self) -> str:
        return b"\n".join([*self.lines, bytes(self._buffer)]).decode(errors="replace")


@attrs.define
class Cli:
    process: trio.Process
    output: Output
    port: int
    scheme: str

    def url(self, path: str = "/hello") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    async def wait_exit(self, seconds: float = 3.0) -> int:
        """Wait (bounded) for the process to exit; returns its exit status."""
        with trio.fail_after(seconds):
            await self.output.read_to_end()
            return await self.process.wait()


@asynccontextmanager
async def netkit_serve(app: str, *options: str) -> AsyncIterator[Cli]:
    """Run ``python -m netkit serve APP`` on 127.0.0.1:0 until its banner appears."""
    args = [sys.executable, "-m", "netkit", "serve", app, "--host", "127.0.0.1", "--port", "0"]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [*args, *options],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
                cwd=str(ROOT),
            )
        )
        try:
            assert process.stdout is not None
            output = Output(process.stdout)
            with trio.fail_after(4):
                banner = await output.wait_for(b"netkit serving")
            scheme, _, rest = banner.decode().rpartition(" ")[2].partition("://")
            yield Cli(process, output, int(rest.rpartition(":")[2]), scheme)
        finally:
            if process.returncode is None:
                process.kill()


async def test_serves_both_protocols_and_exits_0_on_sigterm(curl: str) -> None:
    async with netkit_serve("netkit.examples.hello:app") as cli:
        for flag, version in [("--http1.1", b"1.1"), ("--http2-prior-knowledge", b"2")]:
            result = await run_tool([curl, "-sS", flag, "-w", "\n%{http_version}", cli.url()])
            assert result.stdout == HELLO + b"\n" + version
        cli.process.send_signal(signal.SIGTERM)
        assert await cli.wait_exit() == 0, cli.output.text()
    assert "SIGTERM: shutting down gracefully" in cli.output.text()


async def test_serves_tls_with_alpn(
    curl: str, ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    options = ["--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")]
    async with netkit_serve("netkit.examples.hello:app", *options) as cli:
        assert cli.scheme == "https"
        for flag, version in [("--http1.1", b"1.1"), ("--http2", b"2")]:
            result = await run_tool(
                [curl, "-sS", flag, "--cacert", str(ca_file), "-w", "\n%{http_version}", cli.url()]
            )
            assert result.stdout == HELLO + b"\n" + version
        cli.process.send_signal(signal.SIGTERM)
        assert await cli.wait_exit() == 0, cli.output.text()


async def test_sigterm_lets_in_flight_requests_finish(curl: str, nghttp: str) -> None:
    """One slow request per protocol is in its handler when SIGTERM arrives: both get
    their whole response, then the process exits 0."""
    async with netkit_serve("tests.interop.slow_app:app") as cli:
        results: dict[str, subprocess.CompletedProcess[bytes]] = {}

        async def fetch(name: str, args: list[str]) -> None:
            results[name] = await run_tool(args, check=False)

        with trio.fail_after(4.5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch, "curl", [curl, "-sS", "--http1.1", cli.url("/slow")])
                nursery.start_soon(fetch, "nghttp", [nghttp, "-v", "-n", "-s", cli.url("/slow")])
                await cli.output.wait_for(STARTED.encode())
                await cli.output.wait_for(STARTED.encode())
                cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0, cli.output.text()

    h1 = results["curl"]
    assert h1.returncode == 0, h1.stderr
    assert h1.stdout == SLOW_BODY
    h2 = results["nghttp"]
    assert nghttp_statuses(h2.stdout) == {"/slow": 200}
    assert list(nghttp_bodies(h2.stdout).values()) == [(len(SLOW_BODY), True)]
    assert b"recv GOAWAY" in h2.stdout


async def test_second_signal_stops_at_once(curl: str) -> None:
    async with netkit_serve("tests.interop.slow_app:app") as cli:
        with trio.fail_after(3):
            async with trio.open_nursery() as nursery:
                results: list[subprocess.CompletedProcess[bytes]] = []

                async def fetch() -> None:
                    results.append(
                        await run_tool([curl, "-sS", "--http1.1", cli.url("/slow")], check=False)
                    )

                nursery.start_soon(fetch)
                await cli.output.wait_for(STARTED.encode())
                cli.process.send_signal(signal.SIGTERM)
                await cli.output.wait_for(b"shutting down gracefully")
                start = trio.current_time()
                cli.process.send_signal(signal.SIGTERM)
            assert await cli.wait_exit() == 0, cli.output.text()
            # well before the slow handler (1 s) could have answered
            assert trio.current_time() - start < 0.8
    assert results[0].returncode != 0  # the in-flight request was cut off
    assert results[0].stdout != SLOW_BODY


async def test_bad_app_spec_fails_with_a_message() -> None:
    args = [sys.executable, "-m", "netkit", "serve", "netkit.examples.hello:nope", "--port", "0"]
    with trio.fail_after(4):
        result = await trio.run_process(
            args, capture_stdout=True, capture_stderr=True, check=False, cwd=str(ROOT)
        )
    assert result.returncode != 0
    assert b"has no attribute 'nope'" in result.stderr
