"""netkit's gRPC server, called by grpcio's client (a peer we did not write).

grpcio's synchronous client runs in a worker thread (``trio.to_thread``) while the
netkit server runs in the test's trio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
import httpx
import pytest
import trio

from netkit import App, Server
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import GRPCConfig, GRPCError, GRPCServer, ServerCall, StatusCode
from netkit.protos.echo.v1 import echo_pb2
from tests.helpers import running_server

T = TypeVar("T")

UNARY = "/netkit.echo.v1.Echo/Unary"
SERVER_STREAM = "/netkit.echo.v1.Echo/ServerStream"
CLIENT_STREAM = "/netkit.echo.v1.Echo/ClientStream"
BIDI = "/netkit.echo.v1.Echo/Bidi"


class Probe:
    """What the server-side handlers saw, for assertions from the test."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.finally_ran = trio.Event()
        self.cancelled = False
        self.metadata: list[tuple[str, Any]] = []
        self.remaining: float | None = None


def make_service(probe: Probe) -> EchoService:
    class Service(EchoService):
        async def Unary(
            self, request: echo_pb2.EchoRequest, call: ServerCall
        ) -> echo_pb2.EchoResponse:
            probe.metadata = list(call.metadata)
            probe.remaining = call.time_remaining()
            command = request.payload
            if command == b"boom":
                raise RuntimeError("handler bug")
            if command == b"abort":
                await call.abort(StatusCode.FAILED_PRECONDITION, "no, 100% ✗\nnewline", b"\x01\x02")
            if command == b"sleep":
                probe.entered.set()
                try:
                    await trio.sleep(30)
                except trio.Cancelled:
                    probe.cancelled = True
                    raise
                finally:
                    probe.finally_ran.set()
            if command == b"metadata":
                await call.send_initial_metadata([("x-initial", "yes")])
                call.set_trailing_metadata([("x-trailing", "done"), ("x-raw-bin", b"\x00\xff")])
            if command == b"compress":
                call.set_compression("gzip")
                return echo_pb2.EchoResponse(payload=b"z" * 10_000)
            if command == b"big":
                return echo_pb2.EchoResponse(payload=b"b" * (5 * 1024 * 1024))
            return await super().Unary(request, call)

    return Service()


@asynccontextmanager
async def grpc_server(
    probe: Probe | None = None, config: GRPCConfig | None = None
) -> AsyncIterator[Server]:
    app = App()
    app.grpc = GRPCServer([make_service(probe or Probe())], config=config)
    async with running_server(app) as server:
        yield server


@asynccontextmanager
async def grpcio_channel(server: Server, **options: Any) -> AsyncIterator[grpc.Channel]:
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.port}", options=list(options.items()) or None
    )
    try:
        yield channel
    finally:
        await trio.to_thread.run_sync(channel.close)


async def in_thread(fn: Callable[[], T]) -> T:
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


def unary(channel: grpc.Channel, **kwargs: Any) -> Any:
    return channel.unary_unary(
        UNARY,
        request_serializer=echo_pb2.EchoRequest.SerializeToString,
        response_deserializer=echo_pb2.EchoResponse.FromString,
        **kwargs,
    )


def call_error(fn: Callable[[], Any]) -> Callable[[], grpc.RpcError]:
    def run() -> grpc.RpcError:
        try:
            fn()
        except grpc.RpcError as exc:
            return exc
        raise AssertionError("the call succeeded")

    return run


async def test_all_four_kinds() -> None:
    async with grpc_server() as server, grpcio_channel(server) as channel:
        reply = await in_thread(lambda: unary(channel)(echo_pb2.EchoRequest(payload=b"hi")))
        assert reply.payload == b"hi"

        stream = channel.unary_stream(
            SERVER_STREAM,
            request_serializer=echo_pb2.EchoStreamRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )
        replies = await in_thread(
            lambda: list(stream(echo_pb2.EchoStreamRequest(payload=b"s", count=5)))
        )
        assert [r.payload for r in replies] == [b"s"] * 5
        empty = await in_thread(lambda: list(stream(echo_pb2.EchoStreamRequest(count=0))))
        assert empty == []

        gather = channel.stream_unary(
            CLIENT_STREAM,
            request_serializer=echo_pb2.EchoRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )

        def parts() -> Iterator[echo_pb2.EchoRequest]:
            for i in range(10):
                yield echo_pb2.EchoRequest(payload=bytes([65 + i]))

        joined = await in_thread(lambda: gather(parts()))
        assert joined.payload == b"ABCDEFGHIJ"

        bidi = channel.stream_stream(
            BIDI,
            request_serializer=echo_pb2.EchoRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )
        echoed = await in_thread(lambda: [r.payload for r in bidi(parts())])
        assert echoed == [bytes([65 + i]) for i in range(10)]


async def test_unknown_method_and_service_are_unimplemented() -> None:
    async with grpc_server() as server, grpcio_channel(server) as channel:
        for path in ("/netkit.echo.v1.Echo/Nope", "/no.Such/Service"):
            method = channel.unary_unary(path)
            error = await in_thread(call_error(lambda m=method: m(b"")))
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_handler_errors_become_statuses() -> None:
    async with grpc_server() as server, grpcio_channel(server) as channel:
        call = unary(channel)
        error = await in_thread(call_error(lambda: call(echo_pb2.EchoRequest(payload=b"boom"))))
        assert error.code() == grpc.StatusCode.UNKNOWN
        assert "handler bug" in error.details()

        error = await in_thread(call_error(lambda: call(echo_pb2.EchoRequest(payload=b"abort"))))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == "no, 100% ✗\nnewline"  # percent-encoding round trip
        trailers = dict(error.trailing_metadata())
        assert trailers["grpc-status-details-bin"] == b"\x01\x02"

        # The connection is fine afterwards.
        reply = await in_thread(lambda: call(echo_pb2.EchoRequest(payload=b"ok")))
        assert reply.payload == b"ok"


async def test_deadline_cancels_the_handler() -> None:
    probe = Probe()
    async with grpc_server(probe) as server, grpcio_channel(server) as channel:
        call = unary(channel)
        # Connect first: on a loaded machine the connection alone could eat the deadline,
        # and the call would expire in the client before the handler ever ran.
        await in_thread(lambda: call(echo_pb2.EchoRequest(payload=b"warm-up"), timeout=30))
        error = await in_thread(
            call_error(lambda: call(echo_pb2.EchoRequest(payload=b"sleep"), timeout=1.0))
        )
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with trio.fail_after(5):
            await probe.finally_ran.wait()
        assert probe.cancelled
        # grpc-timeout carries what is left of the client's deadline, rounded up to the
        # unit grpcio picks (it was seen as 1.0087 s for a 1 s timeout): close to 1 s.
        assert probe.remaining is not None and 0 <= probe.remaining <= 1.1


async def test_client_cancellation_cancels_the_handler() -> None:
    probe = Probe()
    async with grpc_server(probe) as server, grpcio_channel(server) as channel:
        future = unary(channel).future(echo_pb2.EchoRequest(payload=b"sleep"))
        with trio.fail_after(5):
            await probe.entered.wait()
        future.cancel()
        with trio.fail_after(5):
            await probe.finally_ran.wait()
        assert probe.cancelled


async def test_metadata_both_ways() -> None:
    probe = Probe()
    async with grpc_server(probe) as server, grpcio_channel(server) as channel:
        call = unary(channel)

        def run() -> Any:
            return call.with_call(
                echo_pb2.EchoRequest(payload=b"metadata"),
                metadata=[("x-user", "ada"), ("x-blob-bin", b"\x00\x01\xfe")],
            )

        reply, info = await in_thread(run)
        assert reply.payload == b"metadata"
        assert ("x-user", "ada") in probe.metadata
        assert ("x-blob-bin", b"\x00\x01\xfe") in probe.metadata
        assert ("x-initial", "yes") in info.initial_metadata()
        trailing = dict(info.trailing_metadata())
        assert trailing["x-trailing"] == "done"
        assert trailing["x-raw-bin"] == b"\x00\xff"


async def test_compression_both_ways() -> None:
    async with grpc_server() as server, grpcio_channel(server) as channel:
        call = unary(channel)
        payload = b"compress me " * 1000
        reply = await in_thread(
            lambda: call(echo_pb2.EchoRequest(payload=payload), compression=grpc.Compression.Gzip)
        )
        assert reply.payload == payload
        reply = await in_thread(lambda: call(echo_pb2.EchoRequest(payload=b"compress")))
        assert reply.payload == b"z" * 10_000


async def test_message_size_limits_spare_the_connection() -> None:
    config = GRPCConfig(max_receive_message_size=1024)
    async with grpc_server(config=config) as server, grpcio_channel(server) as channel:
        call = unary(channel)
        error = await in_thread(call_error(lambda: call(echo_pb2.EchoRequest(payload=b"x" * 4096))))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # grpcio's own 4 MiB receive limit refuses our 5 MiB response.
        error = await in_thread(call_error(lambda: call(echo_pb2.EchoRequest(payload=b"big"))))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reply = await in_thread(lambda: call(echo_pb2.EchoRequest(payload=b"still here")))
        assert reply.payload == b"still here"


async def test_non_grpc_content_type_gets_415() -> None:
    async with grpc_server() as server:
        async with httpx.AsyncClient(http2=True, http1=False) as client:
            response = await client.post(
                f"http://127.0.0.1:{server.port}{UNARY}",
                content=b"{}",
                headers={"content-type": "application/json"},
            )
        assert response.status_code == 415


@pytest.mark.parametrize("code", [StatusCode.NOT_FOUND, StatusCode.UNAUTHENTICATED])
async def test_interceptor_can_refuse(code: StatusCode) -> None:
    seen: list[str] = []

    async def guard(call: ServerCall, proceed: Callable[[], Any]) -> None:
        seen.append(call.method)
        if call.metadata_value("authorization") != "Bearer good":
            raise GRPCError(code, "go away")
        await proceed()

    app = App()
    app.grpc = GRPCServer([make_service(Probe())], interceptors=[guard])
    async with running_server(app) as server, grpcio_channel(server) as channel:
        call = unary(channel)
        error = await in_thread(call_error(lambda: call(echo_pb2.EchoRequest(payload=b"a"))))
        assert error.code().value[0] == int(code)
        reply = await in_thread(
            lambda: call(
                echo_pb2.EchoRequest(payload=b"a"), metadata=[("authorization", "Bearer good")]
            )
        )
        assert reply.payload == b"a"
        assert seen == [UNARY, UNARY]
