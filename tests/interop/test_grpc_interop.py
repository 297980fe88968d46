"""gRPC's standard interop test cases, both ways between netkit and grpcio.

* A: grpcio's client (``grpcio_interop_client.py``, a subprocess) against netkit's
  interop server, in-process and as ``netkit interop-server`` (the CLI, over TLS);
* B: ``netkit interop-client`` (a subprocess) against grpcio's server
  (``grpcio_interop_server.py``, a subprocess), plaintext and over TLS;
* netkit against itself in-process, and against a deliberately broken server, which
  shows that the cases can fail and that the CLI's exit status says so.

Each client runs every case in one process (``--test_case all``) and prints one
``PASS``/``FAIL`` line per case; the assertions name every failed case. Subprocesses run
under trio deadlines and are killed when a test ends, whatever its outcome.

Two netkit bugs this suite found (a client's cancellation logged as a handler failure;
grpcio's RST_STREAM(NO_ERROR) after a complete response turned into INTERNAL) are fixed;
the tests at the end of the file keep them fixed.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from netkit import App
from netkit.grpc import GRPCError, ServerCall, StatusCode, open_channel
from netkit.grpc.interop import server as interop_server
from netkit.grpc.interop.client import CASES
from netkit.grpc.interop.server import interop_app
from netkit.protos.grpc_testing import empty_pb2, messages_pb2
from netkit.protos.grpc_testing.test_netkit import UnimplementedServiceStub
from tests.helpers import running_server
from tests.interop.peers import ROOT, run_tool

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
GRPCIO_CLIENT = [sys.executable, str(HERE / "grpcio_interop_client.py")]
GRPCIO_SERVER = [sys.executable, str(HERE / "grpcio_interop_server.py")]
NETKIT = [sys.executable, "-m", "netkit"]
#: Every case, run in one client process: bounded well above the ~1 s it takes.
ALL_CASES_SECONDS = 20.0


# -- processes -------------------------------------------------------------------------
class Lines:
    """Everything a background process prints, collected line by line as it comes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = trio.Event()

    async def pump(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async with stream:
            async for chunk in stream:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                self.lines.extend(line.decode(errors="replace") for line in complete)
                self._changed.set()
        if buffer:
            self.lines.append(buffer.decode(errors="replace"))
        self.closed = True
        self._changed.set()

    async def wait_for(self, needle: str) -> str:
        while True:
            changed = self._changed = trio.Event()
            for line in self.lines:
                if needle in line:
                    return line
            if self.closed:
                pytest.fail(f"exited without printing {needle!r}:\n{self.text()}")
            await changed.wait()

    def text(self) -> str:
        return "\n".join(self.lines)


@attrs.frozen
class Background:
    process: trio.Process
    output: Lines
    port: int


@asynccontextmanager
async def background(args: Sequence[str], banner: str) -> AsyncIterator[Background]:
    """Run a server process until the block ends; ready once it prints ``banner PORT``."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                list(args),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
                cwd=str(ROOT),
            )
        )
        try:
            assert process.stdout is not None
            output = Lines()
            nursery.start_soon(output.pump, process.stdout)
            with trio.fail_after(10):
                line = await output.wait_for(banner)
            yield Background(process, output, int(line.rsplit(maxsplit=1)[-1]))
        finally:
            if process.returncode is None:
                process.kill()


def netkit_client(port: int, cases: str, *options: str) -> list[str]:
    """``netkit interop-client`` against 127.0.0.1:``port``."""
    target = ["--server_host", "127.0.0.1", "--server_port", str(port)]
    return [*NETKIT, "interop-client", *target, "--test_case", cases, *options]


def grpcio_client(port: int, cases: str, *options: str) -> list[str]:
    """grpcio's interop client against 127.0.0.1:``port``."""
    target = ["--server_host", "127.0.0.1", "--server_port", str(port)]
    return [*GRPCIO_CLIENT, *target, "--test_case", cases, *options]


async def run_client(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """Run an interop client to the end (killed past the deadline); never raises on
    its exit status, which the caller checks with the per-case results."""
    return await run_tool(args, seconds=ALL_CASES_SECONDS, check=False)


def outcomes(stdout: bytes) -> dict[str, str]:
    """Case name -> "PASS" or its failure message, from a client's output lines."""
    results: dict[str, str] = {}
    for line in stdout.decode(errors="replace").splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict == "PASS":
            results[rest.split(" ")[0]] = "PASS"
        elif verdict == "FAIL":
            name, _, why = rest.partition(": ")
            results[name] = why
    return results


def assert_passed(result: subprocess.CompletedProcess[bytes], names: Sequence[str]) -> None:
    """Every case in ``names`` passed and the client said so with its exit status."""
    results = outcomes(result.stdout)
    failed = {name: why for name, why in results.items() if why != "PASS"}
    missing = [name for name in names if name not in results]
    if failed or missing or result.returncode != 0:
        report = "\n".join(f"  {name}: {why}" for name, why in failed.items())
        pytest.fail(
            f"exit status {result.returncode}; {len(failed)} of {len(names)} cases failed"
            f"{f', no result for {missing}' if missing else ''}:\n{report}\n"
            f"stderr:\n{result.stderr.decode(errors='replace')[-3000:]}"
        )


async def stop_gracefully(server: Background) -> None:
    """SIGTERM, then the server must exit 0 promptly (the graceful-shutdown path)."""
    server.process.send_signal(signal.SIGTERM)
    with trio.fail_after(5):
        assert await server.process.wait() == 0, server.output.text()


# -- TLS material ----------------------------------------------------------------------
@attrs.frozen
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture
def tls_files(ca: trustme.CA, ca_file: Path, tmp_path: Path) -> TLSFiles:
    """A server certificate for 127.0.0.1 and localhost, and its CA, as PEM files."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    return TLSFiles(ca_file, tmp_path / "cert.pem", tmp_path / "key.pem")


# -- netkit against itself -------------------------------------------------------------
async def test_netkit_client_against_netkit_server() -> None:
    """All cases in-process: the baseline the peer runs below are compared with."""
    failures: dict[str, str] = {}
    async with (
        running_server(interop_app()) as server,
        open_channel("127.0.0.1", server.port) as channel,
    ):
        for name, case in CASES.items():
            try:
                with trio.fail_after(5):
                    await case(channel)
            except AssertionError as exc:
                failures[name] = str(exc)
    assert not failures, failures


class BrokenTestService(interop_server.TestService):
    """Answers UnaryCall one byte short: the cases that call it must notice."""

    async def UnaryCall(
        self, request: messages_pb2.SimpleRequest, call: ServerCall
    ) -> messages_pb2.SimpleResponse:
        reply = await super().UnaryCall(request, call)
        reply.payload.body = reply.payload.body[:-1]
        return reply


def broken_app() -> App:
    app = App()
    app.grpc.add_service(BrokenTestService())
    app.grpc.add_service(interop_server.UnimplementedService())
    return app


async def test_netkit_interop_client_fails_against_a_broken_server() -> None:
    """The cases can fail, and the CLI exits 1 when one does, naming it."""
    async with running_server(broken_app()) as server:
        result = await run_client(netkit_client(server.port, "empty_unary,large_unary"))
    assert result.returncode == 1, result
    results = outcomes(result.stdout)
    assert results["empty_unary"] == "PASS"
    assert results["large_unary"] == "response: payload of 314158 bytes, expected 314159"


# -- A: grpcio's client, netkit's server -----------------------------------------------
async def test_grpcio_client_against_netkit_server() -> None:
    async with running_server(interop_app()) as server:
        result = await run_client(grpcio_client(server.port, "all"))
    assert_passed(result, list(CASES))


async def test_grpcio_client_against_netkit_interop_server_cli_over_tls(
    tls_files: TLSFiles,
) -> None:
    """``netkit interop-server --use_tls``: banner, large_unary over TLS, SIGTERM exit 0."""
    tls = ["--use_tls", "--certfile", str(tls_files.cert), "--keyfile", str(tls_files.key)]
    args = [*NETKIT, "interop-server", "--port", "0", *tls]
    async with background(args, "netkit interop server on") as server:
        tls_client = ["--use_tls", "--ca_file", str(tls_files.ca)]
        override = ["--server_host_override", "localhost"]
        result = await run_client(grpcio_client(server.port, "large_unary", *tls_client, *override))
        assert_passed(result, ["large_unary"])
        await stop_gracefully(server)


async def test_interop_server_refuses_tls_without_a_certificate() -> None:
    with trio.fail_after(10):
        result = await trio.run_process(
            [*NETKIT, "interop-server", "--port", "0", "--use_tls"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=str(ROOT),
        )
    assert result.returncode == 2
    assert b"--use_tls needs --certfile and --keyfile" in result.stderr


# -- B: netkit's client, grpcio's server -----------------------------------------------
async def test_netkit_interop_client_against_grpcio_server() -> None:
    async with background([*GRPCIO_SERVER, "--port", "0"], "grpcio interop server on") as server:
        result = await run_client(netkit_client(server.port, "all"))
    assert_passed(result, list(CASES))


async def test_netkit_interop_client_against_grpcio_server_over_tls(tls_files: TLSFiles) -> None:
    tls = ["--use_tls", "--certfile", str(tls_files.cert), "--keyfile", str(tls_files.key)]
    server_args = [*GRPCIO_SERVER, "--port", "0", *tls]
    async with background(server_args, "grpcio interop server on") as server:
        tls_client = ["--use_tls=true", "--ca_file", str(tls_files.ca)]
        override = ["--server_host_override", "localhost"]
        result = await run_client(netkit_client(server.port, "large_unary", *tls_client, *override))
    assert_passed(result, ["large_unary"])


async def test_netkit_interop_client_rejects_unknown_cases() -> None:
    with trio.fail_after(10):
        result = await trio.run_process(
            [*NETKIT, "interop-client", "--server_port", "1", "--test_case", "large_unary,nope"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=str(ROOT),
        )
    assert result.returncode == 2
    assert b"unknown --test_case nope" in result.stderr


# -- codegen ---------------------------------------------------------------------------
async def test_codegen_command_writes_the_modules(tmp_path: Path) -> None:
    proto = "protocols/netkit/protos/echo/v1/echo.proto"
    with trio.fail_after(20):
        result = await trio.run_process(
            [*NETKIT, "codegen", "-I", "protocols", "--out", str(tmp_path), proto],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=str(ROOT),
        )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "netkit" / "protos" / "echo" / "v1"
    assert {"echo_pb2.py", "echo_pb2.pyi", "echo_netkit.py"} <= {p.name for p in out.iterdir()}
    assert "class EchoBase(netkit.grpc.Service):" in (out / "echo_netkit.py").read_text()


# -- regressions of bugs this suite found ----------------------------------------------
async def test_client_cancellation_is_not_logged_as_a_handler_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netkit")
    async with (
        running_server(interop_app()) as server,
        open_channel("127.0.0.1", server.port) as channel,
    ):
        with trio.fail_after(5):
            await CASES["cancel_after_begin"](channel)
            await CASES["empty_unary"](channel)  # the server has handled the reset by now
    assert not [r.getMessage() for r in caplog.records]


async def test_netkit_client_reports_the_status_after_rst_stream_no_error() -> None:
    """grpcio answers an unknown method as soon as its HEADERS arrive (Trailers-Only),
    then resets the stream with NO_ERROR since the request is unfinished. The request
    sent after that must not turn the call's UNIMPLEMENTED into INTERNAL."""
    async with (
        background([*GRPCIO_SERVER, "--port", "0"], "grpcio interop server on") as server,
        open_channel("127.0.0.1", server.port) as channel,
    ):
        stub = UnimplementedServiceStub(channel)
        with trio.fail_after(5), pytest.raises(GRPCError) as info:
            async with stub.UnimplementedCall.open() as call:
                await trio.sleep(0.2)  # the response and the RST_STREAM arrive meanwhile
                await call.send_message(empty_pb2.Empty(), end=True)
                await call.wait_status()
    assert info.value.code == StatusCode.UNIMPLEMENTED, info.value
