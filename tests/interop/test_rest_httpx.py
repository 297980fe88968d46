"""httpx over HTTP/1.1 and HTTP/2 agrees with netkit's REST layer."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import AsyncIterator

import attrs
import httpx
import pytest
import trio

from netkit import App, Server, ServerConfig
from netkit.examples.orders import OrderStore, add_routes
from netkit.rest import Problem, Response, RestConfig, RestRequest, StreamingResponse
from tests.helpers import running_server, url

pytestmark = pytest.mark.interop

PROTOCOLS = pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
BIG = [{"n": i, "text": "lorem ipsum dolor sit amet"} for i in range(200)]


@attrs.frozen
class Note:
    text: str


def make_app(gate: trio.Event | None = None, entered: trio.Event | None = None) -> App:
    app = App()
    app.rest.config = RestConfig(max_decompressed_body_size=64 * 1024)
    add_routes(app.rest, OrderStore())
    api = app.rest
    runs: list[str] = []
    app.runs = runs  # type: ignore[attr-defined]

    @api.get("/v1/big")
    async def big(request: RestRequest[None]) -> Response:
        return Response(BIG, cache_control="max-age=60")

    @api.post("/v1/notes", body=Note, status=201)
    async def add_note(request: RestRequest[Note]) -> dict[str, object]:
        runs.append(request.body.text)
        if gate is not None and request.body.text == "slow":
            if entered is not None:
                entered.set()
            await gate.wait()
        if request.body.text == "teapot":
            raise Problem(418, "short and stout")
        return {"text": request.body.text, "run": len(runs)}

    @api.get("/v1/boom")
    async def boom(request: RestRequest[None]) -> None:
        raise RuntimeError("secret internal detail")

    @api.get("/v1/stream")
    async def stream(request: RestRequest[None]) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(64):
                yield bytes([65 + i % 26]) * 16384

        return StreamingResponse(chunks())

    return app


def client(http2: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=not http2, http2=http2, timeout=5.0)


def problem(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = resp.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str)
    return body


@PROTOCOLS
async def test_create_read_and_validation(http2: bool) -> None:
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            resp = await c.post(url(server, "/v1/orders"), json={"sku": "book", "quantity": 2})
            assert resp.status_code == 201
            assert resp.headers["location"] == "/v1/orders/1"
            assert resp.json() == {"id": 1, "sku": "book", "quantity": 2, "note": None}
            resp = await c.get(url(server, "/v1/orders/1"))
            assert resp.status_code == 200 and resp.json()["sku"] == "book"

            bad = await c.post(url(server, "/v1/orders"), json={"quantity": "two", "colour": "red"})
            body = problem(bad, 422)
            assert body["errors"] == [
                {"pointer": "#/sku", "detail": "required field is missing"},
                {"pointer": "#/quantity", "detail": "expected integer, got string"},
                {"pointer": "#/colour", "detail": "unknown field"},
            ]
            refused = await c.post(url(server, "/v1/orders"), json={"sku": "b", "quantity": 0})
            assert problem(refused, 422)["errors"][0]["pointer"] == "#/quantity"  # type: ignore[index]
            malformed = await c.post(
                url(server, "/v1/orders"),
                content=b'{"sku": ',
                headers={"content-type": "application/json"},
            )
            problem(malformed, 400)
            wrong_type = await c.post(
                url(server, "/v1/orders"), content=b"sku=a", headers={"content-type": "text/plain"}
            )
            problem(wrong_type, 415)
            v2 = await c.post(
                url(server, "/v2/orders"),
                json={"lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 0}]},
            )
            assert problem(v2, 422)["errors"] == [
                {"pointer": "#/lines/1/quantity", "detail": "'quantity' must be > 0: 0"}
            ]


@PROTOCOLS
async def test_routing_errors_are_problems(http2: bool) -> None:
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            unknown = problem(await c.get(url(server, "/v9/orders")), 404)
            assert "v9" in str(unknown["detail"]) and "v1, v2" in str(unknown["detail"])
            problem(await c.get(url(server, "/v1/nothing")), 404)
            problem(await c.get(url(server, "/v1/orders/abc")), 404)  # int converter
            not_allowed = await c.delete(url(server, "/v1/orders"))
            problem(not_allowed, 405)
            assert not_allowed.headers["allow"] == "GET, HEAD, OPTIONS, POST"
            options = await c.options(url(server, "/v1/orders/1"))
            assert options.status_code == 204 and options.content == b""
            assert options.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
            assert "content-length" not in options.headers


@PROTOCOLS
async def test_a_handler_failure_is_a_500_problem_without_details(
    http2: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="netkit.server")
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            resp = await c.get(url(server, "/v1/boom"))
    body = problem(resp, 500)
    assert "secret" not in resp.text and "Traceback" not in resp.text
    assert body["detail"] == "internal server error"


@PROTOCOLS
async def test_etags_304_and_if_match(http2: bool) -> None:
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            await c.post(url(server, "/v1/orders"), json={"sku": "book", "quantity": 2})
            first = await c.get(url(server, "/v1/orders/1"))
            etag = first.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            for header in (etag, f'"other", {etag}', "*", f"W/{etag}"):
                resp = await c.get(url(server, "/v1/orders/1"), headers={"if-none-match": header})
                assert resp.status_code == 304, header
                assert resp.content == b"" and resp.headers["etag"] == etag
            fresh = await c.get(url(server, "/v1/orders/1"), headers={"if-none-match": '"x"'})
            assert fresh.status_code == 200
            head = await c.head(url(server, "/v1/orders/1"))
            assert head.status_code == 200 and head.content == b""
            assert head.headers["etag"] == etag
            assert head.headers["content-length"] == first.headers["content-length"]

            stale = await c.put(
                url(server, "/v1/orders/1"),
                json={"sku": "pen", "quantity": 1},
                headers={"if-match": '"stale"'},
            )
            problem(stale, 412)
            assert (await c.get(url(server, "/v1/orders/1"))).json()["sku"] == "book"  # unchanged
            ok = await c.put(
                url(server, "/v1/orders/1"),
                json={"sku": "pen", "quantity": 1},
                headers={"if-match": etag},
            )
            assert ok.status_code == 200 and ok.json()["sku"] == "pen"
            again = await c.patch(
                url(server, "/v1/orders/1"), json={"quantity": 5}, headers={"if-match": etag}
            )
            problem(again, 412)  # the PUT changed the ETag
            gone = await c.delete(url(server, "/v1/orders/1"))
            assert gone.status_code == 204 and gone.content == b""
            assert "content-length" not in gone.headers
            problem(await c.delete(url(server, "/v1/orders/1"), headers={"if-match": "*"}), 412)


@PROTOCOLS
async def test_gzip_responses_and_requests(http2: bool) -> None:
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            resp = await c.get(url(server, "/v1/big"), headers={"accept-encoding": "gzip"})
            assert resp.headers["content-encoding"] == "gzip"
            assert resp.headers["vary"] == "accept-encoding"
            assert resp.headers["cache-control"] == "max-age=60"
            assert resp.json() == BIG  # httpx inflated it
            assert int(resp.headers["content-length"]) < len(json.dumps(BIG)) // 4
            gz_etag = resp.headers["etag"]
            plain = await c.get(url(server, "/v1/big"), headers={"accept-encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.json() == BIG
            assert plain.headers["etag"] != gz_etag
            refused = await c.get(
                url(server, "/v1/big"), headers={"accept-encoding": "gzip;q=0, br"}
            )
            assert "content-encoding" not in refused.headers
            revalidate = await c.get(
                url(server, "/v1/big"),
                headers={"accept-encoding": "gzip", "if-none-match": plain.headers["etag"]},
            )
            assert revalidate.status_code == 304

            body = gzip.compress(json.dumps({"sku": "zipped", "quantity": 3}).encode())
            created = await c.post(
                url(server, "/v1/orders"),
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            assert created.status_code == 201 and created.json()["sku"] == "zipped"
            bomb = gzip.compress(b" " * (4 * 1024 * 1024))  # 4 MiB of spaces, ~4 KiB sent
            too_big = await c.post(
                url(server, "/v1/orders"),
                content=bomb,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            problem(too_big, 413)
            unknown = await c.post(
                url(server, "/v1/orders"),
                content=b"{}",
                headers={"content-type": "application/json", "content-encoding": "zstd"},
            )
            problem(unknown, 415)


@PROTOCOLS
async def test_streaming_response(http2: bool) -> None:
    async with running_server(make_app()) as server, client(http2) as c:
        with trio.fail_after(10):
            async with c.stream("GET", url(server, "/v1/stream")) as resp:
                assert resp.status_code == 200
                if not http2:
                    assert resp.headers["transfer-encoding"] == "chunked"
                received = 0
                async for chunk in resp.aiter_raw():
                    received += len(chunk)
            assert received == 64 * 16384
            events = await c.get(url(server, "/v1/orders/9/events"))
            problem(events, 404)


@PROTOCOLS
async def test_idempotency_keys(http2: bool) -> None:
    gate, entered = trio.Event(), trio.Event()
    app = make_app(gate, entered)
    runs: list[str] = app.runs  # type: ignore[attr-defined]
    async with running_server(app) as server, client(http2) as c:
        with trio.fail_after(10):
            headers = {"idempotency-key": "abc-1"}
            first = await c.post(url(server, "/v1/notes"), json={"text": "hi"}, headers=headers)
            replay = await c.post(url(server, "/v1/notes"), json={"text": "hi"}, headers=headers)
            assert first.status_code == replay.status_code == 201
            assert replay.content == first.content
            assert replay.headers["idempotent-replayed"] == "true"
            assert "idempotent-replayed" not in first.headers
            assert runs == ["hi"]
            other = await c.post(url(server, "/v1/notes"), json={"text": "ho"}, headers=headers)
            problem(other, 422)
            # A handler's own 4xx is stored and replayed too.
            tea = {"idempotency-key": "tea"}
            for _ in range(2):
                problem(
                    await c.post(url(server, "/v1/notes"), json={"text": "teapot"}, headers=tea),
                    418,
                )
            assert runs.count("teapot") == 1

            # A retry while the first is still running: 409; after it finishes: the replay.
            slow = {"idempotency-key": "slow-1"}
            results: list[httpx.Response] = []

            async def first_request() -> None:
                results.append(
                    await c.post(url(server, "/v1/notes"), json={"text": "slow"}, headers=slow)
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_request)
                await entered.wait()
                busy = await c.post(url(server, "/v1/notes"), json={"text": "slow"}, headers=slow)
                problem(busy, 409)
                gate.set()
            after = await c.post(url(server, "/v1/notes"), json={"text": "slow"}, headers=slow)
            assert after.headers["idempotent-replayed"] == "true"
            assert after.content == results[0].content
            assert runs.count("slow") == 1


async def test_openapi_document_is_served() -> None:
    from openapi_spec_validator import validate

    async with running_server(make_app()) as server, client(False) as c:
        with trio.fail_after(10):
            resp = await c.get(url(server, "/openapi.json"))
    assert resp.status_code == 200
    document = resp.json()
    validate(document)
    assert "/v1/orders/{order_id}" in document["paths"]


async def test_request_body_limit_of_the_server_is_a_problem() -> None:
    config = ServerConfig(max_request_body_size=1024)
    async with running_server(make_app(), config=config) as server, client(False) as c:
        with trio.fail_after(10):
            resp = await c.post(url(server, "/v1/orders"), json={"sku": "x" * 4096, "quantity": 1})
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"


def _server_type_check(server: Server) -> None:  # keeps the import used for typing
    assert server.port
