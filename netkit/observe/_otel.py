"""Optional OpenTelemetry export: each request, call or session as a SERVER span.

netkit never requires OpenTelemetry. With ``Observability(otel=True)`` and the
``opentelemetry-api`` package importable, every request starts a span through the
tracer provider given as ``tracer_provider=`` (else the globally configured one: the
application configures the SDK and its exporters as usual); without the package,
:meth:`OTelBridge.create` logs one warning and returns None, and nothing is exported.

The netkit span adopts the OpenTelemetry span's ids, so the ids in logs, in outbound
``traceparent`` headers and in the exported span are the same. netkit exports no
CLIENT spans: an outbound call made under an exported span names that span as its
parent (as OpenTelemetry's own propagator does without client instrumentation), so
the exported spans of a proxy and its backend form one parent/child chain. The span
is also made OpenTelemetry's current span for the handler, so spans the application
starts inside it are its children.
"""

from __future__ import annotations

import logging
from typing import Any

from ..http import HTTPStream
from ..wire.grpc_status import StatusCode
from ._context import SpanContext

log = logging.getLogger("netkit.observe")

#: gRPC statuses that mark a server span as an error (OpenTelemetry's RPC conventions).
GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class OTelBridge:
    """Starts and ends OpenTelemetry spans for netkit's server spans."""

    def __init__(self, trace: Any, context: Any, tracer_provider: Any = None) -> None:
        self._trace = trace
        self._context = context
        self._tracer = trace.get_tracer("netkit", tracer_provider=tracer_provider)

    @classmethod
    def create(cls, tracer_provider: Any = None) -> OTelBridge | None:
        """A bridge, or None (with a warning) when ``opentelemetry-api`` is not installed."""
        try:
            from opentelemetry import context, trace
        except ImportError:
            log.warning(
                "Observability(otel=True): opentelemetry-api is not installed, so no "
                "OpenTelemetry spans are exported (pip install 'netkit[otel]')"
            )
            return None
        return cls(trace, context, tracer_provider)

    def start(self, span: SpanContext, stream: HTTPStream) -> tuple[Any, Any]:
        """Start the SERVER span for ``stream``; returns it and the context token."""
        trace = self._trace
        parent = None
        if span.parent_id is not None:
            remote = trace.SpanContext(
                trace_id=span.trace_id,
                span_id=span.parent_id,
                is_remote=True,
                trace_flags=trace.TraceFlags(span.flags & 0xFF),
            )
            parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        else:
            # No (valid) traceparent: a new trace, whatever the caller's OTel context is.
            parent = self._context.Context()
        request = stream.request
        otel_span = self._tracer.start_span(
            request.method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "url.scheme": request.scheme,
                "url.path": request.path,
                "network.protocol.version": request.http_version,
            },
        )
        made = otel_span.get_span_context()
        if made.is_valid:
            span.trace_id = made.trace_id
            span.span_id = made.span_id
            span.flags = int(made.trace_flags)
            span.exported = True
        token = self._context.attach(trace.set_span_in_context(otel_span))
        return otel_span, token

    def end(self, started: tuple[Any, Any], stream: HTTPStream, status: int | str) -> None:
        otel_span, token = started
        self._context.detach(token)
        trace = self._trace
        route = stream.route
        method = stream.request.method
        error = (isinstance(status, int) and status >= 500) or status == "aborted"
        if stream.status:
            otel_span.set_attribute("http.response.status_code", stream.status)
        if stream.protocol == "grpc":
            otel_span.set_attribute("rpc.system", "grpc")
            if route is not None:
                service, _, rpc = route.lstrip("/").rpartition("/")
                otel_span.update_name(route.lstrip("/"))
                otel_span.set_attribute("rpc.service", service)
                otel_span.set_attribute("rpc.method", rpc)
            outcome = stream.outcome
            if outcome is not None and outcome in StatusCode.__members__:
                otel_span.set_attribute("rpc.grpc.status_code", int(StatusCode[outcome]))
                error = outcome in GRPC_SERVER_ERRORS
        elif route is not None:
            otel_span.update_name(f"{method} {route}")
            otel_span.set_attribute("http.route", route)
        if stream.protocol == "websocket" and stream.outcome is not None:
            code = int(stream.outcome)
            otel_span.set_attribute("netkit.websocket.close_code", code)
            error = code == 1011
        if error:
            otel_span.set_status(trace.Status(trace.StatusCode.ERROR))
        otel_span.end()
