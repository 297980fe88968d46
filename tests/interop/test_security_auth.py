"""Authentication and authorization on REST, gRPC and WebSocket, called by peers we did
not write (httpx, curl, grpcio, websockets) and by netkit's own clients.

Every protocol refuses in its own words, and "who are you?" stays distinct from "you
may not": REST 401 + ``WWW-Authenticate`` vs 403 problem+json; gRPC UNAUTHENTICATED vs
PERMISSION_DENIED; WebSocket 401 vs 403 before the upgrade, pub/sub ``forbidden``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import jwt
import pytest
import trio
import websockets.exceptions
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.trio.client import connect

from netkit import BearerToken, RestClient, Server
from netkit.grpc import GRPCError, StatusCode, open_channel
from netkit.protos.echo.v1 import echo_pb2
from netkit.protos.echo.v1.echo_netkit import EchoStub
from netkit.rest import APIError
from netkit.security import (
    AnyOf,
    BearerTokens,
    CallCredentials,
    HMACSigner,
    HMACVerifier,
    JWTAuthenticator,
    Security,
)
from netkit.ws import EventsError, HandshakeRefused, connect_events
from tests.helpers import running_server
from tests.interop.peers import run_tool
from tests.security.apps import ALICE, BIDI, CLIENT_STREAM, UNARY, make_app, policy

pytestmark = pytest.mark.interop


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- REST -------------------------------------------------------------------------------------
async def test_rest_refusals_with_httpx() -> None:
    async with (
        running_server(make_app()) as server,
        httpx.AsyncClient(base_url=base(server), timeout=5) as http,
    ):
        missing = await http.get("/v1/orders/7")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == 'Bearer realm="netkit"'
        assert missing.json()["detail"] == "authentication required"

        wrong = await http.get("/v1/orders/7", headers=bearer("forged"))
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

        denied = await http.post("/v1/orders", json={"item": 1}, headers=bearer("bob-token"))
        assert denied.status_code == 403
        assert denied.json()["title"] == "Forbidden"
        assert (
            'error="insufficient_scope", scope="orders:write"' in denied.headers["www-authenticate"]
        )
        admin = await http.get("/v1/admin", headers=bearer("bob-token"))
        assert admin.status_code == 403

        allowed = await http.get("/v1/orders/7", headers=bearer("bob-token"))
        assert allowed.json() == {"id": "7", "by": "bob"}
        created = await http.post("/v1/orders", json={"item": 1}, headers=bearer("alice-token"))
        assert created.status_code == 201
        assert created.json() == {"created": True, "by": "alice"}
        public = await http.get("/healthz")
        assert public.status_code == 200
        assert public.json()["principal"] is None


async def test_rest_refused_before_the_body_is_read() -> None:
    """A refused client never gets to upload: 401 comes back while the body is unsent."""
    async with running_server(make_app()) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(
                b"POST /v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 1000000\r\n\r\n"
            )
            with trio.fail_after(5):
                head = await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 401 ")


async def test_rest_with_curl_shows_the_challenge(curl: str) -> None:
    async with running_server(make_app()) as server:
        result = await run_tool([curl, "-sS", "-i", f"{base(server)}/v1/orders/1"])
        assert result.stdout.startswith(b"HTTP/1.1 401")
        assert (
            b'www-authenticate: Bearer realm="netkit"'
            in result.stdout.lower().replace(b"realm", b"realm")
            or b'www-authenticate: bearer realm="netkit"' in result.stdout.lower()
        )
        ok = await run_tool(
            [curl, "-sS", "--http2-prior-knowledge", "-H", "Authorization: Bearer bob-token",
             f"{base(server)}/v1/orders/1"]
        )  # fmt: skip
        assert json.loads(ok.stdout) == {"id": "1", "by": "bob"}


async def test_rest_client_refreshes_a_rejected_token() -> None:
    tokens = iter(["expired-token", "alice-token"])
    fetched: list[str] = []

    async def fetch() -> str:
        fetched.append(next(tokens))
        return fetched[-1]

    async with (
        running_server(make_app()) as server,
        RestClient(base(server), auth=BearerToken(fetch)) as client,
    ):
        assert await client.get("/v1/orders/3") == {"id": "3", "by": "alice"}
        assert fetched == ["expired-token", "alice-token"]
        async with RestClient(base(server), auth=BearerToken.static("bob-token")) as bob:
            with pytest.raises(APIError) as denied:
                await bob.post("/v1/orders", json={"x": 1})
            assert denied.value.status == 403


# -- JWT --------------------------------------------------------------------------------------
async def test_jwt_es256_with_key_rotation_over_httpx() -> None:
    old_key, new_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    authn = JWTAuthenticator(
        {"k1": old_key.public_key()},
        algorithms=["ES256"],
        issuer="https://issuer.test",
        audience="orders",
    )
    app = make_app(Security(AnyOf(authn), policy()))

    def token(key: Any, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "carol", "iss": "https://issuer.test", "aud": "orders", "exp": now + 60}
        body.update(scope="orders:read orders:write", **claims)
        return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})

    async with (
        running_server(app) as server,
        httpx.AsyncClient(base_url=base(server), timeout=5) as http,
    ):
        ok = await http.post("/v1/orders", json={}, headers=bearer(token(old_key, "k1")))
        assert ok.json()["by"] == "carol"
        unknown = await http.get("/v1/orders/1", headers=bearer(token(new_key, "k2")))
        assert unknown.status_code == 401
        authn.add_key("k2", new_key.public_key())  # the issuer publishes its new key
        rotated = await http.get("/v1/orders/1", headers=bearer(token(new_key, "k2")))
        assert rotated.status_code == 200
        authn.remove_key("k1")  # ...and retires the old one
        retired = await http.get("/v1/orders/1", headers=bearer(token(old_key, "k1")))
        assert retired.status_code == 401
        expired = await http.get(
            "/v1/orders/1", headers=bearer(token(new_key, "k2", exp=int(time.time()) - 3600))
        )
        assert expired.status_code == 401
        assert "expired" in expired.headers["www-authenticate"]
        wrong_aud = await http.get(
            "/v1/orders/1", headers=bearer(token(new_key, "k2", aud="billing"))
        )
        assert wrong_aud.status_code == 401


# -- gRPC -------------------------------------------------------------------------------------
def _grpcio_code(port: int, path: str, metadata: list[tuple[str, str]]) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        method: Callable[..., Any]
        if path == UNARY:
            method = channel.unary_unary(
                path,
                request_serializer=echo_pb2.EchoRequest.SerializeToString,
                response_deserializer=echo_pb2.EchoResponse.FromString,
            )
            request: Any = echo_pb2.EchoRequest(payload=b"whoami")
        else:
            method = channel.stream_unary(
                path,
                request_serializer=echo_pb2.EchoRequest.SerializeToString,
                response_deserializer=echo_pb2.EchoResponse.FromString,
            )
            request = iter([echo_pb2.EchoRequest(payload=b"a")])
        try:
            reply = method(request, metadata=metadata, timeout=5)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        return grpc.StatusCode.OK, reply.payload


async def test_grpcio_unauthenticated_and_permission_denied() -> None:
    async with running_server(make_app()) as server:

        async def code(path: str, metadata: list[tuple[str, str]]) -> Any:
            return await trio.to_thread.run_sync(lambda: _grpcio_code(server.port, path, metadata))

        status, detail = await code(UNARY, [])
        assert status == grpc.StatusCode.UNAUTHENTICATED
        assert detail == "authentication required"
        status, _ = await code(UNARY, [("authorization", "Bearer forged")])
        assert status == grpc.StatusCode.UNAUTHENTICATED
        status, detail = await code(UNARY, [("authorization", "Bearer bob-token")])
        assert status == grpc.StatusCode.PERMISSION_DENIED
        assert "echo:call" in detail
        assert await code(UNARY, [("authorization", "Bearer alice-token")]) == (
            grpc.StatusCode.OK,
            b"alice",
        )
        # A method-level rule beats the service wildcard; DENY is for everyone.
        status, _ = await code(CLIENT_STREAM, [("authorization", "Bearer alice-token")])
        assert status == grpc.StatusCode.OK
        status, _ = await code(BIDI, [("authorization", "Bearer alice-token")])
        assert status == grpc.StatusCode.PERMISSION_DENIED


async def test_netkit_channel_call_credentials_refresh() -> None:
    tokens = iter(["stale-token", "alice-token"])

    async def fetch() -> str:
        return next(tokens)

    credentials = CallCredentials(BearerToken(fetch))
    async with (
        running_server(make_app()) as server,
        open_channel("127.0.0.1", server.port, interceptors=[credentials]) as channel,
    ):
        stub = EchoStub(channel)
        with pytest.raises(GRPCError) as refused:
            await stub.Unary(echo_pb2.EchoRequest(payload=b"whoami"))
        assert refused.value.code == StatusCode.UNAUTHENTICATED
        reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"whoami"))
        assert reply.payload == b"alice"
        assert credentials.refreshes == 1


# -- WebSocket --------------------------------------------------------------------------------
def ws_url(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/ws/whoami", {}, 401),
        ("/v1/ws/whoami", bearer("forged"), 401),
        ("/v1/events", {}, 401),
    ],
)
async def test_websockets_refused_before_the_upgrade(
    path: str, headers: dict[str, str], status: int
) -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with connect(ws_url(server, path), additional_headers=headers):
                    pass
            response = info.value.response
            assert response.status_code == status
            assert response.headers["www-authenticate"].startswith('Bearer realm="netkit"')
            async with connect(
                ws_url(server, "/v1/ws/whoami"), additional_headers=bearer("bob-token")
            ) as ws:
                assert await ws.recv() == "hello bob"
            async with connect(ws_url(server, "/v1/public")) as ws:
                assert await ws.recv() == "hello anonymous"


async def test_pubsub_topics_by_scope_with_websockets_and_events_client() -> None:
    async with running_server(make_app()) as server:
        url = ws_url(server, "/v1/events")
        async with connect(url, additional_headers=bearer("bob-token")) as ws:
            await ws.send(json.dumps({"v": 1, "type": "subscribe", "id": 1, "topic": "orders.>"}))
            reply = json.loads(await ws.recv())
            # orders.> also reaches orders.secret.*, which needs the admin role
            assert reply["type"] == "error" and reply["code"] == "forbidden"
            await ws.send(json.dumps({"v": 1, "type": "subscribe", "id": 2, "topic": "orders.eu"}))
            assert json.loads(await ws.recv())["type"] == "ack"
            await ws.send(json.dumps({"v": 1, "type": "publish", "id": 3, "topic": "orders.eu"}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "forbidden"
            # The connection stays open after a refusal.
            await ws.send(json.dumps({"v": 1, "type": "subscribe", "id": 4, "topic": "orders.us"}))
            assert json.loads(await ws.recv())["type"] == "ack"

        async with connect_events(
            url, auth=BearerToken.static("alice-token"), ping_interval=None
        ) as alice:
            await alice.subscribe("orders.>")
            await alice.publish("orders.secret.x", {"n": 1})
            with trio.fail_after(5):
                message = await alice.receive()
            assert (message.topic, message.data) == ("orders.secret.x", {"n": 1})
        async with connect_events(
            url, auth=BearerToken.static("bob-token"), ping_interval=None
        ) as bob:
            with pytest.raises(EventsError) as refused:
                await bob.publish("orders.eu", {})
            assert refused.value.code == "forbidden"
        with pytest.raises(HandshakeRefused) as no_token:
            async with connect_events(url, ping_interval=None):
                pass
        assert no_token.value.status == 401


# -- HMAC signing ---------------------------------------------------------------------------
async def test_hmac_signed_rest_client_against_verifier() -> None:
    app = make_app(Security(BearerTokens({"alice-token": ALICE}), policy()))
    verifier = HMACVerifier({"partner": b"s3cret"})
    verifier.install(app.rest)
    signer = HMACSigner("partner", b"s3cret")
    async with running_server(app) as server:
        async with RestClient(
            base(server), auth=BearerToken.static("alice-token"), request_hooks=[signer]
        ) as client:
            assert (await client.post("/v1/orders", json={"n": 1}))["by"] == "alice"
        async with httpx.AsyncClient(base_url=base(server), timeout=5) as http:
            unsigned = await http.post("/v1/orders", json={"n": 1}, headers=bearer("alice-token"))
            assert unsigned.status_code == 401
            assert unsigned.json()["detail"] == "this endpoint needs a signed request"
            body = b'{"n":1}'
            header = signer.sign("POST", "/v1/orders", body)
            headers = {**bearer("alice-token"), "x-netkit-signature": header}
            headers["content-type"] = "application/json"
            first = await http.post("/v1/orders", content=body, headers=headers)
            assert first.status_code == 201
            replayed = await http.post("/v1/orders", content=body, headers=headers)
            assert replayed.status_code == 401
            assert "replayed" in replayed.json()["detail"]
            header = signer.sign("POST", "/v1/orders", body)
            headers["x-netkit-signature"] = header
            tampered = await http.post("/v1/orders", content=b'{"n":2}', headers=headers)
            assert tampered.status_code == 401
            assert "does not match" in tampered.json()["detail"]
