"""The client's attempts follow a model of the retry rules, for any sequence of failures.

Hypothesis draws what the service does on each attempt; the client runs against it in
memory (httpx.MockTransport) on an autojump MockClock, and the attempts it makes, the
keys it sends and the error it raises must be exactly what the model says.
"""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from netkit.rest import APIConnectionError, APIError, APITimeout, RestClient, RetryPolicy
from tests.rest.test_client import Service, dropped_mid_response, raises, status

OUTCOMES = {
    "503": status(503),
    "429": status(429, **{"retry-after": "2"}),
    "502": status(502),
    "connect": raises(httpx.ConnectError("refused")),
    "timeout": raises(httpx.ReadTimeout("slow")),
    "drop": dropped_mid_response,
    "404": status(404),
    "409": status(409),
    "200": status(200),
}
TRANSIENT = {"503", "429", "502", "connect", "timeout", "drop"}
IDEMPOTENT = {"GET", "PUT", "DELETE"}


def model(method: str, key: str | None, outcomes: list[str], max_attempts: int) -> list[str]:
    """The outcomes the client goes through, attempt by attempt."""
    seen = []
    for n in range(1, max_attempts + 1):
        outcome = outcomes[n - 1] if n <= len(outcomes) else "200"
        seen.append(outcome)
        if outcome not in TRANSIENT or (method not in IDEMPOTENT and key is None):
            break
    return seen


@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH"]),
    key_choice=st.sampled_from(["auto", "none", "given"]),
    outcomes=st.lists(st.sampled_from(sorted(OUTCOMES)), min_size=1, max_size=6),
    max_attempts=st.integers(min_value=1, max_value=5),
)
def test_attempts_keys_and_errors_follow_the_model(
    method: str, key_choice: str, outcomes: list[str], max_attempts: int
) -> None:
    key_arg = {"auto": "AUTO", "none": None, "given": "caller-key"}[key_choice]
    service = Service(*[OUTCOMES[o] for o in outcomes], OUTCOMES["200"])
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=1.0, deadline=None)
    result: list[object] = []

    async def run() -> None:
        async with RestClient(
            "http://api.test", transport=httpx.MockTransport(service), retry=policy
        ) as client:
            kwargs = {} if key_arg == "AUTO" else {"idempotency_key": key_arg}
            try:
                await client.request(method, "/v1/x", json={}, **kwargs)  # type: ignore[arg-type]
                result.append("ok")
            except (APIError, APITimeout, APIConnectionError) as exc:
                result.append(exc)

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))

    sent_keys = service.header("idempotency-key")
    key = sent_keys[0]
    if key_choice == "given":
        assert key == "caller-key"
    elif key_choice == "none" or method not in {"POST", "PATCH"}:
        assert key is None
    else:
        assert key is not None
    assert sent_keys == [key] * len(sent_keys)

    expected = model(method, key, outcomes, max_attempts)
    assert len(service.seen) == len(expected)
    last = expected[-1]
    (outcome,) = result
    if last == "200":
        assert outcome == "ok"
    elif last == "timeout":
        assert isinstance(outcome, APITimeout)
    elif last in {"connect", "drop"}:
        assert isinstance(outcome, APIConnectionError)
    else:
        assert isinstance(outcome, APIError)
        assert outcome.status == int(last)
    if not isinstance(outcome, str):
        assert outcome.attempts == len(expected)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_the_model_never_repeats_unkeyed_unsafe_requests(method: str) -> None:
    assert model(method, None, ["503", "503"], 5) == ["503"]
