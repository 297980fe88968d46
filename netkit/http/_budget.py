"""A token bucket, the sans-I/O core of netkit's HTTP/2 flood defences.

Time is passed in, never read, so the bucket is tested with plain numbers and the
driver feeds it ``trio.current_time()`` (which a MockClock controls in tests).
"""

from __future__ import annotations


class TokenBucket:
    """``burst`` tokens, refilled continuously at ``rate`` tokens per second."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self._tokens = float(burst)
        self._last = now

    def spend(self, now: float, tokens: int = 1) -> bool:
        """Take ``tokens``; False once the bucket is exhausted (the caller should act)."""
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        self._tokens -= tokens
        return self._tokens >= 0

    @property
    def tokens(self) -> float:
        return self._tokens
