"""Each RestConfig limit holds, through a real (in-memory) HTTP/1.1 connection; time on
trio's mock clock."""

from __future__ import annotations

import gzip
import json

import attrs
import h11
import pytest
import trio
import trio.testing

from netkit.rest import RestAPI, RestConfig, RestRequest
from tests.helpers import memory_connection


async def exchange(
    api: RestAPI, method: str, path: str, body: bytes = b"", headers: list[tuple[str, str]] = ()
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh in-memory connection: (status, headers, body)."""
    async with memory_connection(api) as stream:
        client = h11.Connection(h11.CLIENT)
        head = [("host", "test"), ("content-length", str(len(body))), *headers]
        data = client.send(h11.Request(method=method, target=path, headers=head))
        data += client.send(h11.Data(data=body)) if body else b""
        data += client.send(h11.EndOfMessage())
        await stream.send_all(data)
        status, got, out = 0, {}, bytearray()
        with trio.fail_after(5):
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    got = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    out += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return status, got, bytes(out)


def make_api(config: RestConfig) -> tuple[RestAPI, list[int]]:
    api = RestAPI(config=config)
    runs: list[int] = []

    @api.post("/v1/runs", body=dict[str, int], status=201)
    async def run(request: RestRequest[dict[str, int]]) -> dict[str, int]:
        runs.append(1)
        return {"run": len(runs)}

    @api.get("/v1/text/{size:int}")
    async def text(request: RestRequest[None]) -> str:
        return "a" * request.params["size"]

    return api, runs


async def test_idempotency_ttl_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    api, runs = make_api(RestConfig(idempotency_ttl=60.0))
    key = [("content-type", "application/json"), ("idempotency-key", "k")]
    first = await exchange(api, "POST", "/v1/runs", b'{"a": 1}', key)
    await trio.sleep(59)
    replay = await exchange(api, "POST", "/v1/runs", b'{"a": 1}', key)
    assert replay[1]["idempotent-replayed"] == "true" and replay[2] == first[2]
    await trio.sleep(2)
    fresh = await exchange(api, "POST", "/v1/runs", b'{"a": 1}', key)
    assert "idempotent-replayed" not in fresh[1] and json.loads(fresh[2]) == {"run": 2}
    assert len(runs) == 2


async def test_idempotency_key_length() -> None:
    api, runs = make_api(RestConfig(max_idempotency_key_length=8))
    ok = [("content-type", "application/json"), ("idempotency-key", "12345678")]
    long = [("content-type", "application/json"), ("idempotency-key", "123456789")]
    assert (await exchange(api, "POST", "/v1/runs", b"{}", ok))[0] == 201
    status, headers, _ = await exchange(api, "POST", "/v1/runs", b"{}", long)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    assert len(runs) == 1


async def test_idempotency_max_keys_drops_the_oldest() -> None:
    api, runs = make_api(RestConfig(idempotency_max_keys=2))
    for key in ("a", "b", "c", "a"):
        await exchange(
            api,
            "POST",
            "/v1/runs",
            b"{}",
            [("content-type", "application/json"), ("idempotency-key", key)],
        )
    assert len(runs) == 4  # "a" was dropped when "c" was stored, so it ran again


@pytest.mark.parametrize(("size", "compressed"), [(100, False), (2000, True)])
async def test_gzip_min_size(size: int, compressed: bool) -> None:
    api, _ = make_api(RestConfig(gzip_min_size=1000, gzip_level=1))
    status, headers, body = await exchange(
        api, "GET", f"/v1/text/{size}", headers=[("accept-encoding", "gzip")]
    )
    assert status == 200
    assert ("content-encoding" in headers) is compressed
    if compressed:
        assert json.loads(gzip.decompress(body)) == "a" * size


async def test_decompressed_size_limit() -> None:
    api, _ = make_api(RestConfig(max_decompressed_body_size=100))
    headers = [("content-type", "application/json"), ("content-encoding", "gzip")]
    small = gzip.compress(b'{"n": 1}')
    big = gzip.compress(json.dumps({"n": 1, "pad": 0, "x" * 200: 1}).encode())
    assert (await exchange(api, "POST", "/v1/runs", small, headers))[0] == 201
    assert (await exchange(api, "POST", "/v1/runs", big, headers))[0] == 413


async def test_openapi_path() -> None:
    api, _ = make_api(RestConfig())
    assert (await exchange(api, "GET", "/openapi.json"))[0] == 200
    moved, _ = make_api(RestConfig(openapi_path="/v1/spec"))
    assert (await exchange(moved, "GET", "/v1/spec"))[0] == 200
    hidden, _ = make_api(RestConfig(openapi_path=None))
    assert (await exchange(hidden, "GET", "/openapi.json"))[0] == 404


def test_config_is_frozen_and_validated() -> None:
    config = RestConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.gzip_level = 3  # type: ignore[misc]
    for bad in (
        {"gzip_level": 0},
        {"gzip_level": 10},
        {"idempotency_ttl": 0},
        {"max_decompressed_body_size": 0},
        {"gzip_min_size": -1},
    ):
        with pytest.raises((ValueError, TypeError)):
            RestConfig(**bad)  # type: ignore[arg-type]
