"""A live terminal status built from the same numbers ``/metrics`` exposes.

:func:`run_live_status` redraws, every ``interval`` seconds, requests/s, errors/s and
the p99 latency over the last interval (from the differences between two readings of
the server metrics: the histogram's buckets, so the p99 is a bucket's upper bound, as
Prometheus' ``histogram_quantile`` would report it), open connections, and the
balancer's backends with their health, ejection, in-flight requests and picks/s. On a
terminal it redraws in place (cursor home + clear); to a file or pipe it appends one
block per interval. ``netkit balancer --status`` runs it; ``netkit up`` can start it
the same way: ``nursery.start_soon(run_live_status, obs)``.
"""

from __future__ import annotations

import sys
from typing import TextIO

import attrs
import trio

from ._metrics import Buckets
from ._observability import Observability


@attrs.frozen
class BackendLine:
    address: str
    healthy: bool
    ejected: bool
    outstanding: int
    picks: int


@attrs.frozen
class Reading:
    """The cumulative numbers at one moment."""

    time: float
    requests: int
    errors: int
    latency: Buckets
    connections: dict[str, int]
    backends: tuple[BackendLine, ...]


def read(obs: Observability, now: float) -> Reading:
    requests, errors, latency = obs.metrics.totals()
    backends: list[BackendLine] = []
    for balancer, metrics in obs.balancers:
        for state in sorted(balancer.lb.members, key=lambda s: s.backend.address):
            address = state.backend.address
            backends.append(
                BackendLine(
                    address,
                    state.healthy,
                    state.ejected(now),
                    state.outstanding,
                    metrics.picks[address],
                )
            )
    return Reading(
        now, requests, errors, latency, dict(obs.metrics.connections_open), tuple(backends)
    )


def _interval_latency(before: Buckets, after: Buckets) -> Buckets:
    out = Buckets()
    out.counts = [b - a for a, b in zip(before.counts, after.counts, strict=True)]
    out.sum = after.sum - before.sum
    return out


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return ">10s"
    return f"<={seconds * 1000:g}ms"


def render(before: Reading, after: Reading) -> list[str]:
    """The status lines for the interval between two readings."""
    span = max(after.time - before.time, 1e-9)
    rate = (after.requests - before.requests) / span
    errors = (after.errors - before.errors) / span
    p99 = _interval_latency(before.latency, after.latency).quantile(0.99)
    conns = "  ".join(f"{name} {n}" for name, n in after.connections.items())
    lines = [
        f"requests/s {rate:9.1f}   errors/s {errors:7.1f}   p99 {_ms(p99):>10}   "
        f"total {after.requests}",
        f"connections  {conns}",
    ]
    if after.backends:
        lines.append(f"{'backend':24} {'health':9} {'in-flight':>9} {'picks/s':>9}")
        earlier = {b.address: b.picks for b in before.backends}
        for b in after.backends:
            health = "ejected" if b.ejected else ("healthy" if b.healthy else "UNHEALTHY")
            picks = (b.picks - earlier.get(b.address, 0)) / span
            lines.append(f"{b.address:24} {health:9} {b.outstanding:9d} {picks:9.1f}")
    return lines


async def run_live_status(
    obs: Observability, *, interval: float = 1.0, out: TextIO | None = None
) -> None:
    """Redraw the status every ``interval`` seconds until cancelled."""
    stream = out or sys.stdout
    in_place = stream.isatty()
    before = read(obs, trio.current_time())
    while True:
        await trio.sleep(interval)
        after = read(obs, trio.current_time())
        text = "\n".join(render(before, after))
        stream.write(("\x1b[H\x1b[J" if in_place else "") + text + "\n")
        stream.flush()
        before = after
