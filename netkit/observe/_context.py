"""The current span: one context variable, read by logs and by outbound calls.

An inbound request (HTTP, gRPC call, WebSocket handshake) gets a :class:`SpanContext`:
the trace id of its ``traceparent`` (a new random one when there is none or it is
invalid), a new span id of its own, and the caller's span as parent. It is held in a
``contextvars.ContextVar`` for the handler's duration; trio copies the context into
every task started from there, so work a handler spawns shares its trace.

Outbound calls (``RestClient``, the gRPC ``Channel``, the balancer's proxy) call
:func:`outbound_headers`: a ``traceparent`` naming the current trace and a fresh span
id for the outbound call (the span's own id when OpenTelemetry exports it, see
:mod:`._otel`), plus the ``tracestate`` received, unchanged. Outside any
request nothing is sent: netkit does not start traces on its own clients.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Iterator
from contextlib import contextmanager

from ._tracecontext import (
    SAMPLED,
    format_traceparent,
    parse_traceparent,
    parse_tracestate,
)

_random = random.Random()
_bits = _random.getrandbits


class SpanContext:
    """One span's identity: ids as integers, flags, and the ``tracestate`` to pass on."""

    __slots__ = ("exported", "flags", "parent_id", "span_id", "trace_id", "tracestate")

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int | None = None,
        flags: int = SAMPLED,
        tracestate: str | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.flags = flags
        self.tracestate = tracestate
        #: Set when OpenTelemetry exports this span (``Observability(otel=True)``):
        #: outbound calls then name it as their parent, since no CLIENT span is exported.
        self.exported = False

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_id_hex(self) -> str:
        return f"{self.span_id:016x}"

    @property
    def traceparent(self) -> str:
        """This span as a ``traceparent`` value (its span id as the parent id)."""
        return format_traceparent(self.trace_id, self.span_id, self.flags)

    def child(self) -> SpanContext:
        """A new span in the same trace with this one as its parent."""
        return SpanContext(self.trace_id, _random_id(64), self.span_id, self.flags, self.tracestate)

    def __repr__(self) -> str:
        return f"SpanContext(trace={self.trace_id_hex}, span={self.span_id_hex})"


def _random_id(bits: int) -> int:
    """A random ``bits``-bit trace (128) or span (64) id; never zero, which is invalid."""
    while True:
        value = _bits(bits)
        if value:
            return value


_current: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar(
    "netkit_span", default=None
)


def current_span() -> SpanContext | None:
    """The span of the request being served on this task (or its parent), or None."""
    return _current.get()


def from_headers(traceparent: str | None, tracestate: str | None) -> SpanContext:
    """The server span for a request carrying these header values (None: absent).

    An invalid ``traceparent`` starts a new trace and drops ``tracestate`` with it;
    an invalid ``tracestate`` alone is dropped (Trace Context §3.3.1).
    """
    if traceparent is not None:
        parent = parse_traceparent(traceparent)
        if parent is not None:
            state = None
            if tracestate is not None and parse_tracestate(tracestate):
                state = tracestate.strip()
            return SpanContext(
                parent.trace_id, _random_id(64), parent.parent_id, parent.flags, state
            )
    return SpanContext(_random_id(128), _random_id(64))


def enter(span: SpanContext | None) -> contextvars.Token[SpanContext | None]:
    """Make ``span`` current on this task; give the token back to :func:`leave`."""
    return _current.set(span)


def leave(token: contextvars.Token[SpanContext | None]) -> None:
    _current.reset(token)


@contextmanager
def use_span(span: SpanContext | None) -> Iterator[SpanContext | None]:
    """``with use_span(span):`` runs the block with ``span`` current (tests, tools)."""
    token = enter(span)
    try:
        yield span
    finally:
        leave(token)


def outbound_headers() -> list[tuple[str, str]]:
    """``traceparent`` (and ``tracestate``) for an outbound call; empty outside a trace."""
    span = _current.get()
    if span is None:
        return []
    span_id = span.span_id if span.exported else _random_id(64)
    pairs = [("traceparent", format_traceparent(span.trace_id, span_id, span.flags))]
    if span.tracestate:
        pairs.append(("tracestate", span.tracestate))
    return pairs


def inject(pairs: list[tuple[bytes, bytes]]) -> None:
    """Replace any ``traceparent``/``tracestate`` in ``pairs`` with the current span's.

    Used by the proxy, which forwards the client's headers: the backend must see the
    proxy's span as its parent, not the client's. Outside a trace, ``pairs`` is kept.
    """
    found = outbound_headers()
    if not found:
        return
    pairs[:] = [(n, v) for n, v in pairs if n not in (b"traceparent", b"tracestate")]
    pairs.extend((n.encode(), v.encode("latin-1")) for n, v in found)
