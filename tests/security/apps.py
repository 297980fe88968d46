"""The app the security tests attack and use: REST, gRPC and WebSocket behind one
``Security``, each entry point echoing the principal it was given."""

from __future__ import annotations

from typing import Any

import netkit
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import ServerCall
from netkit.protos.echo.v1 import echo_pb2
from netkit.rest import Response, RestRequest
from netkit.security import (
    DENY,
    PUBLIC,
    AnyOf,
    BearerTokens,
    MutualTLS,
    Policy,
    Principal,
    Security,
    peer_identity,
    require,
)
from netkit.ws import WebSocket

UNARY = "/netkit.echo.v1.Echo/Unary"
CLIENT_STREAM = "/netkit.echo.v1.Echo/ClientStream"
BIDI = "/netkit.echo.v1.Echo/Bidi"

ALICE = Principal("alice", {"orders:read", "orders:write", "echo:call"}, {"admin"}, "bearer")
BOB = Principal("bob", {"orders:read"}, method="bearer")
TOKENS = {"alice-token": ALICE, "bob-token": BOB}
#: The client certificate's name (pki.client_cert) and what it may do.
CERT_NAME = "billing.netkit.test"


def policy() -> Policy:
    return (
        Policy()
        .route("GET", "/healthz", PUBLIC)
        .route("GET", "/v1/orders/{order_id}", "orders:read")
        .route("POST", "/v1/orders", "orders:write")
        .route("*", "/v1/admin", require(roles=["admin"]))
        .grpc("/netkit.echo.v1.Echo/*", "echo:call")
        .grpc(CLIENT_STREAM, require("echo:call", roles=["admin"]))
        .grpc(BIDI, DENY)
        .websocket("/v1/public", PUBLIC)
        .topic("orders.>", subscribe="orders:read", publish="orders:write")
        .topic("orders.secret.*", subscribe=require(roles=["admin"]))
    )


def security() -> Security:
    authenticator = AnyOf(
        BearerTokens(TOKENS), MutualTLS(scopes={CERT_NAME: ["orders:read", "echo:call"]})
    )
    return Security(authenticator, policy())


class WhoAmIEcho(EchoService):
    """Echo, but the reply to a unary call names the caller."""

    async def Unary(self, request: echo_pb2.EchoRequest, call: ServerCall) -> echo_pb2.EchoResponse:
        if request.payload == b"whoami":
            return echo_pb2.EchoResponse(payload=str(call.principal).encode())
        return await super().Unary(request, call)


async def whoami(request: RestRequest[Any]) -> dict[str, Any]:
    peer = peer_identity(request.stream)
    principal = request.principal
    return {
        "principal": principal.id if principal is not None else None,
        "method": principal.method if principal is not None else None,
        "peer": peer.name if peer is not None else None,
    }


async def get_order(request: RestRequest[Any]) -> dict[str, Any]:
    return {"id": request.params["order_id"], "by": request.principal.id}


async def create_order(request: RestRequest[Any]) -> Response:
    return Response({"created": True, "by": request.principal.id}, status=201)


async def echo_header(request: RestRequest[Any]) -> Response:
    """Echoes a query value into a response header: the header-injection target."""
    return Response({"ok": True}, headers=[("x-echo", request.query_value("v") or "")])


async def ws_whoami(ws: WebSocket) -> None:
    await ws.send(f"hello {ws.principal}")
    async for _ in ws:
        pass


def make_app(sec: Security | None = None) -> netkit.App:
    sec = sec if sec is not None else security()
    app = netkit.App()
    app.rest.route("GET", "/healthz", whoami)
    app.rest.route("GET", "/v1/whoami", whoami)
    app.rest.route("GET", "/v1/orders/{order_id}", get_order)
    app.rest.route("POST", "/v1/orders", create_order, body=dict[str, Any], status=201)
    app.rest.route("GET", "/v1/admin", whoami)
    app.rest.route("GET", "/v1/echo-header", echo_header)
    app.grpc.add_service(WhoAmIEcho())
    app.ws.endpoint("/v1/ws/whoami", ws_whoami, authenticate=sec.websocket)
    app.ws.endpoint("/v1/public", ws_whoami, authenticate=sec.websocket)
    app.ws.pubsub("/v1/events", authenticate=sec.websocket, authorize=sec.authorize_topic)
    sec.install(app)
    return app
