"""A minimal ASGI 3 application for the benchmark: ``GET /hello`` answers JSON.

Served by hypercorn (trio worker) and uvicorn (h11, asyncio loop) as
``asgi_hello:app`` with ``benchmarks/apps`` on ``PYTHONPATH``.  It does the same
work as the netkit example and the floors: a fixed JSON body with
``content-type: application/json`` and an explicit ``content-length``.
Lifespan events are acknowledged so neither server logs a lifespan warning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"message": "hello, world"}'
NOT_FOUND = b'{"error": "not found"}'


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    method = scope["method"]
    if method in ("GET", "HEAD") and scope["path"] == "/hello":
        status, body = 200, BODY
    else:
        status, body = 404, NOT_FOUND
    await send({"type": "http.response.start", "status": status, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
