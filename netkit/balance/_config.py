"""The balancer's limits and timings, as data (frozen attrs classes with validators).

Defaults follow Envoy where it has one (panic threshold, outlier detection, retry
budget, circuit breakers) and gRPC for client-side reconnect backoff; each field's
docstring says so. Times are seconds on trio's clock.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

_nonneg = v.ge(0.0)
_pos = v.gt(0.0)
_fraction = [v.ge(0.0), v.le(1.0)]


@attrs.frozen(kw_only=True)
class OutlierConfig:
    """Passive outlier detection (Envoy's ``outlier_detection`` defaults).

    A backend whose last ``consecutive_failures`` requests all failed (5xx, gateway
    errors, connect failures, resets, timeouts) is ejected for
    ``base_ejection_time x (number of times it was ejected)``, capped at
    ``max_ejection_time``. At most ``max_ejection_percent`` of the backends are ejected
    at once, but always at least one may be (Envoy's rule: otherwise a fleet of fewer
    than ten would never eject anything). ``enabled=False`` turns it off.
    """

    enabled: bool = True
    consecutive_failures: int = attrs.field(default=5, validator=v.ge(1))
    base_ejection_time: float = attrs.field(default=30.0, validator=_pos)
    max_ejection_time: float = attrs.field(default=300.0, validator=_pos)
    max_ejection_percent: float = attrs.field(default=10.0, validator=[v.ge(0.0), v.le(100.0)])


@attrs.frozen(kw_only=True)
class BalancerConfig:
    """How the balancer chooses among backends.

    - ``panic_threshold``: when fewer than this fraction of the backends are available
      (healthy and not ejected), balance over all of them, as Envoy does (default 0.5),
      so a broken health check cannot black-hole all traffic. 0 disables panic mode:
      with no backend available, requests fail at once.
    - ``slow_start_window``: a backend that joins after the first membership snapshot
      ramps its weight up linearly over this many seconds (from ``slow_start_min_weight``
      of it); 0 (default, as Envoy) turns slow start off.
    - ``retry_budget``: retries in flight may be at most this fraction of the requests
      in flight (Envoy's retry budget, 20%), but ``min_retry_concurrency`` retries are
      always allowed (Envoy: 3).
    """

    panic_threshold: float = attrs.field(default=0.5, validator=_fraction)
    slow_start_window: float = attrs.field(default=0.0, validator=_nonneg)
    slow_start_min_weight: float = attrs.field(default=0.1, validator=_fraction)
    retry_budget: float = attrs.field(default=0.2, validator=_fraction)
    min_retry_concurrency: int = attrs.field(default=3, validator=v.ge(0))
    outlier: OutlierConfig = attrs.field(factory=OutlierConfig)
