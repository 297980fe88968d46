"""``RetryPolicy``: when a failed REST call may be sent again, and after how long.

Sans-I/O: the policy never sleeps, reads a clock or draws a random number. The client
(``_client.py``) hands it what happened (the method, whether the request carries an
``Idempotency-Key``, how many attempts were made, the status or a transport failure,
the ``Retry-After`` header, the wall-clock time, the time left before the call's
deadline and a uniform random number) and gets back the seconds to wait before the next
attempt, or None to stop. That keeps every rule testable with hypothesis, no network.

The rules:

- Only requests that are safe to repeat are retried: idempotent methods (RFC 9110
  §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and requests carrying an
  ``Idempotency-Key``, which the server uses to execute them at most once. A POST or
  PATCH without a key is never retried, whatever went wrong.
- Only transient failures are retried: transport failures (connection refused or reset,
  the connection dropped mid-response, an attempt's timeout) and the statuses in
  ``retry_statuses`` (429, 502, 503, 504 by default).
- The wait is exponential backoff with full jitter (the AWS Architecture Blog's "Exponential
  Backoff And Jitter"): before retry ``n`` (after ``n`` attempts) it is uniform in
  ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``, which spreads out clients that
  failed together.
- A ``Retry-After`` header (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) replaces the
  backoff: the client waits exactly that long, never less. A server asking for more than
  ``retry_after_cap`` seconds gets no retry: the call fails at once with the server's
  answer, rather than hanging the caller or coming back earlier than asked.
- ``max_attempts`` bounds the attempts (the first one included). A wait that would not
  end before the call's deadline is not started: the call fails at once with the last
  answer instead of sleeping into a timeout.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC
from typing import Any

import attrs
from attrs.validators import ge, instance_of

#: Methods that may be repeated without changing the result (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Statuses that say "try again later" rather than "this request is wrong".
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_DELAY_SECONDS = re.compile(r"[0-9]+")
#: Larger Retry-After values are clamped before converting to float (no OverflowError).
_HUGE = 10**12


def _positive_or_none(_instance: object, attribute: Any, value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, not {value!r}")


def _upper_set(methods: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    return frozenset(m.upper() for m in methods)


@attrs.frozen
class RetryPolicy:
    """How a :class:`RestClient` retries; every field has a default (see docs/rest-client.md)."""

    #: Attempts per call, the first included (1 disables retries).
    max_attempts: int = attrs.field(default=3, validator=[instance_of(int), ge(1)])
    #: Upper bound of the first jittered wait, in seconds; doubles with each attempt.
    base_delay: float = attrs.field(default=0.25, converter=float, validator=ge(0.0))
    #: Upper bound of any jittered wait, in seconds.
    max_delay: float = attrs.field(default=10.0, converter=float, validator=ge(0.0))
    #: Longest ``Retry-After`` the client agrees to wait, in seconds; beyond it, no retry.
    retry_after_cap: float = attrs.field(default=30.0, converter=float, validator=ge(0.0))
    #: Overall time for one call, all attempts and waits included, in seconds (None: none).
    deadline: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    #: Response statuses that are retried.
    retry_statuses: frozenset[int] = attrs.field(default=RETRY_STATUSES, converter=frozenset)
    #: Methods retried without an ``Idempotency-Key``.
    idempotent_methods: frozenset[str] = attrs.field(
        default=IDEMPOTENT_METHODS, converter=_upper_set
    )

    def may_repeat(self, method: str, *, has_idempotency_key: bool) -> bool:
        """Whether this request may be sent more than once at all."""
        return has_idempotency_key or method.upper() in self.idempotent_methods

    def backoff(self, attempts: int, rand: float) -> float:
        """The full-jitter wait after ``attempts`` attempts; ``rand`` is uniform in [0, 1)."""
        exponent = min(max(attempts - 1, 0), 64)  # 2**64 * anything is past any cap
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        return ceiling * min(max(rand, 0.0), 1.0)

    def delay_before_retry(
        self,
        *,
        method: str,
        has_idempotency_key: bool,
        attempts: int,
        status: int | None,
        retry_after: str | None = None,
        now: float = 0.0,
        remaining: float | None = None,
        rand: float = 1.0,
    ) -> float | None:
        """Seconds to wait before attempt ``attempts + 1``, or None: do not retry.

        ``status`` is the response status of the last attempt, or None when it failed in
        transport (no complete response). ``now`` (seconds since the epoch) is what an
        HTTP-date ``Retry-After`` is measured from: the client passes the response's
        ``Date``, else its wall clock. ``remaining`` is the time left before the call's
        deadline, if it has one; ``rand`` is uniform in [0, 1), for the jitter.
        """
        if attempts >= self.max_attempts:
            return None
        if not self.may_repeat(method, has_idempotency_key=has_idempotency_key):
            return None
        if status is not None and status not in self.retry_statuses:
            return None
        delay = self.backoff(attempts, rand)
        if retry_after is not None:
            asked = parse_retry_after(retry_after, now)
            if asked is not None:
                if asked > self.retry_after_cap:
                    return None
                delay = asked
        if remaining is not None and delay >= remaining:
            return None
        return delay


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait that ``Retry-After: value`` asks for at wall-clock ``now``.

    Delay-seconds or an HTTP-date (a date in the past means 0); None when it is neither,
    in which case the client falls back to its own backoff.
    """
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(min(int(value), _HUGE))
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when - now)


def parse_http_date(value: str) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7) as seconds since the epoch; None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
        if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, source zone unknown"
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
