"""Benchmark floor: the least a trio + h2 server can do to answer ``GET /hello`` over h2c.

HTTP/2 over cleartext with prior knowledge only (no ``Upgrade: h2c``, no TLS).
One task per connection feeds received bytes to an ``h2.connection.H2Connection``
and answers each ``RequestReceived`` inline: HEADERS, then DATA with END_STREAM.
Received DATA is acknowledged at once so the peer's flow-control window never
closes, and whatever h2 has queued is written after every receive.  If the
client's window is too small for the body (it never is for h2load), the rest
waits for a WINDOW_UPDATE.

Usage: ``python benchmarks/floors/trio_h2.py --host 127.0.0.1 --port 8000``
"""

from __future__ import annotations

import argparse
import contextlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio

BODY = b'{"message": "hello, world"}'
NOT_FOUND = b'{"error": "not found"}'
MAX_RECEIVE = 64 * 1024
H2_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None)


class _Connection:
    def __init__(self) -> None:
        self.h2 = h2.connection.H2Connection(config=H2_CONFIG)
        self.pending: dict[int, bytes] = {}  # stream id -> body bytes not yet sent

    def request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if stream_id is None:
            return
        headers = dict(event.headers or [])
        method = headers.get(b":method")
        path = headers.get(b":path")
        if method in (b"GET", b"HEAD") and path == b"/hello":
            status, body = b"200", BODY
        else:
            status, body = b"404", NOT_FOUND
        if method == b"HEAD":
            body = b""
        self.h2.send_headers(
            stream_id,
            [
                (b":status", status),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            end_stream=not body,
        )
        if body:
            self.pending[stream_id] = body
            self.flush(stream_id)

    def flush(self, stream_id: int) -> None:
        """Send as much of a stream's pending body as flow control allows."""
        body = self.pending.pop(stream_id, b"")
        while body:
            try:
                window = self.h2.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                return  # reset by the peer meanwhile: drop the body
            size = min(window, self.h2.max_outbound_frame_size, len(body))
            if size <= 0:
                self.pending[stream_id] = body  # wait for a WINDOW_UPDATE
                return
            self.h2.send_data(stream_id, body[:size], end_stream=size == len(body))
            body = body[size:]

    def handle(self, event: h2.events.Event) -> bool:
        """React to one event; False once the connection is finished."""
        if isinstance(event, h2.events.RequestReceived):
            self.request(event)
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id is not None and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            targets = list(self.pending) if not event.stream_id else [event.stream_id]
            for stream_id in targets:
                self.flush(stream_id)
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id is not None:
                self.pending.pop(event.stream_id, None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            return False
        return True


async def handle(stream: trio.SocketStream) -> None:
    conn = _Connection()
    try:
        conn.h2.initiate_connection()
        await stream.send_all(conn.h2.data_to_send())
        alive = True
        while alive:
            data = await stream.receive_some(MAX_RECEIVE)
            if not data:
                return
            try:
                for event in conn.h2.receive_data(data):
                    # After the peer's GOAWAY h2 refuses to send; the rest is moot.
                    alive = conn.handle(event)
                    if not alive:
                        break
            except h2.exceptions.ProtocolError:
                alive = False  # h2 has queued a GOAWAY for a peer error; send it, then close
            out = conn.h2.data_to_send()
            if out:
                await stream.send_all(out)
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
