"""``Observability``: the server observer netkit ships (metrics, traces, access log).

Give it to the server and expose its metrics::

    obs = netkit.observe.Observability()
    obs.mount(app)                                   # GET /metrics on the main port
    server = await nursery.start(partial(netkit.serve, app, observer=obs))
    # or on a separate admin port: await nursery.start(obs.serve_metrics, "0.0.0.0", 9464)

Per request it does, on the request's own task: read ``traceparent``/``tracestate`` and
make the request's span current (:mod:`._context`); count it in-flight; at the end add
one to the request's series (one dict lookup), its duration to the series' histogram
and its bytes; write one access-log line if ``netkit.access`` logs at INFO; and hand the
span to OpenTelemetry when that is enabled. Everything else (connections, HTTP/2
resets and GOAWAYs, limit hits) is a counter bump when it happens.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import trio
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..http import HTTPStream, Server, serve
from ..http._stream import error_body
from ._components import BalancerCollector, BalancerMetrics, RegistryCollector
from ._context import SpanContext, enter, from_headers, leave
from ._metrics import DEFAULT_MAX_SERIES, ServerCollector, ServerMetrics

access_log = logging.getLogger("netkit.access")
_perf = time.perf_counter
#: Statuses and outcomes that mean a limit refused the input.
_LIMIT_STATUSES: dict[int | str, str] = {
    413: "413",
    431: "431",
    "RESOURCE_EXHAUSTED": "RESOURCE_EXHAUSTED",
    "1009": "ws_1009",
}


class Exchange:
    """The observer's record of one request (``stream.exchange`` while it runs).

    Upper layers report through it: the WebSocket layer calls
    :meth:`websocket_opened` once the handshake succeeded; gRPC and WebSocket count
    messages in ``messages_in``/``messages_out``.
    """

    __slots__ = ("_metrics", "messages_in", "messages_out", "otel", "span", "start", "token", "ws")

    def __init__(self, metrics: ServerMetrics, start: float) -> None:
        self._metrics = metrics
        self.start = start
        self.span: SpanContext | None = None
        self.token: Any = None
        self.otel: Any = None
        self.ws = False
        self.messages_in = 0
        self.messages_out = 0

    def websocket_opened(self) -> None:
        """The request became a WebSocket session (counted until the handler ends)."""
        if not self.ws:
            self.ws = True
            self._metrics.connections_open["websocket"] += 1
            self._metrics.connections_total["websocket"] += 1


class Observability:
    """Metrics, trace context and the access log for one server (or several).

    - ``tracing``: read and propagate W3C Trace Context (on by default).
    - ``access_log``: one ``netkit.access`` INFO line per request/call/WebSocket session
      (on by default; it is written only when that logger is enabled for INFO).
    - ``otel``: also report each request as an OpenTelemetry server span, when the
      ``opentelemetry-api`` package is installed (otherwise a warning is logged
      and nothing is exported). Needs ``tracing``.
    - ``tracer_provider``: the OpenTelemetry ``TracerProvider`` to export through
      (implies ``otel``); by default the globally configured one.
    - ``registry``: the prometheus-client registry to expose (a new one by default);
      register your own metrics in it to have them on the same ``/metrics``.
    """

    def __init__(
        self,
        *,
        tracing: bool = True,
        access_log: bool = True,
        otel: bool = False,
        max_series: int = DEFAULT_MAX_SERIES,
        registry: CollectorRegistry | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.metrics = ServerMetrics(max_series=max_series)
        self.registry = registry or CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(self.metrics))
        self.tracing = tracing
        self.access_log = access_log
        self.otel: Any = None
        #: Balancers being watched, with their metrics (the live view lists backends).
        self.balancers: list[tuple[Any, BalancerMetrics]] = []
        if otel or tracer_provider is not None:
            from ._otel import OTelBridge

            self.otel = OTelBridge.create(tracer_provider)

    # -- ServerObserver -----------------------------------------------------------------
    def connection_opened(self, protocol: str) -> None:
        self.metrics.connections_open[protocol] += 1
        self.metrics.connections_total[protocol] += 1

    def connection_closed(self, protocol: str) -> None:
        self.metrics.connections_open[protocol] -= 1

    def reset(self, direction: str, code: int) -> None:
        self.metrics.count(self.metrics.resets, direction, int(code))

    def goaway(self, direction: str, code: int) -> None:
        self.metrics.count(self.metrics.goaways, direction, int(code))

    def limit_hit(self, kind: str) -> None:
        self.metrics.limit(kind)

    def request_started(self, stream: HTTPStream) -> Exchange:
        ex = Exchange(self.metrics, _perf())
        request = stream.request
        if self.tracing:
            parent: str | None = None
            state: str | None = None
            repeated = False
            for name, value in request.headers.raw():
                if name == b"traceparent":
                    repeated = parent is not None
                    parent = value.decode("latin-1")
                elif name == b"tracestate":
                    text = value.decode("latin-1")
                    state = text if state is None else f"{state},{text}"
            span = from_headers(None if repeated else parent, state)
            if self.otel is not None:
                ex.otel = self.otel.start(span, stream)
            ex.span = span
            ex.token = enter(span)
        metrics = self.metrics
        metrics.in_flight[request.http_version] = metrics.in_flight.get(request.http_version, 0) + 1
        if stream.stream_id:
            metrics.h2_streams_total += 1
        stream.exchange = ex
        return ex

    def request_finished(self, stream: HTTPStream, token: object) -> None:
        ex: Exchange = token  # type: ignore[assignment]
        duration = _perf() - ex.start
        request = stream.request
        metrics = self.metrics
        metrics.in_flight[request.http_version] -= 1
        status: int | str = stream.outcome or stream.status or "aborted"
        series = metrics.series(stream.protocol, request.method, stream.route, status)
        series.count += 1
        series.latency.observe(duration)
        series.bytes_in += stream.bytes_received
        series.bytes_out += stream.bytes_sent
        kind = _LIMIT_STATUSES.get(status)
        if kind is not None:
            metrics.limit(kind)
        if ex.ws:
            metrics.connections_open["websocket"] -= 1
        if ex.messages_in:
            metrics.message(stream.protocol, stream.route, "received", ex.messages_in)
        if ex.messages_out:
            metrics.message(stream.protocol, stream.route, "sent", ex.messages_out)
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            _log_access(stream, ex, duration, status)
        if ex.otel is not None:
            self.otel.end(ex.otel, stream, status)
        if ex.token is not None:
            leave(ex.token)

    # -- components -----------------------------------------------------------------------
    def watch_balancer(self, balancer: Any, proxy: Any = None) -> BalancerMetrics:
        """Expose a ``netkit.balance.Balancer`` (and its ``ReverseProxy``) on ``/metrics``."""
        metrics = BalancerMetrics()
        balancer.observer = metrics
        self.registry.register(BalancerCollector(balancer, metrics, proxy))
        self.balancers.append((balancer, metrics))
        return metrics

    def watch_registry(self, registry: Any) -> None:
        """Expose a ``netkit.discovery.MemoryRegistry`` on ``/metrics``."""
        self.registry.register(RegistryCollector(registry))

    # -- exposition ---------------------------------------------------------------------
    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the text format ``accept`` asks for (Prometheus or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    async def metrics_endpoint(self, stream: HTTPStream) -> None:
        """The scrape handler: ``app.route("GET", "/metrics", obs.metrics_endpoint)``."""
        body, content_type = self.exposition(stream.request.headers.get("accept"))
        await stream.respond(200, [("content-type", content_type)], body)

    def mount(self, app: Any, path: str = "/metrics") -> None:
        """Serve the metrics at ``GET path`` on ``app`` (a ``netkit.App``)."""
        app.route("GET", path, self.metrics_endpoint)

    async def serve_metrics(
        self,
        host: str | None = "127.0.0.1",
        port: int = 9464,
        *,
        path: str = "/metrics",
        task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """An admin server answering only ``GET`` and ``HEAD path`` (9464: OpenTelemetry's port).

        Other paths get 404, other methods 405 with ``Allow: GET, HEAD``.

        ``server = await nursery.start(obs.serve_metrics, "0.0.0.0", 9464)``. It is not
        observed itself, so scrapes do not show up in the metrics they read.
        """

        async def admin(stream: HTTPStream) -> None:
            request = stream.request
            if request.path != path:
                headers, body = error_body(404, f"no route for {request.path}")
                await stream.respond(404, headers, body)
            elif request.method not in ("GET", "HEAD"):
                headers, body = error_body(405, f"{request.method} not allowed on {path}")
                await stream.respond(405, [*headers, ("allow", "GET, HEAD")], body)
            else:
                await self.metrics_endpoint(stream)

        await serve(admin, host, port, task_status=task_status)

    def serve_with(self, handler: Any) -> functools.partial[Any]:
        """``nursery.start(obs.serve_with(app), host, port)``: ``netkit.serve`` observed by us."""
        return functools.partial(serve, handler, observer=self)


def _log_access(stream: HTTPStream, ex: Exchange, duration: float, status: int | str) -> None:
    request = stream.request
    route = stream.route
    # The template when a route matched; otherwise the path without its query string
    # (query strings carry tokens often enough never to be logged).
    target = route if route is not None else request.path
    principal = stream.principal
    access_log.info(
        "%s %s %s %.2fms",
        request.method,
        target,
        status,
        duration * 1000.0,
        extra={
            "access": True,
            "protocol": stream.protocol,
            "method": request.method,
            "route": target,
            "status": stream.status,
            "outcome": stream.outcome,
            "duration_ms": round(duration * 1000.0, 3),
            "bytes_in": stream.bytes_received,
            "bytes_out": stream.bytes_sent,
            "principal": str(principal) if principal is not None else "-",
            "http_version": request.http_version,
            "trace_id": ex.span.trace_id_hex if ex.span is not None else "-",
            "span_id": ex.span.span_id_hex if ex.span is not None else "-",
        },
    )
