"""Server metrics: plain counters on the hot path, prometheus-client families on scrape.

Why not one ``prometheus_client.Counter`` child per label set? Each ``inc()`` takes a
lock and a histogram ``observe()`` walks its buckets: a few microseconds per request,
a visible share of a hello-world request. netkit's server runs on one trio thread, so
a request's numbers are kept in one small object per label set (found with one dict
lookup, created the first time the label set is seen) and turned into
prometheus-client metric families (``CounterMetricFamily``, ``HistogramMetricFamily``,
``GaugeMetricFamily``) only when ``/metrics`` is scraped. The data model and the text
format are prometheus-client's; the bookkeeping between scrapes is ours.

Cardinality is bounded: routes are templates (or ``<unmatched>``), methods outside
RFC 9110's set are folded into ``other``, statuses are HTTP codes, gRPC status names or
WebSocket close codes, and past ``max_series`` label sets new ones are counted under
route ``<overflow>``; the peer-chosen RST_STREAM and GOAWAY codes and the message
counts stop taking new label sets at ``max_series``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Latency bucket upper bounds in seconds: 100 µs to 10 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
UNMATCHED = "<unmatched>"
OVERFLOW = "<overflow>"
DEFAULT_MAX_SERIES = 2000


class Buckets:
    """A histogram between scrapes: per-bucket (not cumulative) counts, sum, count."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value

    def merge(self, other: Buckets) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs as ``HistogramMetricFamily`` takes them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` (None: no samples)."""
        total = self.count
        if not total:
            return None
        rank = q * total
        seen = 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")


class Series:
    """Everything counted for one ``(protocol, method, route, status)`` label set."""

    __slots__ = ("bytes_in", "bytes_out", "count", "latency")

    def __init__(self) -> None:
        self.count = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.latency = Buckets()


class ServerMetrics:
    """What a server observed: requests, connections, HTTP/2 events and limit hits."""

    def __init__(self, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.max_series = max_series
        #: ``(protocol, method, route, status)`` -> Series; status is an int or a name.
        self.requests: dict[tuple[str, str, str, int | str], Series] = {}
        self.in_flight: dict[str, int] = {"1.0": 0, "1.1": 0, "2": 0}
        self.connections_open: dict[str, int] = {"http/1.1": 0, "h2": 0, "websocket": 0}
        self.connections_total: dict[str, int] = {"http/1.1": 0, "h2": 0, "websocket": 0}
        self.h2_streams_total = 0
        #: ``(direction, code)`` -> count
        self.resets: dict[tuple[str, int], int] = {}
        self.goaways: dict[tuple[str, int], int] = {}
        self.limit_hits: dict[str, int] = {}
        #: ``(protocol, route, direction)`` -> messages (gRPC and WebSocket)
        self.messages: dict[tuple[str, str, str], int] = {}

    def series(self, protocol: str, method: str, route: str | None, status: int | str) -> Series:
        """The series for a finished request (created on first use, within the bound)."""
        if method not in KNOWN_METHODS:
            method = "other"
        key = (protocol, method, route or UNMATCHED, status)
        found = self.requests.get(key)
        if found is None:
            if len(self.requests) >= self.max_series:
                key = (protocol, method, OVERFLOW, status)
                found = self.requests.get(key)
            if found is None:
                found = self.requests[key] = Series()
        return found

    def count(self, table: dict[tuple[str, int], int], direction: str, code: int) -> None:
        """Count an RST_STREAM or GOAWAY; the peer picks the code, so new ones stop at the bound."""
        key = (direction, code)
        if key in table or len(table) < self.max_series:
            table[key] = table.get(key, 0) + 1

    def limit(self, kind: str) -> None:
        self.limit_hits[kind] = self.limit_hits.get(kind, 0) + 1

    def message(self, protocol: str, route: str | None, direction: str, n: int = 1) -> None:
        key = (protocol, route or UNMATCHED, direction)
        if key in self.messages or len(self.messages) < self.max_series:
            self.messages[key] = self.messages.get(key, 0) + n

    # -- reading ----------------------------------------------------------------------
    def latency_by_route(self) -> dict[tuple[str, str], Buckets]:
        out: dict[tuple[str, str], Buckets] = {}
        for (protocol, _method, route, _status), series in self.requests.items():
            out.setdefault((protocol, route), Buckets()).merge(series.latency)
        return out

    def totals(self) -> tuple[int, int, Buckets]:
        """Requests, failed requests (5xx, or a non-OK gRPC status), and all latencies."""
        requests = errors = 0
        latency = Buckets()
        for (_p, _m, _r, status), series in self.requests.items():
            requests += series.count
            if is_error(status):
                errors += series.count
            latency.merge(series.latency)
        return requests, errors, latency


#: gRPC statuses that mean the server (not the caller) failed, as the live view counts them.
_GRPC_ERRORS = frozenset({"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED"})


def is_error(status: int | str) -> bool:
    if isinstance(status, int):
        return status >= 500
    return status in _GRPC_ERRORS or status == "1011"


class ServerCollector(Collector):
    """Exposes :class:`ServerMetrics` as prometheus-client metric families."""

    def __init__(self, metrics: ServerMetrics, prefix: str = "netkit") -> None:
        self.metrics = metrics
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        m, p = self.metrics, self.prefix
        requests = CounterMetricFamily(
            f"{p}_requests",
            "Requests, gRPC calls and WebSocket sessions served, by route template and status.",
            labels=["protocol", "method", "route", "status"],
        )
        for (protocol, method, route, status), series in sorted(
            m.requests.items(), key=lambda item: tuple(map(str, item[0]))
        ):
            requests.add_metric([protocol, method, route, str(status)], series.count)
        yield requests

        duration = HistogramMetricFamily(
            f"{p}_request_duration_seconds",
            "Time from the request head to the end of the exchange.",
            labels=["protocol", "route"],
        )
        received = CounterMetricFamily(
            f"{p}_request_bytes", "Request body bytes read.", labels=["protocol", "route"]
        )
        sent = CounterMetricFamily(
            f"{p}_response_bytes", "Response body bytes sent.", labels=["protocol", "route"]
        )
        by_route: dict[tuple[str, str], list[int]] = {}
        for (protocol, _m, route, _s), series in m.requests.items():
            pair = by_route.setdefault((protocol, route), [0, 0])
            pair[0] += series.bytes_in
            pair[1] += series.bytes_out
        for (protocol, route), buckets in sorted(m.latency_by_route().items()):
            duration.add_metric([protocol, route], buckets.cumulative(), buckets.sum)
            received.add_metric([protocol, route], by_route[protocol, route][0])
            sent.add_metric([protocol, route], by_route[protocol, route][1])
        yield duration
        yield received
        yield sent

        in_flight = GaugeMetricFamily(
            f"{p}_requests_in_flight",
            "Requests whose handler is running, by HTTP version.",
            labels=["http_version"],
        )
        for version, n in m.in_flight.items():
            in_flight.add_metric([version], n)
        yield in_flight

        conns = GaugeMetricFamily(
            f"{p}_connections_open", "Open connections by protocol.", labels=["protocol"]
        )
        conns_total = CounterMetricFamily(
            f"{p}_connections", "Connections accepted, by protocol.", labels=["protocol"]
        )
        for protocol, n in m.connections_open.items():
            conns.add_metric([protocol], n)
            conns_total.add_metric([protocol], m.connections_total[protocol])
        yield conns
        yield conns_total

        streams_open = GaugeMetricFamily(f"{p}_http2_streams_open", "HTTP/2 streams being served.")
        streams_open.add_metric([], m.in_flight["2"])
        yield streams_open
        streams = CounterMetricFamily(f"{p}_http2_streams", "HTTP/2 streams started.")
        streams.add_metric([], m.h2_streams_total)
        yield streams

        for name, table, what in (
            ("http2_resets", m.resets, "RST_STREAM frames"),
            ("http2_goaways", m.goaways, "GOAWAY frames"),
        ):
            family = CounterMetricFamily(
                f"{p}_{name}",
                f"{what} sent and received, by error code.",
                labels=["direction", "code"],
            )
            for (direction, code), n in sorted(table.items()):
                family.add_metric([direction, _h2_code(code)], n)
            yield family

        limits = CounterMetricFamily(
            f"{p}_limit_hits", "Input refused by a limit, by kind.", labels=["kind"]
        )
        for kind, n in sorted(m.limit_hits.items()):
            limits.add_metric([kind], n)
        yield limits

        messages = CounterMetricFamily(
            f"{p}_messages",
            "gRPC and WebSocket messages, by route and direction.",
            labels=["protocol", "route", "direction"],
        )
        for (protocol, route, direction), n in sorted(m.messages.items()):
            messages.add_metric([protocol, route, direction], n)
        yield messages


def _h2_code(code: int) -> str:
    from h2.errors import ErrorCodes

    try:
        return ErrorCodes(code).name
    except ValueError:
        return str(code)
