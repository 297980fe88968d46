"""The token bucket behind the HTTP/2 flood defences, tested without any network."""

from hypothesis import given
from hypothesis import strategies as st

from netkit.http._budget import TokenBucket


@given(
    burst=st.integers(1, 1000),
    rate=st.floats(0.1, 1000),
    steps=st.lists(st.tuples(st.floats(0, 10), st.integers(1, 5)), max_size=50),
)
def test_spending_never_exceeds_burst_plus_refill(burst, rate, steps) -> None:
    bucket = TokenBucket(burst, rate, now=0.0)
    now = 0.0
    spent_ok = 0
    for delay, tokens in steps:
        now += delay
        if bucket.spend(now, tokens):
            spent_ok += tokens
        assert bucket.tokens <= burst
    # Everything allowed fits in the initial burst plus what the elapsed time refilled.
    assert spent_ok <= burst + rate * now + 1e-6


def test_exhausts_then_refills() -> None:
    bucket = TokenBucket(burst=3, rate=1.0, now=0.0)
    assert [bucket.spend(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.spend(1.0)  # one token refilled, but the debt is paid first
    assert bucket.spend(10.0)  # long quiet period: full again
