"""The heartbeat's optional body: the answers it gives when that body is not a JSON
``HeartbeatReport`` (the same as the REST layer gives for declared bodies)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import h11
import pytest

from tests.discovery.test_registry_grpc import spec
from tests.discovery.test_registry_rest import Client, rest_registry

TARGET = "/v1/services/orders/o1/heartbeat"


async def put_raw(client: Client, data: bytes, *headers: tuple[str, str]) -> tuple[int, Any]:
    """PUT ``data`` as it is, with ``headers`` (no content-type unless given)."""
    all_headers = [("host", "registry"), ("content-length", str(len(data))), *headers]
    await client.stream.send_all(
        client.conn.send(h11.Request(method="PUT", target=TARGET, headers=all_headers))
        + client.conn.send(h11.Data(data=data))
        + client.conn.send(h11.EndOfMessage())
    )
    status, payload = 0, b""
    while True:
        event = client.conn.next_event()
        if event is h11.NEED_DATA:
            client.conn.receive_data(await client.stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            payload += event.data
        elif isinstance(event, h11.EndOfMessage):
            client.conn.start_next_cycle()
            return status, json.loads(payload) if payload else None


JSON = ("content-type", "application/json")
REPORT = json.dumps({"health": "warning"}).encode()


@pytest.mark.parametrize(
    ("data", "headers", "expected"),
    [
        (b"health=warning", [("content-type", "text/plain")], 415),
        (REPORT, [], 415),  # no content type at all
        (b"{bad", [JSON], 400),
        (b"\xff\xfe{", [JSON], 400),  # not UTF-8
        (gzip.compress(REPORT, mtime=0), [JSON, ("content-encoding", "gzip")], 415),
        (REPORT, [JSON, ("content-encoding", "identity")], 200),
        (REPORT, [("content-type", "application/vnd.report+json; charset=utf-8")], 200),
        (b" \r\n ", [("content-type", "text/plain")], 200),  # blank: no report
    ],
    ids=["text", "no-type", "bad-json", "not-utf8", "gzip", "identity", "plus-json", "blank"],
)
async def test_heartbeat_body_errors(
    data: bytes, headers: list[tuple[str, str]], expected: int
) -> None:
    async with rest_registry() as (registry, client):
        await registry.register(spec("orders", "o1"), ttl=100)
        status, body = await put_raw(client, data, *headers)
        assert status == expected, body
        if expected != 200:
            assert body["status"] == expected
        health = registry.core.get("orders", "o1").health.name  # type: ignore[union-attr]
        assert health == ("WARNING" if expected == 200 and data == REPORT else "PASSING")
