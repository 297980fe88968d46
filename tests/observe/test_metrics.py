"""Metrics under a scripted load from real peers (httpx, grpcio, websockets): exact
counts, latency in the right buckets, bounded labels, limit hits; every scrape parsed
by prometheus-client's own text parser."""

from __future__ import annotations

import grpc
import httpx
import trio
from websockets.trio.client import connect

from netkit import ServerConfig
from netkit.observe import Observability
from netkit.protos.echo.v1 import echo_pb2
from tests.helpers import RawH2

from .apps import echo_unary, observed, parse, scrape, value, wait_until

REQ = "netkit_requests_total"
DUR = "netkit_request_duration_seconds"


async def test_http_load_counts_exactly_by_template() -> None:
    async with observed() as (server, _obs):
        base = f"http://127.0.0.1:{server.port}"
        for http2 in (False, True):
            async with httpx.AsyncClient(http1=not http2, http2=http2) as client:
                for i in range(5):
                    assert (await client.get(f"{base}/hello")).status_code == 200
                    assert (await client.get(f"{base}/v1/items/{i}")).status_code == 200
                assert (await client.get(f"{base}/nope/123")).status_code == 404
                assert (await client.request("FROB", f"{base}/hello")).status_code == 405
                assert (await client.get(f"{base}/slow")).status_code == 200
        async with httpx.AsyncClient() as client:
            samples = await scrape(client, server.port)
    labels = {"protocol": "http", "method": "GET", "status": "200"}
    assert value(samples, REQ, route="/hello", **labels) == 10
    # One series for every item id: the template, not the raw path.
    assert value(samples, REQ, route="/v1/items/{item_id:int}", **labels) == 10
    assert not any("/v1/items/1" in str(key) for key in samples)
    unmatched = {"protocol": "http", "method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(samples, REQ, **unmatched) == 2
    folded = {"protocol": "http", "method": "other", "route": "/hello", "status": "405"}
    assert value(samples, REQ, **folded) == 2
    fast = {"protocol": "http", "route": "/hello"}
    assert value(samples, f"{DUR}_count", **fast) == 12
    assert value(samples, f"{DUR}_bucket", le="10.0", **fast) == 12
    slow = {"protocol": "http", "route": "/slow"}
    assert value(samples, f"{DUR}_bucket", le="0.05", **slow) == 0  # slept 60 ms
    assert value(samples, f"{DUR}_bucket", le="+Inf", **slow) == 2
    assert value(samples, f"{DUR}_sum", **slow) >= 0.12
    body = len(b'{"message":"hello, world"}')
    # 10 answers of the hello body, plus two 405 problem documents on the same route.
    assert value(samples, "netkit_response_bytes_total", **fast) > 10 * body
    assert value(samples, "netkit_http2_streams_total") == 13
    assert value(samples, "netkit_connections_total", protocol="h2") == 1
    assert value(samples, "netkit_connections_total", protocol="http/1.1") >= 2
    assert value(samples, "netkit_requests_in_flight", http_version="1.1") == 1  # the scrape


async def test_bytes_in_flight_and_limits() -> None:
    config = ServerConfig(max_request_body_size=1000, max_header_size=2048)
    async with observed(config=config) as (server, _obs):
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                r = await client.post(f"{base}/upload", content=b"x" * 700)
                assert r.status_code == 200 and r.content == b"x" * 10
            r = await client.post(f"{base}/upload", content=b"x" * 5000)
            assert r.status_code == 413
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{base}/hello", headers={"x-big": "y" * 4000})
            assert r.status_code == 431
        async with httpx.AsyncClient() as client:
            samples = await scrape(client, server.port)
    upload = {"protocol": "http", "route": "/upload"}
    assert value(samples, "netkit_request_bytes_total", **upload) == 2100
    assert value(samples, "netkit_response_bytes_total", **upload) >= 30
    assert value(samples, "netkit_limit_hits_total", kind="413") == 1
    assert value(samples, "netkit_limit_hits_total", kind="431") == 1


async def test_h2_resets_refusals_and_goaway() -> None:
    config = ServerConfig(max_concurrent_streams=2)
    async with observed(config=config) as (server, obs):
        async with RawH2.connect(server) as client:
            # Sent before the server's SETTINGS are read: the third is over the limit.
            sids = [client.request("/slow") for _ in range(3)]
            await client.flush()
            await wait_until(lambda: obs.metrics.limit_hits.get("REFUSED_STREAM"))
            client.conn.reset_stream(sids[0], 8)  # CANCEL
            await client.flush()
            await wait_until(lambda: obs.metrics.resets.get(("received", 8)))
        server.shutdown()
        text, _ = obs.exposition()
    samples = parse(text.decode())
    assert value(samples, "netkit_limit_hits_total", kind="REFUSED_STREAM") == 1
    assert value(samples, "netkit_http2_resets_total", direction="sent", code="REFUSED_STREAM") == 1
    assert value(samples, "netkit_http2_resets_total", direction="received", code="CANCEL") == 1


def _grpcio_calls(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = echo_unary(channel)
        for i in range(4):
            assert unary(echo_pb2.EchoRequest(payload=bytes([i]))).payload == bytes([i])
        stream = channel.unary_stream(
            "/netkit.echo.v1.Echo/ServerStream",
            request_serializer=echo_pb2.EchoStreamRequest.SerializeToString,
            response_deserializer=echo_pb2.EchoResponse.FromString,
        )
        assert len(list(stream(echo_pb2.EchoStreamRequest(payload=b"x", count=7)))) == 7
        missing = channel.unary_unary("/netkit.echo.v1.Echo/Missing")
        try:
            missing(b"")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            raise AssertionError("an unknown method must fail")


async def test_grpcio_calls_by_method_and_status() -> None:
    async with observed() as (server, _obs):
        await trio.to_thread.run_sync(_grpcio_calls, server.port)
        async with httpx.AsyncClient() as client:
            samples = await scrape(client, server.port)
    grpc_ok = {"protocol": "grpc", "method": "POST", "status": "OK"}
    assert value(samples, REQ, route="/netkit.echo.v1.Echo/Unary", **grpc_ok) == 4
    assert value(samples, REQ, route="/netkit.echo.v1.Echo/ServerStream", **grpc_ok) == 1
    missing = {"protocol": "grpc", "method": "POST", "route": "<unmatched>"}
    assert value(samples, REQ, status="UNIMPLEMENTED", **missing) == 1
    unary = {"protocol": "grpc", "route": "/netkit.echo.v1.Echo/Unary"}
    assert value(samples, "netkit_messages_total", direction="received", **unary) == 4
    assert value(samples, "netkit_messages_total", direction="sent", **unary) == 4
    streamed = {"protocol": "grpc", "route": "/netkit.echo.v1.Echo/ServerStream"}
    assert value(samples, "netkit_messages_total", direction="sent", **streamed) == 7


async def test_websocket_sessions_connections_and_messages() -> None:
    async with observed() as (server, obs), httpx.AsyncClient() as client:
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            for i in range(3):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            samples = await scrape(client, server.port)
            assert value(samples, "netkit_connections_open", protocol="websocket") == 1
        await wait_until(lambda: not obs.metrics.connections_open["websocket"])
        samples = await scrape(client, server.port)
    assert value(samples, "netkit_connections_open", protocol="websocket") == 0
    assert value(samples, "netkit_connections_total", protocol="websocket") == 1
    session = {"protocol": "websocket", "method": "GET", "route": "/ws", "status": "1000"}
    assert value(samples, REQ, **session) == 1
    ws_route = {"protocol": "websocket", "route": "/ws"}
    assert value(samples, "netkit_messages_total", direction="received", **ws_route) == 3
    assert value(samples, "netkit_messages_total", direction="sent", **ws_route) == 3


async def test_admin_port_and_openmetrics() -> None:
    obs = Observability()
    async with observed(obs) as (server, _), trio.open_nursery() as nursery:
        admin = await nursery.start(obs.serve_metrics, "127.0.0.1", 0)
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/hello")
            samples = await scrape(client, admin.port)
            assert (await client.get(f"http://127.0.0.1:{admin.port}/other")).status_code == 404
            r = await client.get(
                f"http://127.0.0.1:{admin.port}/metrics",
                headers={"accept": "application/openmetrics-text; version=1.0.0"},
            )
            assert r.headers["content-type"].startswith("application/openmetrics-text")
            assert r.text.rstrip().endswith("# EOF")
            samples = await scrape(client, admin.port)
        nursery.cancel_scope.cancel()
    hello = {"protocol": "http", "method": "GET", "route": "/hello", "status": "200"}
    assert value(samples, REQ, **hello) == 1
    # Requests to the admin port (three scrapes, one 404) are not counted: /hello is all.
    requests = {labels: n for (name, labels), n in samples.items() if name == REQ}
    assert requests == {tuple(sorted(hello.items())): 1}


async def test_admin_port_methods() -> None:
    obs = Observability()
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
        admin = await nursery.start(obs.serve_metrics, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{admin.port}/metrics"
        r = await client.head(url)
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        for method in ("POST", "DELETE"):
            r = await client.request(method, url)
            assert r.status_code == 405
            assert r.headers["allow"] == "GET, HEAD"
        nursery.cancel_scope.cancel()


async def test_series_are_bounded() -> None:
    obs = Observability(max_series=3)
    for i in range(10):
        obs.metrics.series("http", "GET", f"/r{i}", 200).count += 1
    assert len(obs.metrics.requests) == 4  # three, then one overflow series
    assert obs.metrics.requests["http", "GET", "<overflow>", 200].count == 7


def test_peer_chosen_error_codes_are_bounded() -> None:
    # The peer picks an RST_STREAM or GOAWAY code: any 32-bit number.
    obs = Observability(max_series=3)
    for code in range(100):
        obs.reset("received", code)
        obs.goaway("received", code)
    assert obs.metrics.resets == {("received", 0): 1, ("received", 1): 1, ("received", 2): 1}
    assert len(obs.metrics.goaways) == 3
    obs.reset("received", 1)  # a code already seen is still counted
    assert obs.metrics.resets["received", 1] == 2


def test_message_routes_are_bounded() -> None:
    obs = Observability(max_series=3)
    for i in range(10):
        obs.metrics.message("grpc", f"/r{i}", "received")
    assert len(obs.metrics.messages) == 3
