"""RestClient against real servers on loopback: hypercorn (not netkit) and netkit's own.

Both serve the same scripted resource: the first attempts fail as the test says (503,
429 with Retry-After, or a response dropped half-way), then it answers 200. The server
records every attempt (method, Idempotency-Key, HTTP version), so the tests assert the
exact number of attempts and that one call sent one key. HTTP/2 is cleartext with prior
knowledge (hypercorn and netkit both accept it). hypercorn leaves an HTTP/2 stream open
when its app fails mid-response, so the HTTP/2 drop runs against netkit only, which
resets the stream. Backoff is milliseconds here: the timing itself is tested on a
MockClock in tests/rest/test_client.py.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from netkit import App, HTTPStream
from netkit.rest import (
    APIConnectionError,
    APIError,
    APITimeout,
    RestClient,
    RetryPolicy,
)
from tests.helpers import running_server, url

pytestmark = pytest.mark.interop

FAST = RetryPolicy(max_attempts=4, base_delay=0.002, max_delay=0.01, deadline=5.0)
PROBLEM = {"type": "https://errors.test/unavailable", "title": "Unavailable"}


@attrs.frozen
class Seen:
    method: str
    key: str | None
    version: str
    body: bytes


class Script:
    """The resource's behaviour: ``failures[i]`` answers attempt ``i``, then 200."""

    def __init__(self, *failures: str, retry_after: str = "0", hang: float = 0.0) -> None:
        self.failures = list(failures)
        self.retry_after = retry_after
        self.hang = hang
        self.seen: list[Seen] = []

    def attempt(self, method: str, key: str | None, version: str, body: bytes) -> str:
        self.seen.append(Seen(method, key, version, body))
        n = len(self.seen)
        return self.failures[n - 1] if n <= len(self.failures) else "ok"

    def answer(self, kind: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if kind == "503":
            return 503, [("content-type", "application/problem+json")], json.dumps(PROBLEM).encode()
        if kind == "429":
            return 429, [("retry-after", self.retry_after)], b""
        payload = {"attempts": len(self.seen), "key": self.seen[-1].key}
        return 200, [("content-type", "application/json")], json.dumps(payload).encode()

    @property
    def keys(self) -> list[str | None]:
        return [s.key for s in self.seen]


# -- hypercorn: an ASGI app -----------------------------------------------------------


class Dropped(Exception):
    """Raised by the ASGI app to make hypercorn drop a response half-way."""


def asgi_app(script: Script) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        kind = script.attempt(
            scope["method"], headers.get("idempotency-key"), scope["http_version"], body
        )
        if script.hang:
            await trio.sleep(script.hang)
        if kind == "drop":
            start = [(b"content-type", b"application/json"), (b"content-length", b"100")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": b'{"part', "more_body": True})
            raise Dropped
        status, head, content = script.answer(kind)
        raw = [(k.encode(), v.encode()) for k, v in head]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    return app


@asynccontextmanager
async def hypercorn_server(script: Script) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    # A Logger object: hypercorn logs the Dropped tracebacks into pytest's capture.
    config.errorlog = logging.getLogger("tests.hypercorn")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn_serve, asgi_app(script), config))
        try:
            yield binds[0]
        finally:
            nursery.cancel_scope.cancel()


# -- netkit: an App with a route ------------------------------------------------------


def netkit_app(script: Script) -> App:
    app = App()

    @app.route("GET", "/v1/resource")
    @app.route("POST", "/v1/resource")
    async def resource(stream: HTTPStream) -> None:
        request = stream.request
        body = await stream.read_body()
        version = "2" if request.http_version.startswith("2") else "1.1"
        kind = script.attempt(request.method, request.headers.get("idempotency-key"), version, body)
        if script.hang:
            await trio.sleep(script.hang)
        if kind == "drop":
            await stream.send_headers(
                200, [("content-type", "application/json"), ("content-length", "100")]
            )
            await stream.send_data(b'{"part')
            await stream.abort()
            return
        await stream.respond(*script.answer(kind))

    return app


@asynccontextmanager
async def netkit_server(script: Script) -> AsyncIterator[str]:
    async with running_server(netkit_app(script)) as server:
        yield url(server, "")


SERVERS = {"hypercorn": hypercorn_server, "netkit": netkit_server}
VERSIONS = {"http1.1": "1.1", "h2": "2"}
EVERY_PEER = pytest.mark.parametrize(
    ("server", "http"),
    [(s, v) for s in SERVERS for v in VERSIONS],
    ids=[f"{s}-{v}" for s in SERVERS for v in VERSIONS],
)


def rest_client(base: str, http: str, policy: RetryPolicy = FAST, **kwargs: Any) -> RestClient:
    h2 = http == "h2"
    return RestClient(base, http1=not h2, http2=h2, retry=policy, timeout=5.0, **kwargs)


@EVERY_PEER
async def test_failing_attempts_are_retried_with_one_idempotency_key(
    server: str, http: str
) -> None:
    script = Script("503", "503")
    async with SERVERS[server](script) as base, rest_client(base, http) as client:
        with trio.fail_after(10):
            result = await client.post("/v1/resource", json={"item": "tea"})
    assert len(script.seen) == 3
    key = script.keys[0]
    assert key is not None
    assert script.keys == [key, key, key]
    assert result == {"attempts": 3, "key": key}
    assert {s.version for s in script.seen} == {VERSIONS[http]}
    assert {s.body for s in script.seen} == {b'{"item":"tea"}'}


@EVERY_PEER
async def test_attempts_stop_at_the_maximum(server: str, http: str) -> None:
    script = Script(*["503"] * 10)
    async with SERVERS[server](script) as base, rest_client(base, http) as client:
        with trio.fail_after(10), pytest.raises(APIError) as info:
            await client.get("/v1/resource")
    assert len(script.seen) == 4
    assert info.value.attempts == 4
    assert (info.value.status, info.value.title, info.value.type) == (
        503,
        "Unavailable",
        PROBLEM["type"],
    )
    assert script.keys == [None] * 4  # GET is idempotent: no key


@EVERY_PEER
async def test_post_without_a_key_is_not_retried(server: str, http: str) -> None:
    script = Script("503")
    async with SERVERS[server](script) as base, rest_client(base, http) as client:
        with trio.fail_after(10), pytest.raises(APIError) as info:
            await client.post("/v1/resource", json={}, idempotency_key=None)
    assert info.value.status == 503
    assert len(script.seen) == 1
    assert script.keys == [None]


@EVERY_PEER
async def test_429_retry_after_replaces_the_backoff(server: str, http: str) -> None:
    # Were Retry-After ignored, the backoff (10 s) would not fit the 5 s deadline and
    # the call would fail with the 429; honoured, "0" retries at once.
    policy = RetryPolicy(max_attempts=3, base_delay=10.0, deadline=5.0)
    script = Script("429", retry_after="0")
    async with (
        SERVERS[server](script) as base,
        rest_client(base, http, policy, jitter=lambda: 0.999) as client,
    ):
        with trio.fail_after(10):
            assert (await client.get("/v1/resource"))["attempts"] == 2
    assert len(script.seen) == 2


async def test_429_retry_after_one_second_is_waited() -> None:
    script = Script("429", retry_after="1")
    async with hypercorn_server(script) as base, rest_client(base, "http1.1") as client:
        start = trio.current_time()
        with trio.fail_after(10):
            await client.get("/v1/resource")
        elapsed = trio.current_time() - start
    assert len(script.seen) == 2
    assert 1.0 <= elapsed < 3.0


@pytest.mark.parametrize(
    ("server", "http"),
    [("hypercorn", "http1.1"), ("netkit", "http1.1"), ("netkit", "h2")],
    ids=["hypercorn-http1.1", "netkit-http1.1", "netkit-h2"],
)
async def test_a_response_dropped_mid_body_is_retried(server: str, http: str) -> None:
    script = Script("drop", "drop")
    async with SERVERS[server](script) as base, rest_client(base, http) as client:
        with trio.fail_after(10):
            result = await client.post("/v1/resource", json={"n": 1})
        assert len(script.seen) == 3
        assert result["attempts"] == 3
        assert len(set(script.keys)) == 1

        # The same drop for a POST without a key: not retried, a connection error.
        script.seen.clear()
        script.failures = ["drop"]
        with trio.fail_after(10), pytest.raises(APIConnectionError) as info:
            await client.post("/v1/resource", json={"n": 2}, idempotency_key=None)
    assert len(script.seen) == 1
    assert info.value.attempts == 1


async def test_a_slow_server_times_each_attempt_out() -> None:
    script = Script(hang=30.0)
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, deadline=10.0)
    async with (
        hypercorn_server(script) as base,
        RestClient(base, retry=policy, timeout=0.2) as client,
    ):
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(APITimeout) as info:
            await client.get("/v1/resource")
        elapsed = trio.current_time() - start
    assert info.value.attempts == 2
    assert len(script.seen) == 2
    assert 0.4 <= elapsed < 3.0


async def test_the_call_deadline_cuts_a_slow_attempt() -> None:
    script = Script(hang=30.0)
    policy = RetryPolicy(max_attempts=5, deadline=0.3)
    async with netkit_server(script) as base, RestClient(base, retry=policy) as client:
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(APITimeout, match="deadline"):
            await client.get("/v1/resource")
        assert trio.current_time() - start < 3.0
    assert len(script.seen) == 1


async def test_nothing_listening_is_a_connection_error_after_every_attempt() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RestClient(f"http://127.0.0.1:{port}", retry=FAST) as client:
        with trio.fail_after(10), pytest.raises(APIConnectionError) as info:
            await client.get("/v1/resource")
    assert info.value.attempts == 4


@pytest.mark.parametrize("http", VERSIONS)
async def test_netkit_problem_json_404_and_405_become_api_errors(http: str) -> None:
    async with netkit_server(Script()) as base, rest_client(base, http) as client:
        with trio.fail_after(10):
            with pytest.raises(APIError) as not_found:
                await client.get("/v1/nothing")
            with pytest.raises(APIError) as not_allowed:
                await client.delete("/v1/resource")
    error = not_found.value
    assert (error.status, error.attempts) == (404, 1)
    assert error.problem is not None and error.problem["status"] == 404
    assert error.detail == "no route for /v1/nothing"
    assert error.headers["content-type"] == "application/problem+json"
    error = not_allowed.value
    assert (error.status, error.attempts) == (405, 1)
    assert error.detail == "DELETE not allowed on /v1/resource"
    assert error.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
async def test_tls_negotiates_http2_by_alpn_when_enabled(
    http2: bool, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    script = Script("503")
    app = netkit_app(script)
    async with (
        running_server(app, ssl_context=server_ssl_context) as server,
        RestClient(
            url(server, "", scheme="https"), http2=http2, verify=client_ssl_context, retry=FAST
        ) as client,
    ):
        with trio.fail_after(10):
            assert (await client.get("/v1/resource"))["attempts"] == 2
    assert [s.version for s in script.seen] == ["2" if http2 else "1.1"] * 2
