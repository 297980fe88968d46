"""Observability: Prometheus metrics, W3C trace context and structured logs.

``Observability`` is the server observer (``netkit.serve(..., observer=obs)``); the
trace context lives in a context variable (``current_span``) that outbound clients
read; ``configure_logging`` gives JSON or key=value lines with trace ids. See
docs/observability.md for every metric and how traces propagate.
"""

from ._context import SpanContext as SpanContext
from ._context import current_span as current_span
from ._context import inject as inject
from ._context import outbound_headers as outbound_headers
from ._context import use_span as use_span
from ._live import render as render_status
from ._live import run_live_status as run_live_status
from ._logs import JSONFormatter as JSONFormatter
from ._logs import KeyValueFormatter as KeyValueFormatter
from ._logs import TraceContextFilter as TraceContextFilter
from ._logs import configure_logging as configure_logging
from ._logs import redact_headers as redact_headers
from ._metrics import LATENCY_BUCKETS as LATENCY_BUCKETS
from ._observability import Exchange as Exchange
from ._observability import Observability as Observability
from ._tracecontext import TraceParent as TraceParent
from ._tracecontext import format_traceparent as format_traceparent
from ._tracecontext import format_tracestate as format_tracestate
from ._tracecontext import parse_traceparent as parse_traceparent
from ._tracecontext import parse_tracestate as parse_tracestate

__all__ = [
    "LATENCY_BUCKETS",
    "Exchange",
    "JSONFormatter",
    "KeyValueFormatter",
    "Observability",
    "SpanContext",
    "TraceContextFilter",
    "TraceParent",
    "configure_logging",
    "current_span",
    "format_traceparent",
    "format_tracestate",
    "inject",
    "outbound_headers",
    "parse_traceparent",
    "parse_tracestate",
    "redact_headers",
    "render_status",
    "run_live_status",
    "use_span",
]
