"""Echo WebSocket servers for benchmarks/ws_run.py: netkit, trio-websocket, websockets.

``python ws_servers.py IMPL PORT``. netkit also serves a pub/sub hub on ``/events``
(for the fan-out run). Each echoes every message back on ``/echo``, compression off
(the clients do not offer it), limits raised to 16 MiB so 64 KiB messages pass.
"""

from __future__ import annotations

import sys

import trio

MAX = 16 * 1024 * 1024


async def netkit_server(port: int) -> None:
    import netkit
    from netkit.ws import WebSocket, WebSocketConfig

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    config = WebSocketConfig(max_message_size=MAX, max_frame_size=MAX, send_queue_size=4096)
    app = netkit.App()
    app.ws.endpoint("/echo", echo, config=config)
    app.ws.pubsub("/events", config=config)
    server_config = netkit.ServerConfig(max_connections=4096, backlog=4096)
    await netkit.serve(app, "127.0.0.1", port, config=server_config)


async def trio_websocket_server(port: int) -> None:
    import trio_websocket

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    await trio_websocket.serve_websocket(handler, "127.0.0.1", port, None, max_message_size=MAX)


def websockets_server(port: int) -> None:
    import asyncio

    from websockets.asyncio.server import serve

    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port, max_size=MAX, compression=None) as server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    impl, port = sys.argv[1], int(sys.argv[2])
    if impl == "websockets":
        websockets_server(port)
    else:
        trio.run(netkit_server if impl == "netkit" else trio_websocket_server, port)
