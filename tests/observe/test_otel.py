"""OpenTelemetry export, read back with the SDK's in-memory exporter: one SERVER span
per REST request (httpx), gRPC call (grpcio) and WebSocket session (websockets), a
proxy hop as parent and child in one trace, and the behaviour without the package."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from websockets.trio.client import connect

import netkit
from netkit.balance import Backend, Balancer, ReverseProxy, StaticBackends
from netkit.observe import Observability, current_span, format_traceparent, parse_traceparent
from netkit.protos.echo.v1 import echo_pb2
from tests.observe.apps import echo_unary, observed, wait_until

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
CALLER = 0xB7AD6B7169203331
TRACEPARENT = format_traceparent(TRACE, CALLER, 1)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of the test's own (no global provider is set, nothing leaks)."""
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


def otel_obs(provider: TracerProvider) -> Observability:
    return Observability(otel=True, tracer_provider=provider, access_log=False)


def only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_rest_request_span(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    obs = otel_obs(provider)
    async with observed(obs) as (server, _), httpx.AsyncClient() as client:
        r = await client.get(
            f"http://127.0.0.1:{server.port}/v1/items/7?token=s3cret",
            headers={"traceparent": TRACEPARENT},
        )
        assert r.status_code == 200
        r = await client.get(f"http://127.0.0.1:{server.port}/nowhere")
        assert r.status_code == 404
    spans = exporter.get_finished_spans()
    span = only(spans, "GET /v1/items/{item_id:int}")
    assert span.kind is SpanKind.SERVER
    assert span.context is not None and span.context.trace_id == TRACE
    assert span.parent is not None and span.parent.span_id == CALLER and span.parent.is_remote
    attrs = dict(span.attributes or {})
    assert attrs["http.route"] == "/v1/items/{item_id:int}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/v1/items/7"  # never the query string
    assert "s3cret" not in repr(attrs)
    assert span.status.status_code is StatusCode.UNSET
    # No traceparent: a new trace and no parent; no route: the method alone.
    lost = only(spans, "GET")
    assert lost.parent is None and lost.context is not None and lost.context.trace_id != TRACE
    assert dict(lost.attributes or {})["http.response.status_code"] == 404
    assert "http.route" not in dict(lost.attributes or {})


async def test_server_error_and_app_spans_are_children(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    obs = otel_obs(provider)
    tracer = provider.get_tracer("app")
    logged: list[str] = []
    app = netkit.App()

    async def work(stream: netkit.HTTPStream) -> None:
        with tracer.start_as_current_span("inner"):
            span = current_span()
            assert span is not None
            logged.append(span.span_id_hex)
        await stream.respond(503, [], b"down")

    app.route("GET", "/work", work)
    async with observed(obs, app) as (server, _), httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{server.port}/work")
        assert r.status_code == 503
    spans = exporter.get_finished_spans()
    outer, inner = only(spans, "GET /work"), only(spans, "inner")
    assert outer.status.status_code is StatusCode.ERROR
    assert outer.context is not None and inner.context is not None
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id
    # netkit's span (logs, outbound headers) carries the exported span's ids.
    assert logged == [f"{outer.context.span_id:016x}"]


def _grpcio_calls(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = echo_unary(channel)
        reply = unary(echo_pb2.EchoRequest(payload=b"x"), metadata=[("traceparent", TRACEPARENT)])
        assert reply.payload == b"x"
        missing = channel.unary_unary("/netkit.echo.v1.Echo/Nope")
        with pytest.raises(grpc.RpcError) as info:
            missing(b"", metadata=[("traceparent", TRACEPARENT)])
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_grpc_call_span(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    async with observed(otel_obs(provider)) as (server, _):
        await trio.to_thread.run_sync(_grpcio_calls, server.port)
    spans = exporter.get_finished_spans()
    span = only(spans, "netkit.echo.v1.Echo/Unary")
    assert span.kind is SpanKind.SERVER
    assert span.context is not None and span.context.trace_id == TRACE
    assert span.parent is not None and span.parent.span_id == CALLER
    attrs = dict(span.attributes or {})
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == "netkit.echo.v1.Echo"
    assert attrs["rpc.method"] == "Unary"
    assert attrs["rpc.grpc.status_code"] == 0
    assert attrs["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    unknown = [s for s in spans if s is not span]
    assert len(unknown) == 1
    missing = dict(unknown[0].attributes or {})
    assert missing["rpc.grpc.status_code"] == 12  # UNIMPLEMENTED
    assert unknown[0].status.status_code is StatusCode.ERROR


async def test_websocket_session_span(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    async with observed(otel_obs(provider)) as (server, _):
        async with connect(
            f"ws://127.0.0.1:{server.port}/ws", additional_headers={"traceparent": TRACEPARENT}
        ) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        await wait_until(lambda: exporter.get_finished_spans())
    span = only(exporter.get_finished_spans(), "GET /ws")
    assert span.kind is SpanKind.SERVER
    assert span.context is not None and span.context.trace_id == TRACE
    assert span.parent is not None and span.parent.span_id == CALLER
    attrs = dict(span.attributes or {})
    assert attrs["http.route"] == "/ws"
    assert attrs["http.response.status_code"] == 101
    assert attrs["netkit.websocket.close_code"] == 1000
    assert span.status.status_code is StatusCode.UNSET


async def test_proxy_hop_is_parent_and_child(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    backend_app = netkit.App()
    received: list[str | None] = []

    async def hello(stream: netkit.HTTPStream) -> None:
        received.append(stream.request.headers.get("traceparent"))
        await stream.respond(200, [], b"hello")

    backend_app.route("GET", "/hello", hello)
    async with trio.open_nursery() as nursery:
        b = await nursery.start(otel_obs(provider).serve_with(backend_app), "127.0.0.1", 0)
        balancer = Balancer(StaticBackends([Backend("127.0.0.1", b.port, protocol="h1")]))
        proxy = ReverseProxy(balancer)
        await nursery.start(proxy.run)
        p = await nursery.start(otel_obs(provider).serve_with(proxy), "127.0.0.1", 0)
        async with httpx.AsyncClient() as client:
            r = await client.get(
                f"http://127.0.0.1:{p.port}/hello", headers={"traceparent": TRACEPARENT}
            )
        assert r.status_code == 200 and r.content == b"hello"
        nursery.cancel_scope.cancel()
    spans = exporter.get_finished_spans()
    child = only(spans, "GET /hello")
    parents = [s for s in spans if s is not child]
    assert len(parents) == 1
    parent = parents[0]  # the proxy routes no template: named by the method
    assert parent.name == "GET" and parent.kind is SpanKind.SERVER
    assert parent.context is not None and child.context is not None
    assert parent.context.trace_id == child.context.trace_id == TRACE
    assert parent.parent is not None and parent.parent.span_id == CALLER
    assert child.parent is not None and child.parent.span_id == parent.context.span_id
    forwarded = parse_traceparent(received[0] or "")
    assert forwarded is not None and forwarded.parent_id == parent.context.span_id


async def test_without_opentelemetry_warns_and_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with caplog.at_level(logging.WARNING, logger="netkit.observe"):
        obs = Observability(otel=True, access_log=False)
    assert obs.otel is None
    assert any("opentelemetry-api is not installed" in r.getMessage() for r in caplog.records)
    async with observed(obs) as (server, _), httpx.AsyncClient() as client:
        r = await client.get(
            f"http://127.0.0.1:{server.port}/hello", headers={"traceparent": TRACEPARENT}
        )
    assert r.status_code == 200
