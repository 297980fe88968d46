"""Backends as the balancer sees them: who they are (``Backend``) and how they are doing
(``BackendState``).

``Backend`` is identity and configuration, hashable and frozen, so that a source (a
static list, the registry) can hand the balancer a new snapshot and the balancer can
tell which backends are new, which stay and which left. ``BackendState`` is the
mutable runtime record the balancer keeps per backend: requests in flight, latency
estimate, health and ejection. Strategies read it; only the balancer writes it.
"""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class Backend:
    """One upstream instance: ``host:port`` with a weight (relative share of traffic).

    ``protocol`` is how the proxy speaks to it: ``"auto"`` (the default: gRPC over one
    multiplexed HTTP/2 connection, REST and WebSocket over HTTP/1.1 keep-alive
    connections, as Envoy and nginx do by default -- for a request relayed as it came
    that is the cheaper protocol on both ends), ``"h2"`` (HTTP/2 prior knowledge for
    everything but WebSocket) or ``"h1"`` (HTTP/1.1 only; gRPC then cannot go to it).
    """

    host: str
    port: int = attrs.field(validator=[attrs.validators.ge(1), attrs.validators.le(65535)])
    weight: int = attrs.field(default=1, validator=[attrs.validators.ge(1)])
    protocol: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "h1", "h2"))
    )

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, spec: str) -> Backend:
        """``host:port``, optionally ``;weight=N`` and ``;protocol=h1`` (CLI and URLs)."""
        address, *options = spec.strip().split(";")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"expected host:port, got {spec!r}")
        kwargs: dict[str, str | int] = {}
        for option in options:
            key, _, value = option.partition("=")
            if key == "weight" and value.isdigit():
                kwargs["weight"] = int(value)
            elif key == "protocol":
                kwargs["protocol"] = value
            else:
                raise ValueError(f"unknown backend option {option!r} in {spec!r}")
        return cls(host.strip("[]"), int(port), **kwargs)  # type: ignore[arg-type]


@attrs.define(eq=False)
class BackendState:
    """What the balancer knows about one backend right now (identity equality)."""

    backend: Backend
    #: When the backend joined (trio clock); slow start measures from here.
    added_at: float = 0.0
    #: Requests started and not yet ended.
    outstanding: int = 0
    #: Peak-EWMA latency estimate in seconds, and when it was last updated.
    ewma: float = 0.0
    ewma_stamp: float = -math.inf
    #: Active health checks' verdict (True until a check says otherwise).
    healthy: bool = True
    #: Passive outlier detection: ejected until this time (``-inf``: not ejected).
    ejected_until: float = -math.inf
    #: How many times it was ejected (the ejection time grows with it).
    ejections: int = 0
    #: Consecutive failures seen by outlier detection.
    consecutive_failures: int = 0
    #: Removed from the set: no new requests; in-flight ones still end normally.
    removed: bool = False

    @property
    def weight(self) -> int:
        return self.backend.weight

    def ejected(self, now: float) -> bool:
        return now < self.ejected_until

    def available(self, now: float) -> bool:
        """May take new requests outside of panic mode."""
        return not self.removed and self.healthy and not self.ejected(now)
