"""Optional OpenTelemetry export: each request as a SERVER span, when the API is installed.

netkit never requires OpenTelemetry. With ``Observability(otel=True)`` and the
``opentelemetry-api`` package importable, every request starts a span through the
globally configured tracer provider (the application configures the SDK and its
exporters as usual); without the package, :meth:`OTelBridge.create` returns None and
nothing happens. The netkit span adopts the OpenTelemetry span's ids, so the ids in
logs, in outbound ``traceparent`` headers and in the exported span are the same.
"""

from __future__ import annotations

from typing import Any

from ..http import HTTPStream
from ._context import SpanContext


class OTelBridge:
    """Starts and ends OpenTelemetry spans for netkit's server spans."""

    def __init__(self, trace: Any) -> None:
        self._trace = trace
        self._tracer = trace.get_tracer("netkit")

    @classmethod
    def create(cls) -> OTelBridge | None:
        """A bridge, or None when ``opentelemetry-api`` is not installed."""
        try:
            from opentelemetry import trace
        except ImportError:
            return None
        return cls(trace)

    def start(self, span: SpanContext, stream: HTTPStream) -> Any:
        trace = self._trace
        context = None
        if span.parent_id is not None:
            remote = trace.SpanContext(
                trace_id=span.trace_id,
                span_id=span.parent_id,
                is_remote=True,
                trace_flags=trace.TraceFlags(span.flags & 0xFF),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        request = stream.request
        otel_span = self._tracer.start_span(
            request.method,
            context=context,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "url.scheme": request.scheme,
                "network.protocol.version": request.http_version,
            },
        )
        made = otel_span.get_span_context()
        if made.is_valid:
            span.trace_id = made.trace_id
            span.span_id = made.span_id
            span.flags = int(made.trace_flags)
        return otel_span

    def end(self, otel_span: Any, stream: HTTPStream, status: int | str) -> None:
        route = stream.route
        if route is not None:
            otel_span.update_name(f"{stream.request.method} {route}")
            otel_span.set_attribute("http.route", route)
        if stream.status:
            otel_span.set_attribute("http.response.status_code", stream.status)
        if stream.protocol == "grpc" and stream.outcome is not None:
            otel_span.set_attribute("rpc.system", "grpc")
            otel_span.set_attribute("rpc.grpc.status_code", stream.outcome)
        if (isinstance(status, int) and status >= 500) or status == "aborted":
            otel_span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        otel_span.end()
