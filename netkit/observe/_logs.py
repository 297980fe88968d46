"""Structured logs through ``logging``: trace ids on every line, secrets never printed.

* :class:`TraceContextFilter` puts ``trace_id`` and ``span_id`` (the current span's, or
  ``-``) on every record it sees; attach it to a handler and every line has them.
* :class:`JSONFormatter` writes one JSON object per line; :class:`KeyValueFormatter`
  writes ``key=value`` pairs (logfmt). Both print the fields a caller passed with
  ``extra=`` and run every field through :func:`redact`.
* :func:`configure_logging` wires both onto the root logger in one call.

Redaction works on names: a field or header named like a credential
(``authorization``, ``cookie``, ``set-cookie``, ``proxy-authorization``, anything
containing ``token``, ``secret``, ``password`` or ``api-key``/``api_key``) and every gRPC
``-bin`` metadata value is replaced by ``[redacted]``. The access log never prints
headers or query strings at all; redaction is the second line of defence for what
handlers log themselves.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from ._context import current_span

REDACTED = "[redacted]"
_SECRET_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
_SECRET_PARTS = ("token", "secret", "password", "passwd", "api-key", "api_key", "apikey")
#: Attributes every LogRecord has: not "extra" fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def is_secret(name: str) -> bool:
    """Whether a header, metadata key or field called ``name`` holds a credential."""
    lowered = name.lower()
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith("-bin")
        or any(part in lowered for part in _SECRET_PARTS)
    )


def redact_headers(
    headers: Iterable[tuple[str | bytes, str | bytes]],
) -> list[tuple[str, str]]:
    """Header or metadata pairs safe to log: credential values replaced."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        n = name.decode("latin-1") if isinstance(name, bytes) else name
        if is_secret(n):
            out.append((n, REDACTED))
        else:
            out.append((n, value.decode("latin-1") if isinstance(value, bytes) else value))
    return out


def redact(name: str, value: Any) -> Any:
    """``value`` for a log field called ``name``: redacted, or with its headers redacted."""
    if is_secret(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret(str(k)) else v) for k, v in value.items()}
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(p, tuple) and len(p) == 2 for p in value)
    ):
        return redact_headers(value)
    return value


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to each record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            span = current_span()
            if span is None:
                record.trace_id = record.span_id = "-"
            else:
                record.trace_id = span.trace_id_hex
                record.span_id = span.span_id_hex
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: redact(key, value)
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def _kv(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\\\n'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """``time=... level=... logger=... msg="..." trace_id=... key=value`` (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(_extras(record))
        line = " ".join(f"{key}={_kv(value)}" for key, value in fields.items())
        if record.exc_info:
            line += " exception=" + _kv(self.formatException(record.exc_info))
        return line


#: Libraries that print raw header blocks (DEBUG) or full URLs with their query strings
#: (httpx, INFO): credentials inside free text that redaction cannot find.
WIRE_LOGGERS = ("hpack", "h2", "httpcore", "httpx", "websockets", "grpc")


def configure_logging(
    *,
    format: str = "json",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    quiet_wire_loggers: bool = True,
) -> logging.Handler:
    """Send every ``logging`` record to ``stream`` (stderr) as JSON or key=value lines.

    Replaces the root logger's handlers with one that carries the trace filter and the
    chosen formatter, and returns it (tests and tools may remove it again). With
    ``quiet_wire_loggers`` (the default), the libraries in :data:`WIRE_LOGGERS` are
    capped at WARNING: they print header blocks and URLs with query strings, and
    redaction cannot find a credential inside a free-text message.
    """
    if format not in ("json", "kv"):
        raise ValueError(f"log format must be 'json' or 'kv', not {format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(JSONFormatter() if format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if quiet_wire_loggers:
        for name in WIRE_LOGGERS:
            wire = logging.getLogger(name)
            if wire.getEffectiveLevel() < logging.WARNING:
                wire.setLevel(logging.WARNING)
    return handler
