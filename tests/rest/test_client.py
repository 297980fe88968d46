"""RestClient against scripted in-memory services (httpx.MockTransport), on a MockClock.

No sockets: the transport answers in memory, so ``autojump_clock`` jumps only across
the client's own sleeps and the tests can assert the exact time of every attempt.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
import trio

from netkit.rest import (
    APIConnectionError,
    APIError,
    APITimeout,
    BearerToken,
    RestClient,
    RestClientError,
    RetryPolicy,
)

Answer = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class Service:
    """Answers attempt ``i`` with ``answers[i]`` (the last one repeats); records each one."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        #: (trio time, request) of every attempt, in order.
        self.seen: list[tuple[float, httpx.Request]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((trio.current_time(), request))
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        result = answer(request)
        if not isinstance(result, httpx.Response):
            result = await result
        return result

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.seen]

    def header(self, name: str) -> list[str | None]:
        return [r.headers.get(name) for _, r in self.seen]


def status(code: int, **headers: str) -> Answer:
    return lambda _request: httpx.Response(code, headers=headers)


def ok(payload: object = None) -> Answer:
    return lambda _request: httpx.Response(200, json=payload)


def raises(exc: Exception) -> Answer:
    def answer(_request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


class Broken(httpx.AsyncByteStream):
    """A body that stops half-way, as httpcore reports a connection closed mid-response."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"partial":'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def dropped_mid_response(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-length": "100"}, stream=Broken())


def fixed(*values: float) -> Callable[[], float]:
    """A jitter source that returns ``values`` in turn (then the last one forever)."""
    it: Iterator[float] = iter(values)
    last = values[-1]

    def draw() -> float:
        nonlocal last
        last = next(it, last)
        return last

    return draw


def client(service: Service, policy: RetryPolicy | None = None, **kwargs: object) -> RestClient:
    return RestClient(
        "http://api.test/base",
        transport=httpx.MockTransport(service),
        retry=policy or RetryPolicy(base_delay=1.0, max_delay=8.0, max_attempts=5, deadline=None),
        **kwargs,  # type: ignore[arg-type]
    )


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def test_backoff_waits_are_exact_full_jitter_draws(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(503), status(502), status(504), status(429), ok({"n": 1}))
    async with client(service, jitter=fixed(0.5, 0.25, 1.0, 0.75)) as c:
        assert await c.get("/v1/things") == {"n": 1}
    # ceilings 1, 2, 4, 8 (base 1 s doubling, max 8 s) times the draws 0.5, 0.25, 1, 0.75
    assert gaps(service.times) == [0.5, 0.5, 4.0, 6.0]


async def test_attempts_stop_at_max_attempts_with_the_last_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    problem = {"type": "https://errors.test/busy", "title": "Busy", "detail": "try later"}

    def busy(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            headers={"content-type": "application/problem+json", "x-request-id": "req-9"},
            content=json.dumps(problem).encode(),
        )

    service = Service(busy)
    async with client(service, jitter=fixed(1.0)) as c:
        with pytest.raises(APIError) as info:
            await c.get("/v1/things")
    assert len(service.seen) == 5
    assert gaps(service.times) == [1.0, 2.0, 4.0, 8.0]
    error = info.value
    assert (error.status, error.attempts, error.request_id) == (503, 5, "req-9")
    assert (error.type, error.title, error.detail) == (problem["type"], "Busy", "try later")
    assert error.url == "http://api.test/base/v1/things"
    assert "req-9" in str(error)


async def test_idempotency_key_is_added_to_post_and_kept_across_retries(
    autojump_clock: trio.abc.Clock,
) -> None:
    service = Service(status(503), raises(httpx.ConnectError("refused")), ok({"id": 7}))
    async with client(service) as c:
        assert await c.post("/v1/orders", json={"item": "tea"}) == {"id": 7}
    keys = service.header("idempotency-key")
    assert len(keys) == 3
    assert keys[0] is not None and len(keys[0]) == 36 and keys[0][14] == "4"  # a UUID4
    assert keys == [keys[0]] * 3
    assert all(r.content == b'{"item":"tea"}' for _, r in service.seen)
    assert service.header("content-type") == ["application/json"] * 3
    assert service.header("accept") == ["application/json"] * 3


async def test_each_call_gets_its_own_key(autojump_clock: trio.abc.Clock) -> None:
    service = Service(ok())
    async with client(service) as c:
        await c.post("/v1/orders", json={})
        await c.patch("/v1/orders/1", json={})
        await c.post("/v1/orders", json={}, idempotency_key="mine")
        await c.post("/v1/orders", json={}, headers={"idempotency-key": "in-headers"})
    keys = service.header("idempotency-key")
    assert keys[0] != keys[1]
    assert None not in keys[:2]
    assert keys[2:] == ["mine", "in-headers"]


async def test_put_and_delete_get_no_key_but_are_retried(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(503), ok({"done": True}))
    async with client(service) as c:
        assert await c.put("/v1/orders/1", json={"qty": 2}) == {"done": True}
    assert service.header("idempotency-key") == [None, None]
    service = Service(status(503), status(204))
    async with client(service) as c:
        assert await c.delete("/v1/orders/1") is None
    assert len(service.seen) == 2


@pytest.mark.parametrize(
    "failure",
    [status(503), raises(httpx.ConnectError("refused")), dropped_mid_response],
    ids=["503", "connect-error", "mid-response-drop"],
)
async def test_post_without_a_key_is_not_retried(
    autojump_clock: trio.abc.Clock, failure: Answer
) -> None:
    service = Service(failure, ok())
    async with client(service) as c:
        with pytest.raises((APIError, APIConnectionError)) as info:
            await c.post("/v1/orders", json={}, idempotency_key=None)
    assert len(service.seen) == 1
    assert service.header("idempotency-key") == [None]
    assert info.value.attempts == 1  # type: ignore[union-attr]


async def test_a_response_dropped_mid_body_is_retried_as_a_connection_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    service = Service(dropped_mid_response, dropped_mid_response, ok({"whole": True}))
    async with client(service, jitter=fixed(0.5)) as c:
        assert await c.get("/v1/big") == {"whole": True}
    assert gaps(service.times) == [0.5, 1.0]


async def test_connection_failures_on_every_attempt_raise_api_connection_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    service = Service(raises(httpx.ConnectError("refused")))
    async with client(service, RetryPolicy(max_attempts=3, deadline=None)) as c:
        with pytest.raises(APIConnectionError) as info:
            await c.get("/v1/things")
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_attempt_timeouts_raise_api_timeout(autojump_clock: trio.abc.Clock) -> None:
    service = Service(raises(httpx.ReadTimeout("slow")))
    async with client(service, RetryPolicy(max_attempts=2, deadline=None)) as c:
        with pytest.raises(APITimeout) as info:
            await c.get("/v1/things")
    assert info.value.attempts == 2
    assert not isinstance(info.value, APIConnectionError)


async def test_retry_after_seconds_replaces_the_backoff(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(429, **{"retry-after": "7"}), status(503), ok())
    async with client(service, jitter=fixed(0.5)) as c:
        await c.get("/v1/things")
    assert gaps(service.times) == [7.0, 1.0]  # then the jittered backoff again (2 * 0.5)


async def test_retry_after_http_date_is_read_against_the_server_date(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The server's clock is 1994; ours is not: the wait is the difference of its two dates.
    headers = {
        "date": "Sun, 06 Nov 1994 08:49:37 GMT",
        "retry-after": "Sun, 06 Nov 1994 08:49:49 GMT",
    }
    service = Service(status(503, **headers), ok())
    async with client(service) as c:
        await c.get("/v1/things")
    assert gaps(service.times) == [12.0]


async def test_retry_after_beyond_the_cap_fails_at_once(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(429, **{"retry-after": "31"}), ok())
    async with client(service, RetryPolicy(retry_after_cap=30, deadline=None)) as c:
        with pytest.raises(APIError) as info:
            await c.get("/v1/things")
    assert info.value.status == 429
    assert len(service.seen) == 1
    assert trio.current_time() == service.times[0]  # no wait at all


async def test_the_deadline_stops_retries_whose_wait_would_cross_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=100.0, deadline=10.0)
    service = Service(status(503))
    async with client(service, policy, jitter=fixed(1.0)) as c:
        start = trio.current_time()
        with pytest.raises(APIError) as info:
            await c.get("/v1/things")
    # waits 1, 2, 4 (t=7); the next (8 s) would end after the deadline: not started.
    assert gaps(service.times) == [1.0, 2.0, 4.0]
    assert info.value.attempts == 4
    assert trio.current_time() - start == 7.0


async def test_the_deadline_cancels_a_hanging_attempt(autojump_clock: trio.abc.Clock) -> None:
    async def hang(_request: httpx.Request) -> httpx.Response:
        await trio.sleep(1000)
        raise AssertionError("not reached")

    service = Service(status(503), hang)
    async with client(service, RetryPolicy(deadline=5.0, base_delay=1.0), jitter=fixed(1.0)) as c:
        start = trio.current_time()
        with pytest.raises(APITimeout) as info:
            await c.get("/v1/things")
    assert trio.current_time() - start == 5.0
    assert info.value.attempts == 2
    assert "5 s deadline" in str(info.value)


async def test_a_per_call_policy_overrides_the_clients(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(503))
    async with client(service) as c:
        with pytest.raises(APIError):
            await c.get("/v1/things", retry=RetryPolicy(max_attempts=1))
    assert len(service.seen) == 1


async def test_204_and_head_return_none_and_json_is_parsed(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(204), status(200), ok([1, "two", None]))
    async with client(service) as c:
        assert await c.delete("/v1/x") is None
        assert await c.request("HEAD", "/v1/x") is None
        assert await c.get("/v1/x", params={"page": 2}) == [1, "two", None]
    assert str(service.seen[2][1].url) == "http://api.test/base/v1/x?page=2"


async def test_a_2xx_body_that_is_not_json_is_an_error(autojump_clock: trio.abc.Clock) -> None:
    service = Service(lambda _r: httpx.Response(200, text="<html>"))
    async with client(service) as c:
        with pytest.raises(RestClientError, match="not JSON"):
            await c.get("/v1/x")


async def test_non_json_errors_keep_the_text(autojump_clock: trio.abc.Clock) -> None:
    service = Service(lambda _r: httpx.Response(400, text="bad things"))
    async with client(service) as c:
        with pytest.raises(APIError) as info:
            await c.get("/v1/x")
    error = info.value
    assert (error.status, error.problem, error.text, error.type) == (
        400,
        None,
        "bad things",
        "about:blank",
    )
    assert error.request_id is None


async def test_validation_problem_errors_are_exposed(autojump_clock: trio.abc.Clock) -> None:
    problem = {"title": "Invalid body", "errors": [{"field": "qty", "detail": "not an integer"}]}
    service = Service(lambda _r: httpx.Response(422, json=problem))
    async with client(service) as c:
        with pytest.raises(APIError) as info:
            await c.post("/v1/orders", json={"qty": "x"})
    assert info.value.errors == problem["errors"]
    assert len(service.seen) == 1  # 422 is not transient


async def test_bearer_token_refreshes_once_on_401(autojump_clock: trio.abc.Clock) -> None:
    tokens = iter(["old", "new", "newer"])

    async def fetch() -> str:
        return next(tokens)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer new":
            return httpx.Response(401)
        return httpx.Response(201, json={"id": 1})

    service = Service(answer)
    async with client(service, auth=BearerToken(fetch)) as c:
        assert await c.post("/v1/orders", json={}, idempotency_key=None) == {"id": 1}
        assert await c.get("/v1/orders/1") == {"id": 1}
    assert service.header("authorization") == ["Bearer old", "Bearer new", "Bearer new"]


async def test_a_second_401_is_final(autojump_clock: trio.abc.Clock) -> None:
    count = 0

    async def fetch() -> str:
        nonlocal count
        count += 1
        return f"t{count}"

    service = Service(status(401))
    async with client(service, auth=BearerToken(fetch)) as c:
        with pytest.raises(APIError) as info:
            await c.get("/v1/x")
    assert info.value.status == 401
    assert service.header("authorization") == ["Bearer t1", "Bearer t2"]


async def test_a_static_token_is_not_refreshed(autojump_clock: trio.abc.Clock) -> None:
    service = Service(status(401))
    async with client(service, auth=BearerToken.static("s3cret")) as c:
        with pytest.raises(APIError):
            await c.get("/v1/x")
    assert service.header("authorization") == ["Bearer s3cret"]


async def test_concurrent_401s_share_one_refresh(autojump_clock: trio.abc.Clock) -> None:
    fetched: list[str] = []

    async def fetch() -> str:
        await trio.sleep(1)
        fetched.append(f"t{len(fetched)}")
        return fetched[-1]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer t0":
            return httpx.Response(401)
        return httpx.Response(200, json={})

    async with client(Service(answer), auth=BearerToken(fetch)) as c, trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(c.get, "/v1/x")
    assert fetched == ["t0", "t1"]


async def test_default_and_custom_headers(autojump_clock: trio.abc.Clock) -> None:
    service = Service(ok())
    async with client(service, headers={"X-Tenant": "acme", "Accept": "application/vnd+json"}) as c:
        await c.get("/v1/x", headers={"X-Trace": "1"})
    request = service.seen[0][1]
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["x-trace"] == "1"
    assert request.headers["accept"] == "application/vnd+json"
    assert "content-type" not in request.headers  # no body, no content type
