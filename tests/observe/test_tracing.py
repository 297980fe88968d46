"""One trace id follows a call from httpx through the balancer's proxy to a backend,
and on through that backend's gRPC call; grpcio and RestClient carry it too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import trio

import netkit
from netkit.balance import Backend, Balancer, ReverseProxy, StaticBackends
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import ServerCall, open_channel
from netkit.observe import (
    Observability,
    SpanContext,
    current_span,
    format_traceparent,
    parse_traceparent,
    use_span,
)
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from tests.observe.apps import echo_unary

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER = 0x00F067AA0BA902B7
TRACEPARENT = format_traceparent(TRACE, CALLER, 1)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def access_records() -> Iterator[list[logging.LogRecord]]:
    handler = Collect()
    logger = logging.getLogger("netkit.access")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


async def test_one_trace_through_proxy_backend_and_grpc_hop() -> None:
    seen: dict[str, SpanContext | None] = {}

    class Service(EchoService):
        async def Unary(
            self, request: echo_pb2.EchoRequest, call: ServerCall
        ) -> echo_pb2.EchoResponse:
            seen["grpc"] = current_span()
            return echo_pb2.EchoResponse(payload=request.payload)

    grpc_app = netkit.App()
    grpc_app.grpc.add_service(Service())
    backend_app = netkit.App()
    grpc_port = 0

    async def chain(stream: netkit.HTTPStream) -> None:
        seen["backend"] = current_span()
        async with open_channel("127.0.0.1", grpc_port) as channel:
            reply = await EchoStub(channel).Unary(echo_pb2.EchoRequest(payload=b"hop"), timeout=5)
        await stream.respond(200, [], reply.payload)

    backend_app.route("GET", "/chain", chain)
    received: list[str | None] = []

    async def tap(stream: netkit.HTTPStream) -> None:
        received.append(stream.request.headers.get("traceparent"))
        await backend_app(stream)

    with access_records() as records:
        async with trio.open_nursery() as nursery:
            g = await nursery.start(Observability().serve_with(grpc_app), "127.0.0.1", 0)
            grpc_port = g.port
            b = await nursery.start(Observability().serve_with(tap), "127.0.0.1", 0)
            balancer = Balancer(StaticBackends([Backend("127.0.0.1", b.port, protocol="h1")]))
            proxy = ReverseProxy(balancer)
            await nursery.start(proxy.run)
            p = await nursery.start(Observability().serve_with(proxy), "127.0.0.1", 0)
            async with httpx.AsyncClient() as client:
                r = await client.get(
                    f"http://127.0.0.1:{p.port}/chain",
                    headers={"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"},
                )
            assert r.status_code == 200 and r.content == b"hop"
            nursery.cancel_scope.cancel()

    backend, hop = seen["backend"], seen["grpc"]
    assert backend is not None and hop is not None
    assert backend.trace_id == hop.trace_id == TRACE
    # The backend's parent is the proxy's outbound span, not the original caller.
    forwarded = parse_traceparent(received[0] or "")
    assert forwarded is not None and forwarded.trace_id == TRACE
    assert backend.parent_id == forwarded.parent_id != CALLER
    assert backend.tracestate == "vendor=opaque"
    assert hop.parent_id not in (None, backend.span_id, CALLER)  # the channel's call span
    # Three access lines (proxy, backend, gRPC server), one trace id.
    assert len(records) == 3
    assert {getattr(r, "trace_id", None) for r in records} == {f"{TRACE:032x}"}
    assert {getattr(r, "protocol", None) for r in records} == {"http", "grpc"}


def _grpcio_with_traceparent(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = echo_unary(channel)
        reply = unary(echo_pb2.EchoRequest(payload=b"x"), metadata=[("traceparent", TRACEPARENT)])
        return bytes(reply.payload)


async def test_grpcio_and_rest_client_carry_the_trace() -> None:
    spans: list[SpanContext | None] = []

    class Service(EchoService):
        async def Unary(
            self, request: echo_pb2.EchoRequest, call: ServerCall
        ) -> echo_pb2.EchoResponse:
            spans.append(current_span())
            return echo_pb2.EchoResponse(payload=request.payload)

    app = netkit.App()
    app.grpc.add_service(Service())
    headers: list[str | None] = []

    async def record(stream: netkit.HTTPStream) -> None:
        headers.append(stream.request.headers.get("traceparent"))
        await netkit.respond_json(stream, 200, {"ok": True})

    app.route("GET", "/record", record)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Observability().serve_with(app), "127.0.0.1", 0)
        assert await trio.to_thread.run_sync(_grpcio_with_traceparent, server.port) == b"x"
        async with netkit.RestClient(f"http://127.0.0.1:{server.port}") as client:
            await client.get("/record")  # outside a trace: nothing sent
            with use_span(SpanContext(TRACE, CALLER)):
                await client.get("/record")
        nursery.cancel_scope.cancel()
    assert spans[0] is not None and spans[0].trace_id == TRACE and spans[0].parent_id == CALLER
    assert headers[0] is None
    sent = parse_traceparent(headers[1] or "")
    assert sent is not None and sent.trace_id == TRACE and sent.parent_id != CALLER
