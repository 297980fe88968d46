"""httpx (HTTP/1.1 and HTTP/2) and curl agree with the registry's REST face: the
operations, problem+json for bad input, and blocking queries woken by a change."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

import netkit
from netkit.discovery import MemoryRegistry, RegistryConfig, RegistryService, add_registry_routes
from tests.discovery.test_registry_grpc import spec
from tests.helpers import url
from tests.interop.peers import run_tool
from tests.interop.test_rest_curl import header_lines

pytestmark = pytest.mark.interop

PROTOCOLS = pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
CONFIG = RegistryConfig(deregister_critical_after=30.0, self_preservation_threshold=None)
ORDERS_1 = {
    "address": {"host": "10.0.0.1", "port": 8080, "protocols": ["rest", "grpc"]},
    "metadata": {"version": "1.4.2", "zone": "eu-1", "weight": 10, "tags": ["primary"]},
    "ttl": 30,
}


@asynccontextmanager
async def registry_server() -> AsyncIterator[tuple[MemoryRegistry, netkit.Server]]:
    """REST and gRPC faces of one registry on one port."""
    registry = MemoryRegistry(CONFIG)
    app = netkit.App()
    add_registry_routes(app.rest, registry)
    app.grpc.add_service(RegistryService(registry))
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        server: netkit.Server = await nursery.start(netkit.serve, app, "127.0.0.1", 0)
        try:
            yield registry, server
        finally:
            nursery.cancel_scope.cancel()


def client(server: netkit.Server, http2: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url(server, ""), http1=not http2, http2=http2, timeout=10.0)


def problem(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = resp.json()
    assert body["status"] == status
    return body


@PROTOCOLS
async def test_operations(http2: bool) -> None:
    async with registry_server() as (registry, server), client(server, http2) as c:
        with trio.fail_after(10):
            resp = await c.put("/v1/services/orders/o1", json=ORDERS_1)
            assert resp.status_code == 200
            assert resp.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            body = resp.json()
            assert resp.headers["x-registry-index"] == str(body["index"]) == "1"
            instance = body["instance"]
            assert instance["address"] == ORDERS_1["address"]
            assert instance["metadata"] == ORDERS_1["metadata"]
            assert instance["health"] == "passing" and instance["ttl"] == 30
            assert abs(instance["registered_at"] - time.time()) < 5  # Unix time

            second = {"address": {"host": "10.0.0.2", "port": 8080}, "health": "warning"}
            assert (await c.put("/v1/services/orders/o2", json=second)).status_code == 200
            third = {"address": {"host": "10.0.0.3", "port": 1}, "metadata": {"tags": ["x"]}}
            assert (await c.put("/v1/services/billing/b1", json=third)).status_code == 200

            found = (await c.get("/v1/services/orders")).json()
            assert [i["id"] for i in found["instances"]] == ["o1", "o2"]
            assert found["index"] == 3 and found["self_preservation"] is False
            tagged = await c.get("/v1/services/orders", params={"tags": "primary"})
            assert [i["id"] for i in tagged.json()["instances"]] == ["o1"]
            consul_style = await c.get("/v1/services/orders?tag=primary&tag=absent")
            assert consul_style.json()["instances"] == []

            beat = await c.put("/v1/services/orders/o1/heartbeat", json={"health": "critical"})
            assert beat.status_code == 200 and beat.json() == {"index": 4}
            healthy = (await c.get("/v1/services/orders")).json()
            assert [i["id"] for i in healthy["instances"]] == ["o2"]
            everyone = await c.get("/v1/services/orders", params={"healthy_only": "false"})
            assert [(i["id"], i["health"]) for i in everyone.json()["instances"]] == [
                ("o1", "critical"),
                ("o2", "warning"),
            ]
            listed = (await c.get("/v1/services")).json()
            assert listed["services"] == [
                {"name": "billing", "instances": 1, "healthy": 1},
                {"name": "orders", "instances": 2, "healthy": 1},
            ]

            gone = await c.delete("/v1/services/orders/o1")
            assert gone.json() == {"index": 5, "existed": True}
            again = await c.delete("/v1/services/orders/o1")
            assert again.json() == {"index": 5, "existed": False}
            assert registry.core.get("orders", "o1") is None


@PROTOCOLS
async def test_bad_input_is_a_problem(http2: bool) -> None:
    async with registry_server() as (registry, server), client(server, http2) as c:
        with trio.fail_after(10):
            bad = await c.put(
                "/v1/services/orders/o1",
                json={"address": {"host": "", "port": 70000}, "health": "ok", "colour": 1},
            )
            assert problem(bad, 422)["errors"] == [
                {"pointer": "#/address/host", "detail": "Length of 'host' must be >= 1: 0"},
                {"pointer": "#/address/port", "detail": "'port' must be <= 65535: 70000"},
                {
                    "pointer": "#/health",
                    "detail": "expected one of 'passing', 'warning', 'critical'",
                },
                {"pointer": "#/colour", "detail": "unknown field"},
            ]
            short = await c.put(
                "/v1/services/orders/o1", json={"address": {"host": "h", "port": 1}, "ttl": 0.5}
            )
            assert problem(short, 422)["errors"][0]["pointer"] == "#/ttl"  # type: ignore[index]
            problem(await c.put("/v1/services/orders/o1"), 422)  # no body at all
            malformed = await c.put(
                "/v1/services/orders/o1",
                content=b'{"address": ',
                headers={"content-type": "application/json"},
            )
            problem(malformed, 400)
            problem(await c.put("/v1/services/orders/o9/heartbeat"), 404)
            problem(await c.get("/v1/services/orders?wait=forever&index=1"), 400)
            problem(await c.post("/v1/services/orders"), 405)
            # Nothing was registered by any of it, and the registry still serves.
            assert registry.revision == 0
            ok = await c.put("/v1/services/orders/o1", json=ORDERS_1)
            assert ok.status_code == 200


@PROTOCOLS
async def test_a_change_wakes_blocked_queries_at_once(http2: bool) -> None:
    """Three queries blocked on one connection (three HTTP/2 streams, or three HTTP/1.1
    connections from httpx's pool) all return within moments of the change."""
    async with registry_server() as (registry, server), client(server, http2) as c:
        with trio.fail_after(10):
            first = await c.put("/v1/services/orders/o1", json=ORDERS_1)
            index = first.headers["x-registry-index"]
            answers: list[tuple[float, httpx.Response]] = []

            async def block(path: str) -> None:
                resp = await c.get(path, params={"index": index, "wait": "30s"})
                answers.append((time.monotonic(), resp))

            async with trio.open_nursery() as nursery:
                for path in ("/v1/services/orders", "/v1/services/orders", "/v1/services"):
                    nursery.start_soon(block, path)
                await trio.sleep(0.3)
                assert answers == []  # still blocked
                changed_at = time.monotonic()
                await registry.register(spec("orders", "o2"), ttl=30)
            assert len(answers) == 3
            for answered_at, resp in answers:
                assert resp.status_code == 200
                assert resp.headers["x-registry-index"] == "2"
                assert answered_at - changed_at < 1.0  # woken, not timed out
            waits = [r.json() for _, r in answers if "instances" in r.json()]
            assert all([i["id"] for i in w["instances"]] == ["o1", "o2"] for w in waits)


@pytest.mark.parametrize("flag", ["--http1.1", "--http2-prior-knowledge"])
async def test_curl_registers_and_blocks(curl: str, flag: str, tmp_path: Path) -> None:
    head = tmp_path / "head"
    async with registry_server() as (registry, server):
        put = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-X",
                "PUT",
                "-H",
                "content-type: application/json",
                "--data",
                json.dumps(ORDERS_1),
                "-w",
                "\n%{response_code}",
                url(server, "/v1/services/orders/o1"),
            ]
        )
        body, status = put.stdout.decode().rsplit("\n", 1)
        assert status == "200" and json.loads(body)["instance"]["id"] == "o1"

        async def change_soon() -> None:
            await trio.sleep(0.5)
            await registry.deregister("orders", "o1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(change_soon)
            started = time.monotonic()
            blocked = await run_tool(
                [
                    curl,
                    "-sS",
                    flag,
                    "-D",
                    str(head),
                    url(server, "/v1/services/orders?index=1&wait=20s"),
                ],
                seconds=10,
            )
        assert 0.4 < time.monotonic() - started < 5
        assert json.loads(blocked.stdout)["instances"] == []
        assert header_lines(head)["x-registry-index"] == "2"

        bad = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-X",
                "PUT",
                "-H",
                "content-type: application/json",
                "--data",
                '{"address": {"host": "h"}}',
                "-D",
                str(head),
                url(server, "/v1/services/orders/o2"),
            ]
        )
        headers = header_lines(head)
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(bad.stdout)["errors"] == [
            {"pointer": "#/address/port", "detail": "required field is missing"}
        ]
