"""An authenticator used on its own as a WebSocket endpoint's ``authenticate=``."""

from __future__ import annotations

import pytest
import trio
import websockets.exceptions
from websockets.trio.client import connect

import netkit
from netkit.security import BearerTokens, Principal
from netkit.ws import WebSocket
from tests.helpers import running_server

BOB = Principal("bob", {"orders:read"}, method="bearer")


async def whoami(ws: WebSocket) -> None:
    await ws.send(f"hello {ws.principal}")
    async for _ in ws:
        pass


def make_app() -> netkit.App:
    app = netkit.App()
    app.ws.endpoint("/ws", whoami, authenticate=BearerTokens({"bob-token": BOB}))
    return app


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="netkit"'),
        (
            {"authorization": "Bearer forged"},
            'Bearer realm="netkit", error="invalid_token", '
            'error_description="the bearer token is not valid"',
        ),
    ],
)
async def test_bearer_tokens_as_a_websocket_authenticator(
    headers: dict[str, str], challenge: str
) -> None:
    async with running_server(make_app()) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        with trio.fail_after(10):
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with connect(url, additional_headers=headers):
                    pass
            response = info.value.response
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == challenge
            async with connect(url, additional_headers={"authorization": "Bearer bob-token"}) as ws:
                assert await ws.recv() == "hello bob"
