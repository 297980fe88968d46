"""The pub/sub envelope with real peers: websockets clients against the hub, the netkit
events client against the netkit server and against a trio-websocket server."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio_websocket
from websockets.trio.client import connect

import netkit
from netkit.wire import ws_envelope as env
from netkit.ws import EventsError, HandshakeRefused, connect_events
from tests.helpers import running_server
from tests.ws.apps import make_app

pytestmark = pytest.mark.interop

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


def url(server: netkit.Server, path: str = "/events") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def request(ws: Any, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"v": 1, **fields}))
    reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


async def test_subscribe_publish_and_patterns_with_websockets_clients() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with (
                connect(url(server), additional_headers=ALICE) as alice,
                connect(url(server), additional_headers=BOB) as bob,
            ):
                assert await request(alice, type="subscribe", id=1, topic="orders.created") == {
                    "v": 1,
                    "type": "ack",
                    "id": 1,
                }
                assert (await request(bob, type="subscribe", id="b1", topic="public.>"))[
                    "type"
                ] == "ack"
                denied = await request(bob, type="subscribe", id="b2", topic="orders.*")
                assert (denied["type"], denied["id"], denied["code"]) == (
                    "error",
                    "b2",
                    "forbidden",
                )
                denied = await request(bob, type="publish", id="b3", topic="public.news", data=1)
                assert (denied["code"], denied["id"]) == ("forbidden", "b3")
                # alice publishes: she gets her own message (subscribed), then the ack.
                await alice.send(
                    json.dumps(
                        {
                            "v": 1,
                            "type": "publish",
                            "id": 2,
                            "topic": "orders.created",
                            "data": {"n": 1},
                        }
                    )
                )
                assert json.loads(await alice.recv()) == {
                    "v": 1,
                    "type": "message",
                    "topic": "orders.created",
                    "data": {"n": 1},
                }
                assert json.loads(await alice.recv()) == {"v": 1, "type": "ack", "id": 2}
                assert (await request(alice, type="publish", id=3, topic="public.a.b", data="hi"))[
                    "type"
                ] == "ack"
                assert json.loads(await bob.recv())["data"] == "hi"


@pytest.mark.parametrize(
    ("payload", "code", "id_"),
    [
        ("{not json", "bad_json", None),
        ('{"v":1,"type":"dance","id":7}', "unknown_type", 7),
        ('{"v":1,"type":"subscribe","id":"s"}', "bad_request", "s"),
        ('{"v":1,"type":"subscribe","topic":"a"}', "bad_request", None),
        ('{"v":2,"type":"subscribe","id":1,"topic":"a"}', "unsupported_version", 1),
        ('{"v":1,"type":"publish","id":9,"topic":"a.*"}', "invalid_topic", 9),
        ("[1,2]", "bad_request", None),
    ],
)
async def test_bad_requests_get_errors_and_the_connection_stays_open(
    payload: str, code: str, id_: Any
) -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with connect(url(server, "/open-events")) as ws:
                await ws.send(payload)
                reply = json.loads(await ws.recv())
                assert (reply["type"], reply["code"], reply["id"]) == ("error", code, id_)
                assert (await request(ws, type="subscribe", id=1, topic="a"))["type"] == "ack"


async def test_server_code_publishes_to_websocket_subscribers() -> None:
    app = make_app()

    async def create_order(stream: netkit.HTTPStream) -> None:
        order = json.loads(await stream.read_body())
        app.ws.hub.publish("orders.created", order)
        await netkit.respond_json(stream, 201, order)

    app.route("POST", "/orders", create_order)
    async with running_server(app) as server:
        with trio.fail_after(10):
            async with connect(url(server, "/open-events")) as ws:
                assert (await request(ws, type="subscribe", id=1, topic="orders.*"))[
                    "type"
                ] == "ack"
                import httpx

                async with httpx.AsyncClient() as http:
                    response = await http.post(
                        f"http://127.0.0.1:{server.port}/orders", json={"id": 42}
                    )
                assert response.status_code == 201
                message = json.loads(await ws.recv())
                assert message == {
                    "v": 1,
                    "type": "message",
                    "topic": "orders.created",
                    "data": {"id": 42},
                }


async def test_netkit_client_against_the_netkit_server() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with (
                connect_events(url(server), headers=ALICE.items()) as alice,
                connect_events(url(server), headers=BOB.items()) as bob,
            ):
                await alice.subscribe("orders.>")
                await bob.subscribe("public.*")
                with pytest.raises(EventsError) as info:
                    await bob.subscribe("orders.*")
                assert info.value.code == "forbidden"
                for n in range(5):
                    await alice.publish("orders.eu.created", n)
                await alice.publish("public.news", "hi")
                got = [await alice.receive() for _ in range(5)]
                assert [(m.topic, m.data) for m in got] == [
                    ("orders.eu.created", n) for n in range(5)
                ]
                assert await bob.receive() == env.Message("public.news", "hi")


async def test_netkit_client_refused_handshake_raises() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10), pytest.raises(HandshakeRefused) as info:
            async with connect_events(url(server)):
                pass
        assert info.value.status == 401


async def fake_events_server(request: trio_websocket.WebSocketRequest, log: list[Any]) -> None:
    """A tiny envelope server written on trio-websocket (not netkit): acks everything,
    echoes publishes as messages, and drops the first connection after one publish."""
    ws = await request.accept()
    log.append(("connect", dict(request.headers).get(b"authorization")))
    try:
        while True:
            obj = json.loads(await ws.get_message())
            log.append((obj["type"], obj["topic"]))
            if obj["type"] == "publish":
                await ws.send_message(env.encode_message(obj["topic"], obj["data"]))
            await ws.send_message(env.encode_ack(obj["id"]))
            if obj["type"] == "publish" and sum(1 for e in log if e[0] == "connect") == 1:
                await ws.aclose(1012, "restarting")
                return
    except trio_websocket.ConnectionClosed:
        return


async def test_netkit_client_reconnects_and_resubscribes_to_a_trio_websocket_server() -> None:
    log: list[Any] = []

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        await fake_events_server(request, log)

    async with trio.open_nursery() as nursery:
        ws_server = await nursery.start(
            trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None
        )
        port = ws_server.port
        with trio.fail_after(10):
            async with connect_events(
                f"ws://127.0.0.1:{port}/",
                headers=[("authorization", "Bearer t")],
                backoff_initial=0.01,
            ) as client:
                await client.subscribe("a.b")
                await client.publish("a.b", 1)
                assert await client.receive() == env.Message("a.b", 1)
                # The server dropped us: the client reconnects and subscribes again.
                while client.connections < 2:  # noqa: ASYNC110 - polling a counter is clearest
                    await trio.sleep(0.01)
                await client.publish("a.b", 2)
                assert await client.receive() == env.Message("a.b", 2)
        nursery.cancel_scope.cancel()
    assert log[:3] == [("connect", b"Bearer t"), ("subscribe", "a.b"), ("publish", "a.b")]
    assert log[3:5] == [("connect", b"Bearer t"), ("subscribe", "a.b")]
