"""Apps the WebSocket tests serve: an echo endpoint, an authenticated one, a pub/sub hub."""

from __future__ import annotations

from typing import Any

import netkit
from netkit.ws import HandshakeRefused, UpgradeRequest, WebSocket, WebSocketConfig

TOKENS = {"alice-token": "alice", "bob-token": "bob", "mallory-token": "mallory"}


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def authenticate(request: UpgradeRequest) -> str | None:
    token = request.bearer_token() or request.query.get("token", [None])[0]
    token = token or request.cookies.get("session")
    if token is None:
        return None  # -> 401
    user = TOKENS.get(token)
    if user is None or user == "mallory":
        raise HandshakeRefused(403, "this token may not connect")
    return user


def authorize(principal: Any, action: str, topic: str) -> bool:
    """alice may do anything; bob may subscribe to ``public.>`` patterns only."""
    if principal == "alice":
        return True
    return action == "subscribe" and topic.startswith("public.")


async def whoami(ws: WebSocket) -> None:
    await ws.send(f"hello {ws.principal}")
    async for _ in ws:
        pass


def make_app(config: WebSocketConfig | None = None) -> netkit.App:
    app = netkit.App()
    app.ws.endpoint("/echo", echo, config=config)
    app.ws.endpoint("/me", whoami, authenticate=authenticate, config=config)
    app.ws.pubsub("/events", authenticate=authenticate, authorize=authorize, config=config)
    app.ws.pubsub("/open-events", config=config)

    async def hello(stream: netkit.HTTPStream) -> None:
        await netkit.respond_json(stream, 200, {"message": "hello, world"})

    app.route("GET", "/hello", hello)
    return app
