"""The registry's REST face in memory, on trio's MockClock: blocking queries (when they
return, with which index), the ``wait`` syntax, and bad query parameters.

The server connection runs over an in-memory stream pair and h11 is the client, so the
clock jumps only when everything waits on the registry, never on a socket. Real peers
(httpx, curl) are in tests/interop/test_registry_rest*.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import netkit
from netkit.discovery import Health, MemoryRegistry, RegistryConfig, add_registry_routes
from netkit.discovery._blocking import BadQuery, format_wait, parse_wait, should_wait
from tests.discovery.test_registry_grpc import spec
from tests.helpers import memory_connection

CONFIG = RegistryConfig(deregister_critical_after=30.0, self_preservation_threshold=None)


class Client:
    """HTTP/1.1 over an in-memory stream, one request at a time (h11 does the parsing)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, target: str, body: Any = None
    ) -> tuple[int, dict[str, str], Any]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("host", "registry"), ("content-length", str(len(data)))]
        if body is not None:
            headers.append(("content-type", "application/json"))
        await self.stream.send_all(
            self.conn.send(h11.Request(method=method, target=target, headers=headers))
            + self.conn.send(h11.Data(data=data))
            + self.conn.send(h11.EndOfMessage())
        )
        status, out, payload = 0, {}, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                out = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                payload += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.conn.start_next_cycle()
                return status, out, json.loads(payload) if payload else None


@asynccontextmanager
async def rest_registry(**options: Any) -> AsyncIterator[tuple[MemoryRegistry, Client]]:
    registry = MemoryRegistry(options.pop("config", CONFIG))
    app = netkit.App()
    add_registry_routes(app.rest, registry, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        # Long idle limits: the story tests sleep for minutes of mock time between requests.
        server_config = netkit.ServerConfig(keep_alive_timeout=3600, request_head_timeout=3600)
        async with memory_connection(app, server_config) as stream:
            yield registry, Client(stream)
        nursery.cancel_scope.cancel()


async def later(delay: float, fn: Any, *args: Any) -> None:
    await trio.sleep(delay)
    await fn(*args)


async def test_blocking_discover_waits_for_its_own_change(autojump_clock: trio.abc.Clock) -> None:
    async with rest_registry(jitter=0) as (registry, client), trio.open_nursery() as nursery:
        await registry.register(spec("orders", "o1"), ttl=100)
        status, headers, body = await client.request("GET", "/v1/services/orders")
        index = int(headers["x-registry-index"])
        assert status == 200 and body["index"] == index == registry.revision
        # A change to another service wakes the loop but not the client...
        nursery.start_soon(later, 2, registry.register, spec("billing", "b1"), 100)
        # ...a change to this service does.
        nursery.start_soon(later, 5, registry.register, spec("orders", "o2"), 100)
        start = trio.current_time()
        status, headers, body = await client.request(
            "GET", f"/v1/services/orders?index={index}&wait=30s"
        )
        assert trio.current_time() - start == pytest.approx(5)
        assert status == 200 and [i["id"] for i in body["instances"]] == ["o1", "o2"]
        assert int(headers["x-registry-index"]) == body["index"] == index + 2


async def test_blocking_query_times_out_with_the_current_index(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with rest_registry(jitter=0) as (registry, client), trio.open_nursery() as nursery:
        await registry.register(spec("orders", "o1"), ttl=100)
        index = registry.revision
        nursery.start_soon(later, 1, registry.register, spec("billing", "b1"), 100)
        start = trio.current_time()
        status, headers, body = await client.request(
            "GET", f"/v1/services/orders?index={index}&wait=10s"
        )
        assert trio.current_time() - start == pytest.approx(10)
        # Same answer, but the index moved on (billing changed): the next query waits
        # from there.
        assert status == 200 and [i["id"] for i in body["instances"]] == ["o1"]
        assert int(headers["x-registry-index"]) == index + 1


async def test_expiry_wakes_a_healthy_only_query(autojump_clock: trio.abc.Clock) -> None:
    async with rest_registry(jitter=0) as (registry, client):
        await registry.register(spec("orders", "o1"), ttl=10)
        index = registry.revision
        start = trio.current_time()
        _, _, body = await client.request("GET", f"/v1/services/orders?index={index}&wait=60s")
        assert trio.current_time() - start == pytest.approx(10)  # the TTL ran out
        assert body["instances"] == [] and body["index"] == index + 1
        _, _, body = await client.request("GET", "/v1/services/orders?healthy_only=false")
        assert [i["health"] for i in body["instances"]] == ["critical"]


@pytest.mark.parametrize(
    ("query", "waited"),
    [
        ("wait=1h", 60),  # capped at max_wait
        ("", 60),  # no wait given: max_wait
        ("wait=1500ms", 1.5),
        ("wait=1m2s", 60),
        ("wait=0s", 0),
    ],
)
async def test_wait_is_capped_and_defaults_to_the_cap(
    autojump_clock: trio.abc.Clock, query: str, waited: float
) -> None:
    async with rest_registry(max_wait=60, jitter=0) as (registry, client):
        await registry.register(spec("orders", "o1"), ttl=1000)
        start = trio.current_time()
        status, _, _ = await client.request(
            "GET", f"/v1/services/orders?index={registry.revision}&{query}"
        )
        assert status == 200
        assert trio.current_time() - start == pytest.approx(waited)


async def test_jitter_spreads_waits_within_a_sixteenth(autojump_clock: trio.abc.Clock) -> None:
    async with rest_registry() as (registry, client):
        await registry.register(spec("orders", "o1"), ttl=1000)
        waits = []
        for _ in range(5):
            start = trio.current_time()
            await client.request("GET", f"/v1/services/orders?index={registry.revision}&wait=16s")
            waits.append(trio.current_time() - start)
        assert all(16 <= w <= 17 for w in waits)
        assert len(set(waits)) > 1


@pytest.mark.parametrize("index", ["0", "1", "7"])
async def test_queries_that_must_not_wait_return_at_once(
    autojump_clock: trio.abc.Clock, index: str
) -> None:
    """No index (0), an old one (1 < 3) or one from another incarnation (7 > 3)."""
    async with rest_registry() as (registry, client):
        for n in range(3):
            await registry.register(spec("orders", f"o{n}"), ttl=100)
        start = trio.current_time()
        status, headers, _ = await client.request(
            "GET", f"/v1/services/orders?index={index}&wait=30s"
        )
        assert status == 200 and headers["x-registry-index"] == "3"
        assert trio.current_time() == start


async def test_service_list_blocks_until_the_list_changes(autojump_clock: trio.abc.Clock) -> None:
    async with rest_registry(jitter=0) as (registry, client), trio.open_nursery() as nursery:
        await registry.register(spec("orders", "o1"), ttl=100)
        index = registry.revision
        # A heartbeat that reports warning is a change, but not to the list of services.
        nursery.start_soon(later, 1, registry.heartbeat, "orders", "o1", Health.WARNING)
        nursery.start_soon(later, 3, registry.register, spec("billing", "b1"), 100)
        start = trio.current_time()
        _, headers, body = await client.request("GET", f"/v1/services?index={index}&wait=30s")
        assert trio.current_time() - start == pytest.approx(3)
        assert body["services"] == [
            {"name": "billing", "instances": 1, "healthy": 1},
            {"name": "orders", "instances": 1, "healthy": 1},
        ]
        assert headers["x-registry-index"] == str(index + 2)


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("/v1/services/orders?wait=soon&index=1", "wait"),
        ("/v1/services/orders?wait=-1s&index=1", "wait"),
        ("/v1/services/orders?index=-1", "index"),
        ("/v1/services/orders?index=abc", "index"),
        ("/v1/services/orders?healthy_only=maybe", "healthy_only"),
        ("/v1/services?index=1.5", "index"),
    ],
)
async def test_bad_query_parameters_are_400_problems(target: str, needle: str) -> None:
    async with rest_registry() as (_, client):
        status, headers, body = await client.request("GET", target)
        assert status == 400 and headers["content-type"] == "application/problem+json"
        assert needle in body["detail"]


async def test_heartbeat_body_is_optional_and_validated() -> None:
    async with rest_registry() as (registry, client):
        await registry.register(spec("orders", "o1"), ttl=100)
        status, _, _ = await client.request(
            "PUT", "/v1/services/orders/o1/heartbeat", {"health": "warning"}
        )
        assert status == 200
        assert registry.core.get("orders", "o1").health.name == "WARNING"  # type: ignore[union-attr]
        status, _, _ = await client.request("PUT", "/v1/services/orders/o1/heartbeat")
        assert status == 200
        assert registry.core.get("orders", "o1").health.name == "PASSING"  # type: ignore[union-attr]
        status, _, body = await client.request(
            "PUT", "/v1/services/orders/o1/heartbeat", {"health": "sick", "x": 1}
        )
        assert status == 422
        assert [e["pointer"] for e in body["errors"]] == ["#/health", "#/x"]
        status, _, body = await client.request("PUT", "/v1/services/orders/o9/heartbeat")
        assert status == 404 and "orders/o9" in body["detail"]


# -- the wait syntax (sans-I/O) -------------------------------------------------------------
@given(st.integers(min_value=0, max_value=10**9))
def test_wait_round_trips_in_milliseconds(ms: int) -> None:
    assert parse_wait(format_wait(ms / 1000)) == pytest.approx(ms / 1000)


@given(
    st.lists(
        st.tuples(st.integers(0, 999), st.sampled_from(["h", "m", "s", "ms"])),
        min_size=1,
        max_size=4,
    )
)
def test_compound_waits_add_up(parts: list[tuple[int, str]]) -> None:
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_wait(text) == pytest.approx(sum(n * scale[u] for n, u in parts))


@given(st.text(max_size=12))
def test_anything_else_is_refused_not_crashed(text: str) -> None:
    try:
        value = parse_wait(text)
    except BadQuery:
        return
    assert value >= 0


def test_only_the_current_revision_waits() -> None:
    assert should_wait(5, 5)
    assert not should_wait(None, 5) and not should_wait(0, 0)
    assert not should_wait(4, 5) and not should_wait(6, 5)
