"""Metrics of the long-lived components: the service registry and the load balancer.

Both are read at scrape time wherever the component already keeps the number (instances
by health, watchers, heartbeats and expirations, backend health and ejection state,
the proxy's attempt counters): nothing is paid per operation for those. The balancer
reports what it does not keep (picks, request outcomes, upstream latency, ejections,
health verdict changes) through its ``observer`` hook, to a :class:`BalancerMetrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ._metrics import Buckets


class BalancerMetrics:
    """The balancer's observer: counts by backend address (``host:port``)."""

    def __init__(self) -> None:
        self.picks: Counter[str] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.ejections: Counter[str] = Counter()
        self.health_changes: Counter[tuple[str, str]] = Counter()
        self.upstream: dict[str, Buckets] = {}

    def picked(self, backend: Any) -> None:
        self.picks[backend.address] += 1

    def ended(self, backend: Any, outcome: str, latency: float, ejected: bool) -> None:
        address = backend.address
        self.outcomes[address, outcome] += 1
        if outcome != "cancelled":
            buckets = self.upstream.get(address)
            if buckets is None:
                buckets = self.upstream[address] = Buckets()
            buckets.observe(latency)
        if ejected:
            self.ejections[address] += 1

    def health_changed(self, backend: Any, healthy: bool) -> None:
        self.health_changes[backend.address, "healthy" if healthy else "unhealthy"] += 1


class BalancerCollector(Collector):
    def __init__(
        self, balancer: Any, metrics: BalancerMetrics, proxy: Any = None, prefix: str = "netkit"
    ) -> None:
        self.balancer = balancer
        self.metrics = metrics
        self.proxy = proxy
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        p, m, lb = self.prefix, self.metrics, self.balancer.lb
        picks = CounterMetricFamily(
            f"{p}_balancer_picks", "Requests sent to each backend.", labels=["backend"]
        )
        for address, n in sorted(m.picks.items()):
            picks.add_metric([address], n)
        yield picks
        outcomes = CounterMetricFamily(
            f"{p}_balancer_requests",
            "Upstream attempts by backend and outcome (success, server_error, "
            "local_failure, cancelled).",
            labels=["backend", "outcome"],
        )
        for (address, outcome), n in sorted(m.outcomes.items()):
            outcomes.add_metric([address, outcome], n)
        yield outcomes
        latency = HistogramMetricFamily(
            f"{p}_balancer_upstream_duration_seconds",
            "Time from picking a backend to the end of its attempt.",
            labels=["backend"],
        )
        for address, buckets in sorted(m.upstream.items()):
            latency.add_metric([address], buckets.cumulative(), buckets.sum)
        yield latency
        ejections = CounterMetricFamily(
            f"{p}_balancer_ejections", "Outlier-detection ejections.", labels=["backend"]
        )
        for address, n in sorted(m.ejections.items()):
            ejections.add_metric([address], n)
        yield ejections
        checks = CounterMetricFamily(
            f"{p}_balancer_health_check_verdicts",
            "Active health-check verdict changes, by backend and new verdict.",
            labels=["backend", "result"],
        )
        for (address, result), n in sorted(m.health_changes.items()):
            checks.add_metric([address, result], n)
        yield checks

        now = trio.current_time() if _in_trio() else None
        healthy = GaugeMetricFamily(
            f"{p}_balancer_backend_healthy",
            "1 when the backend may take requests (healthy and not ejected), else 0.",
            labels=["backend"],
        )
        ejected = GaugeMetricFamily(
            f"{p}_balancer_backend_ejected", "1 while ejected.", labels=["backend"]
        )
        outstanding = GaugeMetricFamily(
            f"{p}_balancer_backend_outstanding", "Requests in flight.", labels=["backend"]
        )
        for state in sorted(lb.members, key=lambda s: s.backend.address):
            address = state.backend.address
            is_ejected = now is not None and state.ejected(now)
            healthy.add_metric([address], 1.0 if state.healthy and not is_ejected else 0.0)
            ejected.add_metric([address], 1.0 if is_ejected else 0.0)
            outstanding.add_metric([address], state.outstanding)
        yield healthy
        yield ejected
        yield outstanding
        exhausted = CounterMetricFamily(
            f"{p}_balancer_retry_budget_exhausted", "Retries the retry budget refused."
        )
        exhausted.add_metric([], lb.retry_budget_exhausted)
        yield exhausted
        if self.proxy is not None:
            for name, attr, doc in (
                ("proxy_attempts", "attempts", "Upstream attempts made by the proxy."),
                ("proxy_retries", "retries", "Attempts that were retries."),
                ("proxy_local_answers", "local_answers", "Requests the proxy answered itself "),
            ):
                family = CounterMetricFamily(f"{p}_{name}", doc)
                family.add_metric([], getattr(self.proxy, attr))
                yield family


class RegistryCollector(Collector):
    """Instances by service and health, heartbeats, expirations, watchers."""

    def __init__(self, registry: Any, prefix: str = "netkit") -> None:
        self.registry = registry
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        p = self.prefix
        core = self.registry.core
        instances = GaugeMetricFamily(
            f"{p}_registry_instances",
            "Registered instances by service and health.",
            labels=["service", "health"],
        )
        counts: Counter[tuple[str, str]] = Counter(
            (i.service, i.health.name.lower()) for i in core.instances()
        )
        for (service, health), n in sorted(counts.items()):
            instances.add_metric([service, health], n)
        yield instances
        heartbeats = CounterMetricFamily(
            f"{p}_registry_heartbeats", "Heartbeats accepted (rate() gives heartbeats/s)."
        )
        heartbeats.add_metric([], core.heartbeats)
        yield heartbeats
        expirations = CounterMetricFamily(
            f"{p}_registry_expirations", "Instances turned critical by a missed TTL."
        )
        expirations.add_metric([], core.expirations)
        yield expirations
        watchers = GaugeMetricFamily(f"{p}_registry_watchers", "Open watches.")
        watchers.add_metric([], len(self.registry._hub._watchers))
        yield watchers
        revision = GaugeMetricFamily(f"{p}_registry_revision", "The registry's revision.")
        revision.add_metric([], core.revision)
        yield revision


def _in_trio() -> bool:
    try:
        trio.current_time()
    except RuntimeError:
        return False
    return True
