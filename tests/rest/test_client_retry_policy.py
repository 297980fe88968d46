"""RetryPolicy's rules, property-tested without a network or a clock."""

from __future__ import annotations

import email.utils

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netkit.rest import RetryPolicy
from netkit.rest._client_retry import IDEMPOTENT_METHODS, parse_http_date, parse_retry_after

METHODS = st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"])
UNIT = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
DELAYS = st.floats(min_value=0.0, max_value=100.0)
NOW = st.floats(min_value=0.0, max_value=4e9)
STATUSES = st.one_of(st.none(), st.integers(min_value=300, max_value=599))
RETRY_AFTER = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=10**20).map(str),
    st.text(max_size=20),
)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=10)),
        base_delay=draw(DELAYS),
        max_delay=draw(DELAYS),
        retry_after_cap=draw(DELAYS),
        deadline=draw(st.one_of(st.none(), st.floats(min_value=0.001, max_value=1000.0))),
    )


@given(policies(), st.integers(min_value=-5, max_value=10_000), UNIT)
def test_jittered_backoff_stays_between_zero_and_the_exponential_ceiling(
    policy: RetryPolicy, attempts: int, rand: float
) -> None:
    delay = policy.backoff(attempts, rand)
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(attempts - 1, 0), 64))
    assert 0.0 <= delay <= ceiling
    assert delay <= policy.max_delay
    assert delay == pytest.approx(ceiling * rand)


@given(policies(), st.integers(min_value=1, max_value=9))
def test_full_jitter_covers_the_whole_range(policy: RetryPolicy, attempts: int) -> None:
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** (attempts - 1))
    assert policy.backoff(attempts, 0.0) == 0.0
    assert policy.backoff(attempts, 0.999999) == pytest.approx(ceiling * 0.999999)


@given(
    policies(),
    METHODS,
    st.booleans(),
    st.lists(st.tuples(STATUSES, RETRY_AFTER, UNIT), min_size=1, max_size=15),
    NOW,
)
def test_a_call_never_makes_more_than_max_attempts(
    policy: RetryPolicy,
    method: str,
    has_key: bool,
    outcomes: list[tuple[int | None, str | None, float]],
    now: float,
) -> None:
    """Drive the policy like the client does, with any sequence of failures."""
    attempts = 0
    for status, retry_after, rand in outcomes:
        attempts += 1
        delay = policy.delay_before_retry(
            method=method,
            has_idempotency_key=has_key,
            attempts=attempts,
            status=status,
            retry_after=retry_after,
            now=now,
            rand=rand,
        )
        if delay is None:
            break
        assert delay >= 0.0
        assert delay <= max(policy.max_delay, policy.retry_after_cap)
    assert attempts <= policy.max_attempts


@given(policies(), st.sampled_from(["POST", "PATCH", "post"]), STATUSES, RETRY_AFTER, UNIT)
def test_a_non_idempotent_request_without_a_key_is_never_retried(
    policy: RetryPolicy, method: str, status: int | None, retry_after: str | None, rand: float
) -> None:
    assert not policy.may_repeat(method, has_idempotency_key=False)
    delay = policy.delay_before_retry(
        method=method,
        has_idempotency_key=False,
        attempts=1,
        status=status,
        retry_after=retry_after,
        rand=rand,
    )
    assert delay is None


@given(policies(), METHODS, st.booleans(), st.integers(min_value=200, max_value=599), UNIT)
def test_only_transient_statuses_are_retried(
    policy: RetryPolicy, method: str, has_key: bool, status: int, rand: float
) -> None:
    delay = policy.delay_before_retry(
        method=method, has_idempotency_key=has_key, attempts=1, status=status, rand=rand
    )
    if status not in {429, 502, 503, 504}:
        assert delay is None
    elif policy.max_attempts > 1 and (has_key or method in IDEMPOTENT_METHODS):
        assert delay is not None


@given(policies(), METHODS, st.integers(min_value=0, max_value=10**6), UNIT)
def test_retry_after_seconds_is_waited_exactly_or_refused_beyond_the_cap(
    policy: RetryPolicy, method: str, seconds: int, rand: float
) -> None:
    policy = attrs.evolve(policy, max_attempts=2, deadline=None)
    delay = policy.delay_before_retry(
        method=method,
        has_idempotency_key=True,
        attempts=1,
        status=429,
        retry_after=str(seconds),
        rand=rand,
    )
    if seconds > policy.retry_after_cap:
        assert delay is None
    else:
        assert delay == float(seconds)


@given(policies(), st.integers(min_value=0, max_value=10**6), NOW)
def test_retry_after_http_date_counts_from_now(
    policy: RetryPolicy, seconds: int, now: float
) -> None:
    policy = attrs.evolve(policy, max_attempts=2)
    date = email.utils.formatdate(int(now) + seconds, usegmt=True)
    delay = policy.delay_before_retry(
        method="GET",
        has_idempotency_key=False,
        attempts=1,
        status=503,
        retry_after=date,
        now=float(int(now)),
        remaining=None,
    )
    if seconds > policy.retry_after_cap:
        assert delay is None
    else:
        assert delay == pytest.approx(seconds)


@given(policies(), METHODS, STATUSES, RETRY_AFTER, UNIT, st.floats(0.0, 100.0))
def test_no_wait_is_started_that_would_end_after_the_deadline(
    policy: RetryPolicy,
    method: str,
    status: int | None,
    retry_after: str | None,
    rand: float,
    remaining: float,
) -> None:
    delay = policy.delay_before_retry(
        method=method,
        has_idempotency_key=True,
        attempts=1,
        status=status,
        retry_after=retry_after,
        rand=rand,
        remaining=remaining,
    )
    assert delay is None or delay < remaining


def test_retry_after_forms() -> None:
    now = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    assert now == 784111777.0
    assert parse_retry_after("120", 0.0) == 120.0
    assert parse_retry_after(" 7 ", 0.0) == 7.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now) == 10.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now) == 0.0  # in the past
    assert parse_retry_after("-1", 0.0) is None
    assert parse_retry_after("1.5", 0.0) is None  # delay-seconds is 1*DIGIT
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after("9" * 400, 0.0) == 1e12  # clamped, no OverflowError


def test_config_is_frozen_and_validated() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (3, 0.25, 10.0)
    assert (policy.retry_after_cap, policy.deadline) == (30.0, 60.0)
    assert policy.retry_statuses == {429, 502, 503, 504}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)
    assert RetryPolicy(idempotent_methods={"get"}).idempotent_methods == {"GET"}
