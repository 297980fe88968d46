"""``netkit balancer``'s ReverseProxy against peers we did not write: httpx (HTTP/1.1 and
HTTP/2), curl, websockets and grpcio's interop client; and the fault cases."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import h2.events
import httpx
import pytest
import trio
import wsproto.frame_protocol
from websockets.trio.client import connect

from netkit.balance import (
    Backend,
    Balancer,
    BalancerConfig,
    OutlierConfig,
    PoolLimits,
    ProxyConfig,
    ReverseProxy,
    RoundRobin,
    StaticBackends,
)
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.grpc.interop.server import interop_app
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from tests.balance.backends import fleet
from tests.helpers import RawH2, running_server
from tests.interop.peers import run_tool, tool

from .test_grpc_interop import assert_passed, grpcio_client, run_client


@pytest.mark.parametrize("protocol", ["auto", "h1", "h2"])
@pytest.mark.parametrize("http2", [False, True])
async def test_httpx_through_the_proxy_round_robin(protocol: str, http2: bool) -> None:
    async with fleet(3, protocol=protocol, strategy=RoundRobin(random.Random(0))) as f:
        async with httpx.AsyncClient(http1=not http2, http2=http2) as client:
            names = []
            for _ in range(6):
                r = await client.get(f"{f.url}/who", headers={"x-request-id": "abc"})
                assert r.status_code == 200
                assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                names.append(r.json()["backend"])
                assert r.headers["x-request-id"] == "abc"
                assert r.headers["via"].endswith("netkit")
            assert Counter(names) == {"b0": 2, "b1": 2, "b2": 2}
            r = await client.post(f"{f.url}/who", content=b"x" * 200_000)
            assert r.status_code == 200, r.text
            assert r.json()["echo"] == "x" * 200_000  # streamed, not buffered
            r = await client.get(f"{f.url}/big")
            assert r.content == b"".join(bytes([i]) * 16384 for i in range(64))
        seen = f.behaviours[0].seen_headers[0]
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["forwarded"].startswith("for=127.0.0.1;host=")
        assert seen["x-request-id"] == "abc"
        assert "netkit" in seen["via"]
        assert "connection" not in seen and "keep-alive" not in seen


async def test_curl_through_the_proxy_gets_a_request_id() -> None:
    curl = tool("curl")
    async with fleet(2) as f:
        result = await run_tool([curl, "-s", "-i", "--http2-prior-knowledge", f"{f.url}/who"])
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200")
    assert b"x-request-id: " in head
    assert json.loads(body)["backend"] in ("b0", "b1")


async def test_backend_503_is_retried_elsewhere_within_the_budget() -> None:
    async with fleet(2, strategy=RoundRobin(random.Random(0))) as f:
        f.behaviours[0].status = 503
        async with httpx.AsyncClient() as client:
            for _ in range(4):
                r = await client.get(f"{f.url}/who")
                assert r.status_code == 200 and r.json()["backend"] == "b1"
            # POST without an Idempotency-Key is not retried: the 503 reaches the client.
            statuses = {
                (await client.post(f"{f.url}/who", content=b"x")).status_code for _ in range(4)
            }
            assert statuses == {200, 503}
            keyed = [
                await client.post(f"{f.url}/who", content=b"x", headers={"idempotency-key": str(i)})
                for i in range(4)
            ]
            assert {r.status_code for r in keyed} == {200}
        assert f.proxy.retries >= 2


async def test_all_backends_down_is_a_fast_503_problem() -> None:
    async with fleet(2, config=ProxyConfig(max_retries=1)) as f:
        for server in f.servers:
            server.shutdown()
        await trio.sleep(0.2)
        async with httpx.AsyncClient() as client:
            with trio.fail_after(3):
                r = await client.get(f"{f.url}/who")
        assert r.status_code in (502, 503)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == r.status_code


async def test_no_backend_at_all_answers_503_and_grpc_unavailable() -> None:
    balancer = Balancer(StaticBackends([]))
    proxy = ReverseProxy(balancer)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        async with running_server(proxy) as front:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{front.port}/x")
            assert r.status_code == 503
            assert r.json()["detail"] == "no backend available"
            async with open_channel("127.0.0.1", front.port) as channel:
                with pytest.raises(GRPCError) as info:
                    await EchoStub(channel).Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=2)
                assert info.value.code == StatusCode.UNAVAILABLE
        nursery.cancel_scope.cancel()


async def test_a_hanging_backend_times_out_and_is_ejected() -> None:
    config = ProxyConfig(response_timeout=0.3, max_retries=0)
    balancer_config = BalancerConfig(
        outlier=OutlierConfig(consecutive_failures=2, max_ejection_percent=50)
    )
    async with fleet(2, strategy=RoundRobin(random.Random(0)), config=config) as f:
        f.proxy.balancer.lb.config = balancer_config
        f.behaviours[0].hang = True
        async with httpx.AsyncClient(timeout=5) as client:
            statuses = [
                (await client.post(f"{f.url}/who", content=b"x")).status_code for _ in range(4)
            ]
            assert statuses.count(504) == 2
            # b0 is ejected now: everything goes to b1.
            after = [
                (await client.post(f"{f.url}/who", content=b"x")).json()["backend"]
                for _ in range(4)
            ]
        assert after == ["b1"] * 4
        assert len(f.proxy.balancer.lb.ejected(trio.current_time())) == 1


async def test_circuit_breaker_answers_503_at_once() -> None:
    config = ProxyConfig(limits=PoolLimits(max_requests=1), max_retries=0)
    async with fleet(1, config=config) as f:
        f.behaviours[0].hang = True
        async with httpx.AsyncClient(timeout=5) as client, trio.open_nursery() as nursery:
            nursery.start_soon(client.get, f"{f.url}/who")
            await trio.sleep(0.2)
            with trio.fail_after(1):
                r = await client.get(f"{f.url}/who")
            assert r.status_code == 503
            nursery.cancel_scope.cancel()


# -- gRPC -------------------------------------------------------------------------------
async def test_grpc_streaming_through_the_proxy_and_a_backend_killed_mid_stream() -> None:
    async with (
        fleet(2, strategy=RoundRobin(random.Random(0))) as f,
        open_channel("127.0.0.1", f.port) as channel,
    ):
        stub = EchoStub(channel)
        reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"hi"), timeout=5)
        assert reply.payload == b"hi"
        async with stub.Bidi.open(timeout=5) as call:
            for word in (b"a", b"b", b"c"):
                await call.send_message(echo_pb2.EchoRequest(payload=word))
                assert (await call.recv_message()).payload == word
            await call.end()
            assert await call.recv_message() is None
        # A bidirectional stream, then the backend it went to dies mid-stream.
        async with stub.Bidi.open(timeout=5) as call:
            await call.send_message(echo_pb2.EchoRequest(payload=b"x"))
            await call.recv_message()
            busy = [s.outstanding for s in f.proxy.balancer.lb.members]
            victim = busy.index(1)
            f.kill(victim)
            with pytest.raises(GRPCError) as info, trio.fail_after(5):
                while True:
                    await call.send_message(echo_pb2.EchoRequest(payload=b"y"))
                    await call.recv_message()
            assert info.value.code == StatusCode.UNAVAILABLE
        # The next calls go to the surviving backend.
        for _ in range(3):
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"again"), timeout=5)
            assert reply.payload == b"again"


async def test_grpc_deadline_is_propagated_and_enforced() -> None:
    async with fleet(1) as f, open_channel("127.0.0.1", f.port) as channel:
        stub = EchoStub(channel)
        # ClientStream that never half-closes: the backend waits, the deadline ends it.
        with pytest.raises(GRPCError) as info:
            async with stub.ClientStream.open(timeout=0.3) as call:
                await call.send_message(echo_pb2.EchoRequest(payload=b"x"))
                await call.wait_status()
        assert info.value.code == StatusCode.DEADLINE_EXCEEDED


async def test_grpcio_interop_client_through_the_proxy() -> None:
    async with (
        running_server(interop_app()) as one,
        running_server(interop_app()) as two,
    ):
        backends = [Backend("127.0.0.1", one.port), Backend("127.0.0.1", two.port)]
        proxy = ReverseProxy(Balancer(StaticBackends(backends)))
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            async with running_server(proxy) as front:
                cases = [
                    "empty_unary",
                    "large_unary",
                    "client_streaming",
                    "server_streaming",
                    "ping_pong",
                    "empty_stream",
                    "custom_metadata",
                    "status_code_and_message",
                    "special_status_message",
                    "unimplemented_method",
                    "cancel_after_begin",
                    "cancel_after_first_response",
                    "timeout_on_sleeping_server",
                    "client_compressed_unary",
                    "server_compressed_streaming",
                ]
                result = await run_client(grpcio_client(front.port, ",".join(cases)))
            nursery.cancel_scope.cancel()
    assert_passed(result, cases)


# -- WebSocket --------------------------------------------------------------------------
async def test_websockets_client_through_the_proxy_keeps_frames_and_close_codes() -> None:
    async with fleet(2) as f:
        async with connect(f"ws://127.0.0.1:{f.port}/ws") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01" * 5000)
            assert await ws.recv() == b"\x00\x01" * 5000
            await ws.aclose(code=4001, reason="bye")
        assert ws.close_code == 4001


async def test_websocket_over_http2_extended_connect_through_the_proxy() -> None:
    """RFC 8441 to the proxy, HTTP/1.1 Upgrade to the backend: frames and close codes pass."""
    async with fleet(1) as f, RawH2.connect(_front(f)) as client:
        with trio.fail_after(5):
            await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                sid,
                [
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":path", "/ws"),
                    (":authority", "localhost"),
                    ("sec-websocket-version", "13"),
                ],
            )
            await client.flush()
            head = await client.until(
                lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
            )
            assert dict(head.headers)[b":status"] == b"200"
            proto = wsproto.frame_protocol.FrameProtocol(client=True, extensions=[])
            client.conn.send_data(sid, bytes(proto.send_data("over h2")))
            await client.flush()

            def received() -> bytes:
                return b"".join(
                    e.data
                    for e in client.events
                    if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
                )

            while b"over h2" not in received():  # the echo: an unmasked text frame
                await client.receive()
            assert received().startswith(b"\x81\x07over h2")
            client.conn.send_data(sid, bytes(proto.close(4002, "done")))
            await client.flush()
            await client.until(lambda e: isinstance(e, h2.events.StreamEnded))
        # The backend's close frame, code 4002 and reason, relayed byte for byte.
        assert received().endswith(b"\x88\x06\x0f\xa2done")


class _Front:
    def __init__(self, port: int) -> None:
        self.port = port


def _front(f: object) -> Any:
    return _Front(f.port)  # type: ignore[attr-defined]


async def test_netkit_balancer_cli_with_curl() -> None:
    from .test_grpc_interop import NETKIT, background

    curl = tool("curl")
    async with running_server() as hello:
        args = [*NETKIT, "balancer", "--port", "0", "--backend", f"127.0.0.1:{hello.port}"]
        args += ["--health-check", "http:/hello", "--strategy", "least_outstanding"]
        async with background(args, "netkit balancer") as proxy:
            result = await run_tool([curl, "-s", f"http://127.0.0.1:{proxy.port}/hello"])
    assert json.loads(result.stdout) == {"message": "hello, world"}
