"""WebSocket against peers we did not write: websockets (its trio client) and
trio-websocket as clients, over HTTP/1.1, with and without permessage-deflate; h2 as an
RFC 8441 client; bad input from real clients. Every server runs on 127.0.0.1:0."""

from __future__ import annotations

import json

import h2.events
import pytest
import trio
import trio_websocket
import websockets.exceptions
from websockets.trio.client import connect

import netkit
from netkit.ws import WebSocketConfig
from tests.helpers import RawH2, running_server
from tests.ws.apps import make_app

pytestmark = pytest.mark.interop


def ws_url(server: netkit.Server, path: str = "/echo") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_websockets_client_echo(compression: str | None) -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with connect(ws_url(server), compression=compression) as ws:
                negotiated = ws.response.headers.get("sec-websocket-extensions") or ""
                assert ("permessage-deflate" in negotiated) == (compression is not None)
                for message in ["hello", "é" * 1000, b"\x00\xff" * 40000, "x" * 300_000]:
                    await ws.send(message)
                    assert await ws.recv() == message
                # Fragmented by the client: one message out of several frames.
                await ws.send(["part one, ", "part two"])
                assert await ws.recv() == "part one, part two"
            assert ws.close_code == 1000


async def test_trio_websocket_client_echo() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with trio_websocket.open_websocket_url(ws_url(server)) as ws:
                for n in range(50):
                    await ws.send_message(f"message {n}")
                    assert await ws.get_message() == f"message {n}"
                await ws.send_message(b"\x01" * 200_000)
                assert await ws.get_message() == b"\x01" * 200_000
                await ws.ping(b"are you there")


async def test_many_clients_share_the_server() -> None:
    async with running_server(make_app()) as server:

        async def one(n: int) -> None:
            async with connect(ws_url(server)) as ws:
                for i in range(20):
                    await ws.send(f"{n}:{i}")
                    assert await ws.recv() == f"{n}:{i}"

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for n in range(20):
                    nursery.start_soon(one, n)


# -- authentication before the upgrade ------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 403),
        ({"Authorization": "Bearer mallory-token"}, 403),
    ],
)
async def test_refused_upgrade_is_a_real_http_response(
    headers: dict[str, str], status: int
) -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with connect(ws_url(server, "/me"), additional_headers=headers):
                    pass
            assert info.value.response.status_code == status
            body = json.loads(info.value.response.body)
            assert body["status"] == status
            # The server still serves everyone else.
            async with connect(
                ws_url(server, "/me"), additional_headers={"Authorization": "Bearer alice-token"}
            ) as ws:
                assert await ws.recv() == "hello alice"


async def test_authenticator_sees_query_and_cookies() -> None:
    async with (
        running_server(make_app()) as server,
        trio_websocket.open_websocket_url(ws_url(server, "/me?token=bob-token")) as ws,
    ):
        assert await ws.get_message() == "hello bob"
    async with (
        running_server(make_app()) as server,
        trio_websocket.open_websocket_url(
            ws_url(server, "/me"), extra_headers=[(b"cookie", b"theme=dark; session=alice-token")]
        ) as ws,
    ):
        assert await ws.get_message() == "hello alice"


# -- limits and bad input from real clients ---------------------------------------------
async def test_oversized_message_closes_1009_and_others_are_served() -> None:
    config = WebSocketConfig(max_message_size=10_000)
    async with running_server(make_app(config)) as server:
        with trio.fail_after(10):
            async with connect(ws_url(server), compression=None, max_size=None) as bystander:
                async with connect(ws_url(server), compression=None) as ws:
                    await ws.send("x" * 10_000)
                    assert await ws.recv() == "x" * 10_000
                    await ws.send("x" * 10_001)
                    with pytest.raises(websockets.exceptions.ConnectionClosedError):
                        await ws.recv()
                assert ws.close_code == 1009
                await bystander.send("still here")
                assert await bystander.recv() == "still here"


async def test_deflate_bomb_is_bounded_by_the_decompressed_size() -> None:
    # 2 MB of zeros compress to about 2 KB: the inflated size is what counts.
    config = WebSocketConfig(max_message_size=100_000, max_frame_size=100_000)
    async with running_server(make_app(config)) as server:
        with trio.fail_after(10):
            async with connect(ws_url(server), compression="deflate") as ws:
                await ws.send(b"\x00" * 100_000)
                assert await ws.recv() == b"\x00" * 100_000
                await ws.send(b"\x00" * 2_000_000)
                with pytest.raises(websockets.exceptions.ConnectionClosedError):
                    await ws.recv()
            assert ws.close_code == 1009


async def test_garbage_after_the_handshake_is_a_protocol_error() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with trio_websocket.open_websocket_url(ws_url(server)) as ws:
                # Raw bytes straight onto the socket: an unmasked frame with a bad opcode.
                await ws._stream.send_all(b"\x8b\x00" + b"garbage" * 10)
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
            assert info.value.reason.code == 1002
            async with connect(ws_url(server)) as other:
                await other.send("fine")
                assert await other.recv() == "fine"


async def test_invalid_utf8_text_closes_1007() -> None:
    async with running_server(make_app()) as server:
        with trio.fail_after(10):
            async with trio_websocket.open_websocket_url(ws_url(server)) as ws:
                # A masked text frame (mask 0) whose payload is not UTF-8.
                await ws._stream.send_all(b"\x81\x82\x00\x00\x00\x00\xc3\x28")
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
            assert info.value.reason.code == 1007


async def test_handshake_without_key_is_400() -> None:
    async with running_server(make_app()) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(
                b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            with trio.fail_after(5):
                head = await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 400 ")
            assert b"Sec-WebSocket-Key" in head
            # Same connection, next request: the connection is still usable.
            await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.fail_after(5):
                head = await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 200 ")


async def test_plain_get_on_a_websocket_path_is_426() -> None:
    async with running_server(make_app()) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.fail_after(5):
                head = await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 426 ")
            assert b"upgrade: websocket" in head.lower()


# -- RFC 8441: WebSocket over HTTP/2 with h2 as the client -------------------------------
def _connect_headers(path: str = "/echo", **extra: str) -> list[tuple[str, str]]:
    return [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("sec-websocket-version", "13"),
        *extra.items(),
    ]


async def test_rfc8441_over_h2_alongside_ordinary_requests() -> None:
    import wsproto.frame_protocol as fp

    async with running_server(make_app()) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            settings = await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            assert (
                settings.changed_settings[
                    h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
                ].new_value
                == 1
            )
            # Two WebSocket sessions and a plain GET on one connection.
            sids = []
            for _ in range(2):
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, _connect_headers())
                sids.append(sid)
            await client.flush()
            for sid in sids:
                response = await client.until(
                    lambda e, sid=sid: (
                        isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
                    )
                )
                assert dict(response.headers)[b":status"] == b"200"
            status, body = await client.get("/hello")
            assert (status, json.loads(body)) == (200, {"message": "hello, world"})
            protos = {sid: fp.FrameProtocol(client=True, extensions=[]) for sid in sids}
            for sid in sids:
                client.conn.send_data(sid, bytes(protos[sid].send_data(f"over h2 on {sid}")))
            await client.flush()
            for sid in sids:
                got: list[str] = []
                seen = 0
                while not got:
                    for event in client.events[seen:]:
                        if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                            protos[sid].receive_bytes(event.data)
                            got += [f.payload for f in protos[sid].received_frames()]
                    seen = len(client.events)
                    if not got:
                        await client.receive()
                assert got == [f"over h2 on {sid}"]
            # Closing one session: close frames both ways, then END_STREAM from the server.
            client.conn.send_data(sids[0], bytes(protos[sids[0]].close(1000, "bye")))
            await client.flush()
            await client.until(
                lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sids[0]
            )


async def test_rfc8441_refused_when_not_advertised() -> None:
    async def plain(stream: netkit.HTTPStream) -> None:
        await stream.respond(200, body=b"not a websocket")

    async with running_server(plain) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            settings = await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
            changed = settings.changed_settings.get(code)
            assert changed is None or changed.new_value == 0
            # h2 (our client) refuses to send :protocol unless advertised: bypass its check.
            client.conn.remote_settings.enable_connect_protocol = 1
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, _connect_headers())
            await client.flush()
            reset = await client.until(lambda e: isinstance(e, h2.events.StreamReset))
            assert reset.stream_id == sid
            assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            status, _ = await client.get("/")
            assert status == 200


@pytest.mark.parametrize(("token", "status"), [(None, b"401"), ("mallory-token", b"403")])
async def test_rfc8441_refused_auth_answers_the_connect_stream(
    token: str | None, status: bytes
) -> None:
    async with running_server(make_app()) as server, RawH2.connect(server) as client:
        with trio.fail_after(10):
            await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            extra = {"authorization": f"Bearer {token}"} if token else {}
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, _connect_headers("/me", **extra))
            await client.flush()
            response = await client.until(
                lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid
            )
            assert dict(response.headers)[b":status"] == status
            await client.until(
                lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sid
            )
