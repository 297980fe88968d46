"""Subchannel connectivity states and the reconnect backoff (gRPC's, sans-I/O).

A client-side balanced channel keeps one connection per backend -- a *subchannel* --
whose state follows gRPC's connectivity semantics: IDLE (no connection, none wanted
yet), CONNECTING, READY, TRANSIENT_FAILURE (the last attempt failed; waiting out the
backoff) and SHUTDOWN (the backend left). Only READY subchannels take calls. The
channel's own state is the aggregate gRPC's round_robin reports: READY if any
subchannel is, else CONNECTING if any is, else IDLE if any is, else TRANSIENT_FAILURE.

:class:`Backoff` is gRPC's connection backoff (doc/connection-backoff.md): after each
failed attempt the next one starts ``delay x (1 +- jitter)`` after the previous one
started, the delay growing from ``initial`` by ``multiplier`` up to ``maximum``; a
successful connection resets it. grpcio's defaults: 1 s, x1.6, jitter 0.2, 120 s.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable

import attrs
from attrs import validators as v


class Connectivity(enum.Enum):
    """gRPC's channel connectivity states."""

    IDLE = "idle"
    CONNECTING = "connecting"
    READY = "ready"
    TRANSIENT_FAILURE = "transient_failure"
    SHUTDOWN = "shutdown"


def aggregate(states: Iterable[Connectivity]) -> Connectivity:
    """The channel's state from its subchannels' (round_robin's rule)."""
    seen = {s for s in states if s is not Connectivity.SHUTDOWN}
    for state in (Connectivity.READY, Connectivity.CONNECTING, Connectivity.IDLE):
        if state in seen:
            return state
    return Connectivity.TRANSIENT_FAILURE if seen else Connectivity.IDLE


@attrs.frozen(kw_only=True)
class BackoffConfig:
    """Reconnect backoff (grpcio's defaults: 1 s initial, x1.6, jitter 0.2, 120 s max)."""

    initial: float = attrs.field(default=1.0, validator=v.gt(0))
    multiplier: float = attrs.field(default=1.6, validator=v.ge(1))
    jitter: float = attrs.field(default=0.2, validator=[v.ge(0), v.lt(1)])
    maximum: float = attrs.field(default=120.0, validator=v.gt(0))


class Backoff:
    """The delays between connection attempts of one subchannel."""

    def __init__(self, config: BackoffConfig | None = None, rng: random.Random | None = None):
        self.config = config or BackoffConfig()
        self.rng = rng or random.Random()
        self._current = self.config.initial

    def next_delay(self) -> float:
        """How long after the failed attempt started the next one starts."""
        config = self.config
        delay = self._current * (1 + self.rng.uniform(-config.jitter, config.jitter))
        self._current = min(self._current * config.multiplier, config.maximum)
        return delay

    def reset(self) -> None:
        """A connection succeeded: the next failure starts from ``initial`` again."""
        self._current = self.config.initial
