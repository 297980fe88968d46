"""Upstream RST_STREAM codes reach the client unchanged through the proxy (grpcio sees
them), and ``HTTPStream.abort(code)`` sends the code it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
import h2.events
import pytest
import trio

import netkit
from netkit.balance import Backend, Balancer, ReverseProxy, StaticBackends
from netkit.http._stream import Handler
from tests.helpers import RawH2, running_server

pytestmark = pytest.mark.interop

T = TypeVar("T")
CANCEL = 0x8
INTERNAL_ERROR = 0x2


async def resetting(stream: netkit.HTTPStream) -> None:
    """A bare handler: ``/reset.Svc/[Early]Code{N}`` (after headers and one message, or
    before anything) ends with RST_STREAM(N)."""
    code = int(stream.request.target.rsplit("Code", 1)[1])
    await stream.read_body()
    if "Early" not in stream.request.target:
        await stream.send_headers(200, [("content-type", "application/grpc")])
        await stream.send_data(b"\x00\x00\x00\x00\x00")
    await stream.abort(code)


@asynccontextmanager
async def proxied(app: Handler) -> AsyncIterator[int]:
    async with running_server(app) as backend, trio.open_nursery() as nursery:
        proxy = ReverseProxy(Balancer(StaticBackends([Backend("127.0.0.1", backend.port)])))
        await nursery.start(proxy.run)
        async with running_server(proxy) as front:
            yield front.port
        nursery.cancel_scope.cancel()


async def in_thread(fn: Callable[[], T]) -> T:
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


def grpcio_status(port: int, method: str) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: Any = channel.unary_stream(method)
        try:
            for _ in call(b"", timeout=5):
                pass
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("/reset.Svc/Code8", grpc.StatusCode.CANCELLED),
        ("/reset.Svc/Code2", grpc.StatusCode.INTERNAL),
        ("/reset.Svc/EarlyCode8", grpc.StatusCode.CANCELLED),
        ("/reset.Svc/EarlyCode2", grpc.StatusCode.INTERNAL),
    ],
)
async def test_grpcio_sees_the_backends_reset_code_through_the_proxy(
    method: str, expected: grpc.StatusCode
) -> None:
    async with running_server(resetting) as direct:
        # The backend alone: grpcio's verdict on the reset we relay must be the same.
        assert await in_thread(lambda: grpcio_status(direct.port, method)) == expected
    async with proxied(resetting) as port:
        assert await in_thread(lambda: grpcio_status(port, method)) == expected


@pytest.mark.parametrize("code", [CANCEL, INTERNAL_ERROR, 0xB])
async def test_abort_sends_the_given_rst_stream_code(code: int) -> None:
    app = netkit.App()

    async def handler(stream: netkit.HTTPStream) -> None:
        await stream.send_headers(200, [])
        await stream.abort(code)

    app.route("GET", "/x", handler)
    async with running_server(app) as server, RawH2.connect(server) as client:
        stream_id = client.request("/x")
        await client.flush()
        with trio.fail_after(5):
            await client.until(lambda e: isinstance(e, h2.events.StreamReset))
    assert client.rst_codes(stream_id) == [code]
