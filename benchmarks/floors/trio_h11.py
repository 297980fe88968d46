"""Benchmark floor: the least a trio + h11 server can do to answer ``GET /hello``.

No framework, no routing table, no ASGI: one task per connection drives an
``h11.Connection`` directly and writes the canned JSON response inline.  It is
what netkit's HTTP/1.1 path is measured against, so it is kept small but correct:

* keep-alive and pipelining: requests are taken from ``next_event()`` in order and
  the connection is recycled with ``start_next_cycle()`` once both sides are DONE;
* a request body (if any) is drained and discarded;
* protocol errors get a ``400`` when a response can still be sent, then a close.

Usage: ``python benchmarks/floors/trio_h11.py --host 127.0.0.1 --port 8000``
"""

from __future__ import annotations

import argparse
import contextlib

import h11
import trio

BODY = b'{"message": "hello, world"}'
NOT_FOUND = b'{"error": "not found"}'
MAX_RECEIVE = 64 * 1024


def _response_bytes(conn: h11.Connection, status: int, body: bytes, head: bool) -> bytes:
    headers = [("content-type", "application/json")] if body else []
    headers.append(("content-length", str(len(body))))
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    if body and not head:
        out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out


def _answer(conn: h11.Connection, request: h11.Request) -> bytes:
    head = request.method == b"HEAD"
    if request.method in (b"GET", b"HEAD") and request.target == b"/hello":
        return _response_bytes(conn, 200, BODY, head)
    return _response_bytes(conn, 404, NOT_FOUND, head)


async def handle(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    with contextlib.suppress(h11.LocalProtocolError):
                        error = _response_bytes(conn, exc.error_status_hint, b"", head=False)
                        await stream.send_all(error)
                return
            if event is h11.NEED_DATA:
                data = await stream.receive_some(MAX_RECEIVE)
                conn.receive_data(data)  # b"" records EOF; next_event reports it
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return  # PAUSED cannot happen (we answer inline), but never spin on it
            if isinstance(event, h11.Request):
                # Answer at once; a body, if any, is drained by the loop afterwards.
                await stream.send_all(_answer(conn, event))
            # Data and EndOfMessage from the client need no action of their own.
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()  # keep-alive: the next (maybe pipelined) request
            elif conn.our_state is h11.MUST_CLOSE and conn.their_state is not h11.SEND_BODY:
                return  # "Connection: close" or HTTP/1.0: response sent, request read
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def main(host: str, port: int) -> None:
    await trio.serve_tcp(handle, port, host=host)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, args.host, args.port)


if __name__ == "__main__":
    cli()
