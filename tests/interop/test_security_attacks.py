"""The attacker's view: every entry point of a secured App, hit with what an attacker
sends, while a bystander client keeps being served.

Each test runs the secured app (tests/security/apps.py) with tight limits and a
bystander that makes authenticated REST (HTTP/2) and gRPC calls every few
milliseconds; at the end the bystander must have been served every time. The
outcomes checked are the protocols' own: 431/413/400/401/403/404 problem+json,
RESOURCE_EXHAUSTED/INTERNAL/UNAUTHENTICATED/PERMISSION_DENIED, close 1009, a closed
slow connection, a reset stalled stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import h2.events
import h2.settings
import httpx
import pytest
import trio
import websockets.exceptions
from h2.errors import ErrorCodes
from websockets.trio.client import connect

from netkit import Server, ServerConfig
from netkit.grpc import GRPCConfig, open_channel
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from netkit.rest import BearerToken
from netkit.security import CallCredentials
from tests.helpers import RawH2, running_server
from tests.security.apps import UNARY, make_app

pytestmark = pytest.mark.interop

CONFIG = ServerConfig(
    max_header_size=8 * 1024,
    max_request_body_size=64 * 1024,
    request_head_timeout=1.0,
    write_timeout=1.0,
)
ALICE = {"authorization": "Bearer alice-token"}


class Bystander:
    """An innocent client: REST over HTTP/2 and gRPC, in a loop, counting its answers."""

    def __init__(self) -> None:
        self.served = 0
        self.failures: list[str] = []
        #: Set (and replaced) after every served round.
        self.tick = trio.Event()

    async def run(self, server: Server, task_status: trio.TaskStatus[None]) -> None:
        base = f"http://127.0.0.1:{server.port}"
        credentials = CallCredentials(BearerToken.static("alice-token"))
        async with (
            httpx.AsyncClient(base_url=base, http1=False, http2=True, timeout=5) as http,
            open_channel("127.0.0.1", server.port, interceptors=[credentials]) as channel,
        ):
            stub = EchoStub(channel)
            task_status.started()
            while True:
                try:
                    response = await http.get("/v1/orders/1", headers=ALICE)
                    if response.json() != {"id": "1", "by": "alice"}:
                        self.failures.append(f"REST {response.status_code}")
                    reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"whoami"), timeout=5)
                    if reply.payload != b"alice":
                        self.failures.append(f"gRPC {reply.payload!r}")
                    self.served += 1
                    self.tick.set()
                    self.tick = trio.Event()
                except Exception as exc:  # the test's verdict, not a crash
                    self.failures.append(repr(exc))
                await trio.sleep(0.01)


@asynccontextmanager
async def attacked() -> AsyncIterator[Server]:
    app = make_app()
    app.grpc.config = GRPCConfig(max_receive_message_size=1024)
    bystander = Bystander()
    async with running_server(app, CONFIG) as server, trio.open_nursery() as nursery:
        await nursery.start(bystander.run, server)
        yield server
        with trio.fail_after(5):  # still served after the attack
            await bystander.tick.wait()
            await bystander.tick.wait()
        nursery.cancel_scope.cancel()
    assert bystander.failures == []
    assert bystander.served >= 2


async def raw_http1(server: Server, request: bytes, *, read_all: bool = False) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
                if not read_all and b"\r\n\r\n" in data:
                    break
        return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# -- sizes ------------------------------------------------------------------------------------
async def test_oversized_headers_and_bodies() -> None:
    async with attacked() as server:
        huge = b"x-junk: " + b"a" * (16 * 1024) + b"\r\n"
        head = await raw_http1(server, b"GET /v1/orders/1 HTTP/1.1\r\nhost: x\r\n" + huge + b"\r\n")
        assert status_of(head) == 431
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            too_big = await http.post("/v1/orders", content=b"{" * 100_000, headers=ALICE)
            assert too_big.status_code == 413
            assert too_big.headers["content-type"] == "application/problem+json"
        async with RawH2.connect(server) as client:  # an HTTP/2 header block past the limit
            client.request("/v1/orders/1", **{"x-junk": "b" * (16 * 1024)})
            await client.flush()
            with trio.fail_after(5):
                await client.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            goaway = client.goaway()
            assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def _grpcio(port: int, payload: bytes, *, raw: bool = False) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            UNARY,
            request_serializer=(lambda b: b) if raw else echo_pb2.EchoRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )
        request = payload if raw else echo_pb2.EchoRequest(payload=payload)
        try:
            call(request, metadata=[("authorization", "Bearer alice-token")], timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_oversized_and_invalid_grpc_messages() -> None:
    async with attacked() as server:
        big = await trio.to_thread.run_sync(lambda: _grpcio(server.port, b"z" * 4096))
        assert big == grpc.StatusCode.RESOURCE_EXHAUSTED
        garbage = await trio.to_thread.run_sync(
            lambda: _grpcio(server.port, b"\xff\xff\xff\xff\x0f", raw=True)
        )
        assert garbage == grpc.StatusCode.INTERNAL


async def test_oversized_websocket_frame_closes_1009() -> None:
    async with attacked() as server:
        url = f"ws://127.0.0.1:{server.port}/v1/ws/whoami"
        async with connect(url, additional_headers=ALICE, max_size=None) as ws:
            assert await ws.recv() == "hello alice"
            await ws.send(b"x" * (2 * 1024 * 1024))
            with pytest.raises(websockets.exceptions.ConnectionClosedError), trio.fail_after(5):
                await ws.recv()
            assert ws.close_code == 1009


# -- malformed input ------------------------------------------------------------------------
async def test_malformed_json_and_path_traversal() -> None:
    async with (
        attacked() as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
    ):
        bad = await http.post(
            "/v1/orders",
            content=b'{"item": ',
            headers={**ALICE, "content-type": "application/json"},
        )
        assert bad.status_code == 400
        assert bad.json()["detail"].startswith("malformed JSON")
        bob = {"authorization": "Bearer bob-token"}
        # Encoded slashes stay inside one path parameter: no route is escaped into, and
        # the rule that applies is the matched template's.
        escaped = await http.get("/v1/orders/..%2F..%2Fetc%2Fpasswd", headers=bob)
        assert escaped.status_code == 200
        # (decoded: a parameter is data, never a file path to open)
        assert escaped.json() == {"id": "../../etc/passwd", "by": "bob"}
        # Dot segments are not resolved by the server (httpx would, so send them raw).
        for target in [b"/v1/orders/../admin", b"/v1/orders/1/../../admin", b"/v1/./admin"]:
            request = (
                b"GET "
                + target
                + b" HTTP/1.1\r\nhost: x\r\nauthorization: Bearer bob-token\r\n\r\n"
            )
            response = await raw_http1(server, request)
            assert status_of(response) == 404, target
        admin = await http.get("/v1/admin", headers=bob)
        assert admin.status_code == 403  # the real route stays guarded


async def test_header_injection_is_refused_on_both_protocols() -> None:
    async with attacked() as server:
        for http2 in (False, True):
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", http1=not http2, http2=http2
            ) as http:
                fine = await http.get("/v1/echo-header", params={"v": "plain"}, headers=ALICE)
                assert fine.headers["x-echo"] == "plain"
                for evil in ["a\r\nset-cookie: pwned=1", "a\nset-cookie: pwned=1", "a\x00b"]:
                    response = await http.get("/v1/echo-header", params={"v": evil}, headers=ALICE)
                    assert response.status_code == 500
                    assert "set-cookie" not in response.headers
                    assert "x-echo" not in response.headers
                # The connection is still usable afterwards.
                again = await http.get("/v1/echo-header", params={"v": "ok"}, headers=ALICE)
                assert again.headers["x-echo"] == "ok"


# -- slow clients -----------------------------------------------------------------------------
async def test_slowloris_head_is_cut_off() -> None:
    async with attacked() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            start = trio.current_time()
            closed = False
            with trio.fail_after(5):
                try:
                    for chunk in [b"GET /v1/orders/1 HTTP/1.1\r\n", b"host: x\r\n", b"x-a: 1\r\n"]:
                        await stream.send_all(chunk)
                        await trio.sleep(0.4)
                    while await stream.receive_some(1024):
                        pass
                    closed = True
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    closed = True
            assert closed
            assert trio.current_time() - start < CONFIG.request_head_timeout + 1.5


async def test_zero_window_stream_is_reset_after_write_timeout() -> None:
    async with attacked() as server, RawH2.connect(server) as client:
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        await client.flush()
        with trio.fail_after(5):
            await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            sid = client.request("/openapi.json")
            await client.flush()
            reset = await client.until(
                lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid
            )
        assert reset.error_code == ErrorCodes.CANCEL


# -- unauthenticated and unauthorised, every protocol ------------------------------------------
async def test_unauthenticated_and_unauthorised_everywhere() -> None:
    async with attacked() as server:
        port = server.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/v1/orders/1")).status_code == 401
            bob = {"authorization": "Bearer bob-token"}
            assert (await http.post("/v1/orders", json={}, headers=bob)).status_code == 403

        def grpc_code(token: str | None) -> Any:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary(
                    UNARY,
                    request_serializer=echo_pb2.EchoRequest.SerializeToString,
                    response_deserializer=echo_pb2.EchoResponse.FromString,
                )
                metadata = [("authorization", f"Bearer {token}")] if token else []
                try:
                    call(echo_pb2.EchoRequest(), metadata=metadata, timeout=5)
                except grpc.RpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

        assert await trio.to_thread.run_sync(lambda: grpc_code(None)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert await trio.to_thread.run_sync(lambda: grpc_code("bob-token")) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        url = f"ws://127.0.0.1:{port}"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with connect(f"{url}/v1/ws/whoami"):
                pass
        assert refused.value.response.status_code == 401
        async with connect(f"{url}/v1/events", additional_headers=bob) as ws:
            await ws.send(json.dumps({"v": 1, "type": "publish", "id": 1, "topic": "orders.x"}))
            reply = json.loads(await ws.recv())
            assert (reply["type"], reply["code"]) == ("error", "forbidden")
