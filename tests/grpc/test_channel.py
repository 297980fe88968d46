"""netkit's gRPC client (Channel and generated stubs) against netkit's server and grpcio's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
import pytest
import trio

from netkit import App
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import (
    CallInfo,
    ChannelConfig,
    ClientInterceptor,
    GRPCConfig,
    GRPCError,
    GRPCServer,
    ServerCall,
    StatusCode,
    open_channel,
)
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from tests.helpers import running_server


class Watched(EchoService):
    """The echo service, plus a handler that sleeps and reports its cancellation."""

    def __init__(self) -> None:
        self.finally_ran = trio.Event()
        self.entered = trio.Event()

    async def Unary(self, request: echo_pb2.EchoRequest, call: ServerCall) -> echo_pb2.EchoResponse:
        if request.payload == b"sleep":
            self.entered.set()
            try:
                await trio.sleep(30)
            finally:
                self.finally_ran.set()
        if request.payload == b"fail":
            await call.abort(StatusCode.NOT_FOUND, "nothing here ✓", b"\x08\x05")
        if request.payload == b"metadata":
            await call.send_initial_metadata([("x-initial", call.metadata_value("x-in") or "")])
            call.set_trailing_metadata([("x-trailing-bin", b"\x00\x01")])
        return await super().Unary(request, call)

    async def Bidi(self, requests: AsyncIterator[echo_pb2.EchoRequest], call: ServerCall) -> None:
        self.entered.set()
        try:
            await super().Bidi(requests, call)
        finally:
            self.finally_ran.set()


@asynccontextmanager
async def netkit_echo(service: EchoService | None = None) -> AsyncIterator[tuple[int, Any]]:
    service = service or Watched()
    app = App()
    app.grpc = GRPCServer([service])
    async with running_server(app) as server:
        yield server.port, service


async def test_four_kinds_against_netkit() -> None:
    async with netkit_echo() as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        with trio.fail_after(10):
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"hi"))
            assert reply.payload == b"hi"

            async with stub.ServerStream(
                echo_pb2.EchoStreamRequest(payload=b"s", count=4)
            ) as replies:
                assert [r.payload async for r in replies] == [b"s"] * 4

            parts = [echo_pb2.EchoRequest(payload=bytes([65 + i])) for i in range(5)]
            assert (await stub.ClientStream(parts)).payload == b"ABCDE"

            async with stub.Bidi() as call:
                for part in parts:
                    await call.send_message(part)
                    reply = await call.recv_message()
                    assert reply is not None and reply.payload == part.payload
                await call.end()
                assert await call.recv_message() is None
                assert call.code == StatusCode.OK


async def test_many_concurrent_calls_share_one_connection() -> None:
    async with netkit_echo() as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        results: list[bytes] = []

        async def one(i: int) -> None:
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=str(i).encode()))
            results.append(reply.payload)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(one, i)
        assert sorted(results) == sorted(str(i).encode() for i in range(200))


async def test_status_message_details_and_metadata() -> None:
    async with netkit_echo() as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        with trio.fail_after(10):
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"fail"))
            assert info.value.code == StatusCode.NOT_FOUND
            assert info.value.message == "nothing here ✓"
            assert info.value.details == b"\x08\x05"

            async with stub.Unary.open(metadata=[("x-in", "hello")]) as call:
                await call.send_message(echo_pb2.EchoRequest(payload=b"metadata"), end=True)
                assert ("x-initial", "hello") in await call.recv_initial_metadata()
                await call.wait_status()
                assert call.trailing_metadata is not None
                assert ("x-trailing-bin", b"\x00\x01") in call.trailing_metadata


async def test_deadline_is_enforced_and_sent() -> None:
    service = Watched()
    async with netkit_echo(service) as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        with trio.fail_after(10):
            started = trio.current_time()
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"sleep"), timeout=0.3)
            assert info.value.code == StatusCode.DEADLINE_EXCEEDED
            assert trio.current_time() - started < 2
            await service.finally_ran.wait()  # the server-side handler was cancelled too


async def test_leaving_a_stream_early_cancels_the_server_handler() -> None:
    service = Watched()
    async with netkit_echo(service) as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        with trio.fail_after(10):
            async with stub.Bidi() as call:
                await call.send_message(echo_pb2.EchoRequest(payload=b"x"))
                await call.recv_message()
            await service.finally_ran.wait()
            # The channel is still good for other calls.
            assert (await stub.Unary(echo_pb2.EchoRequest(payload=b"y"))).payload == b"y"


async def test_compressed_requests() -> None:
    async with netkit_echo() as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        payload = b"abc" * 10_000
        with trio.fail_after(10):
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=payload), compression="gzip")
        assert reply.payload == payload


async def test_unreachable_server_is_unavailable() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with open_channel("127.0.0.1", port) as channel:
        with trio.fail_after(10), pytest.raises(GRPCError) as info:
            await EchoStub(channel).Unary(echo_pb2.EchoRequest())
        assert info.value.code == StatusCode.UNAVAILABLE


async def test_channel_reconnects_after_the_server_restarts() -> None:
    async with netkit_echo() as (port, _), open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        with trio.fail_after(10):
            assert (await stub.Unary(echo_pb2.EchoRequest(payload=b"1"))).payload == b"1"
            conn = channel._conn
            assert conn is not None
            await conn.aclose()  # the connection drops under the channel
            assert (await stub.Unary(echo_pb2.EchoRequest(payload=b"2"))).payload == b"2"
            assert channel._conn is not conn


# -- grpcio as the server -------------------------------------------------------------


class GrpcioEcho:
    """The echo service on grpcio's own server (threads), registered generically."""

    @staticmethod
    def unary(request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> Any:
        if request.payload == b"sleep":
            time.sleep(2)
        if request.payload == b"fail":
            context.abort(grpc.StatusCode.OUT_OF_RANGE, "too far")
        context.set_trailing_metadata([("x-from", "grpcio")])
        return echo_pb2.EchoResponse(payload=request.payload)

    @staticmethod
    def server_stream(request: echo_pb2.EchoStreamRequest, context: Any) -> Iterator[Any]:
        for _ in range(request.count):
            yield echo_pb2.EchoResponse(payload=request.payload)

    @staticmethod
    def client_stream(requests: Iterator[echo_pb2.EchoRequest], context: Any) -> Any:
        return echo_pb2.EchoResponse(payload=b"".join(r.payload for r in requests))

    @staticmethod
    def bidi(requests: Iterator[echo_pb2.EchoRequest], context: Any) -> Iterator[Any]:
        for request in requests:
            yield echo_pb2.EchoResponse(payload=request.payload)


@contextmanager
def grpcio_server() -> Iterator[int]:
    req, resp = echo_pb2.EchoRequest, echo_pb2.EchoResponse
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(
            GrpcioEcho.unary, req.FromString, resp.SerializeToString
        ),
        "ServerStream": grpc.unary_stream_rpc_method_handler(
            GrpcioEcho.server_stream,
            echo_pb2.EchoStreamRequest.FromString,
            resp.SerializeToString,
        ),
        "ClientStream": grpc.stream_unary_rpc_method_handler(
            GrpcioEcho.client_stream, req.FromString, resp.SerializeToString
        ),
        "Bidi": grpc.stream_stream_rpc_method_handler(
            GrpcioEcho.bidi, req.FromString, resp.SerializeToString
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("netkit.echo.v1.Echo", handlers)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


async def test_four_kinds_against_grpcio() -> None:
    with grpcio_server() as port:
        async with open_channel("127.0.0.1", port) as channel:
            stub = EchoStub(channel)
            with trio.fail_after(10):
                async with stub.Unary.open() as call:
                    await call.send_message(echo_pb2.EchoRequest(payload=b"hi"), end=True)
                    reply = await call.recv_message()
                    assert reply is not None and reply.payload == b"hi"
                    await call.wait_status()
                    assert ("x-from", "grpcio") in (call.trailing_metadata or [])

                async with stub.ServerStream(
                    echo_pb2.EchoStreamRequest(payload=b"s", count=3)
                ) as replies:
                    assert [r.payload async for r in replies] == [b"s"] * 3

                parts = [echo_pb2.EchoRequest(payload=bytes([97 + i])) for i in range(4)]
                assert (await stub.ClientStream(parts)).payload == b"abcd"

                async with stub.Bidi() as call:
                    for part in parts:
                        await call.send_message(part)
                        reply = await call.recv_message()
                        assert reply is not None and reply.payload == part.payload
                    await call.end()
                    assert await call.recv_message() is None

                with pytest.raises(GRPCError) as info:
                    await stub.Unary(echo_pb2.EchoRequest(payload=b"fail"))
                assert (info.value.code, info.value.message) == (StatusCode.OUT_OF_RANGE, "too far")

                with pytest.raises(GRPCError) as info:
                    await stub.Unary(echo_pb2.EchoRequest(payload=b"sleep"), timeout=0.2)
                assert info.value.code == StatusCode.DEADLINE_EXCEEDED

                big = b"q" * (1 << 20)
                reply = await stub.Unary(echo_pb2.EchoRequest(payload=big), compression="gzip")
                assert reply.payload == big


# -- client interceptors and graceful shutdown ------------------------------------------


class Recorder(ClientInterceptor):
    """Adds a token to every call and records how each one ended."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, StatusCode | None]] = []

    async def before(self, info: CallInfo) -> None:
        info.metadata.append(("authorization", "Bearer t0ken"))
        if info.path.endswith("/ClientStream"):
            raise GRPCError(StatusCode.PERMISSION_DENIED, "refused locally")
        await trio.lowlevel.checkpoint()

    def after(self, info: CallInfo, code: StatusCode | None, error: BaseException | None) -> None:
        self.outcomes.append((info.path.rpartition("/")[2], code))


async def test_client_interceptors_add_metadata_and_see_outcomes() -> None:
    seen_tokens: list[object] = []

    class Service(Watched):
        async def Unary(
            self, request: echo_pb2.EchoRequest, call: ServerCall
        ) -> echo_pb2.EchoResponse:
            seen_tokens.append(call.metadata_value("authorization"))
            return await super().Unary(request, call)

    recorder = Recorder()
    async with (
        netkit_echo(Service()) as (port, _),
        open_channel("127.0.0.1", port, interceptors=[recorder]) as channel,
    ):
        stub = EchoStub(channel)
        with trio.fail_after(10):
            await stub.Unary(echo_pb2.EchoRequest(payload=b"a"))
            with pytest.raises(GRPCError):
                await stub.Unary(echo_pb2.EchoRequest(payload=b"fail"))
            with pytest.raises(GRPCError) as info:
                await stub.ClientStream([echo_pb2.EchoRequest(payload=b"x")])
            assert info.value.code == StatusCode.PERMISSION_DENIED
    assert seen_tokens == ["Bearer t0ken", "Bearer t0ken"]
    assert recorder.outcomes == [("Unary", StatusCode.OK), ("Unary", StatusCode.NOT_FOUND)]


async def test_graceful_shutdown_finishes_calls_in_flight_and_refuses_new_ones() -> None:
    class Slow(EchoService):
        async def Unary(
            self, request: echo_pb2.EchoRequest, call: ServerCall
        ) -> echo_pb2.EchoResponse:
            await trio.sleep(0.5)
            return echo_pb2.EchoResponse(payload=request.payload)

    app = App()
    app.grpc = GRPCServer([Slow()])
    async with running_server(app) as server, open_channel("127.0.0.1", server.port) as channel:
        stub = EchoStub(channel)
        replies: list[bytes] = []

        async def in_flight() -> None:
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"finish me"))
            replies.append(reply.payload)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(in_flight)
                await trio.sleep(0.1)  # the call is at the server now
                server.shutdown()
                await trio.sleep(0.1)  # GOAWAY has arrived; the listener is closed
                with pytest.raises(GRPCError) as info:
                    await stub.Unary(echo_pb2.EchoRequest(payload=b"too late"))
                assert info.value.code == StatusCode.UNAVAILABLE
        assert replies == [b"finish me"]


async def test_failed_connection_attempts_back_off(autojump_clock: trio.abc.Clock) -> None:
    # Nothing listens on the port: each attempt fails at once, and the channel waits
    # 1 s, then 1.6 s, ... (±20 % jitter) before trying again, as grpcio does.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with open_channel("127.0.0.1", port) as channel:
        stub = EchoStub(channel)
        failed_at = []
        for _ in range(3):
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest())
            assert info.value.code == StatusCode.UNAVAILABLE
            failed_at.append(trio.current_time())
        first_wait, second_wait = failed_at[1] - failed_at[0], failed_at[2] - failed_at[1]
        assert 0.8 <= first_wait <= 1.2, first_wait
        assert 1.6 * 0.8 <= second_wait <= 1.6 * 1.2, second_wait


async def test_client_receive_limit_fails_one_call_only() -> None:
    config = ChannelConfig(max_receive_message_size=1024)
    async with (
        netkit_echo() as (port, _),
        open_channel("127.0.0.1", port, config=config) as channel,
    ):
        stub = EchoStub(channel)
        with trio.fail_after(10):
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"x" * 4096))
            assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"small"))
            assert reply.payload == b"small"


async def test_send_limits_on_both_sides() -> None:
    app = App()
    app.grpc = GRPCServer([Watched()], config=GRPCConfig(max_send_message_size=1024))
    config = ChannelConfig(max_send_message_size=2048)
    async with (
        running_server(app) as server,
        open_channel("127.0.0.1", server.port, config=config) as channel,
    ):
        stub = EchoStub(channel)
        with trio.fail_after(10):
            # Over the client's own limit: refused before anything is sent.
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"c" * 4096))
            assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
            # Within the client's limit, but the echo is over the server's.
            with pytest.raises(GRPCError) as info:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"s" * 1500))
            assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"fits"))
            assert reply.payload == b"fits"
