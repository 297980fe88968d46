"""Benchmark floor: the bare h2 work of answering unary gRPC calls (no sockets, no loop).

``grpc_instructions.py`` counts the instructions a gRPC server spends per unary call.
Part of that is h2 itself: parsing the client's frames, HPACK, stream state, flow
control, serialising the answer.  Every Python server here is built on h2 (purerpc on
h2 3, the others on h2 4) except grpcio, so this floor says how much of a server's
count is h2's and how much is the server's own.  It has no event loop and no sockets,
so the kernel and I/O costs are not in it either: it is the least any h2-based server
can do, not a server one could run.

Two steps, so that only the server's side is measured:

* ``record``: an h2 client connection, set up as h2load sets its own (no server push,
  a 2^30-1 stream window, the same request headers, ``content-length`` included),
  makes ``--calls`` unary calls, ``--batch`` streams at a time (h2load's ``-m``), to a
  throwaway server connection.  The bytes the client produces at each step are saved
  as one *blob*; the server's answers are fed back to the client, so its
  acknowledgements land in the next blob, as they would on the wire.
* ``replay``: a fresh server connection receives every blob in turn (or, with
  ``--idle``, none) and answers each call as a gRPC server does: HEADERS (200,
  ``application/grpc``), one DATA frame with the response message, trailers with
  ``grpc-status: 0``.  What it would send after each blob is taken from h2 (as a
  server writes after each read) and dropped.  It prints one JSON line: calls
  answered and DATA bytes sent, so the caller can check that every call was answered.

Under callgrind, (replay of all blobs - replay with ``--idle``) / calls is the h2 cost
of one call; the file reading, imports and start-up cancel.

The server connection is configured as netkit's and grpclib's are: headers stay bytes
and h2's header validation and normalisation are off (both servers check requests
themselves, or not at all).

Usage::

    python benchmarks/floors/h2_grpc_unary.py record --calls 3000 \
        --request REQ --response RESP --out REC
    python benchmarks/floors/h2_grpc_unary.py replay --recording REC --response RESP \
        [--idle] [--netkit]

``REQ`` and ``RESP`` hold one framed request and response message (5-byte gRPC prefix
and the protobuf bytes); the benchmark writes them from netkit's ``echo_pb2``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

PATH = b"/netkit.echo.v1.Echo/Unary"
RESPONSE_HEADERS = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", b"identity,gzip,deflate"),
]
TRAILERS = [(b"grpc-status", b"0")]
# Every header check and normalisation off: h2's four ``*_headers`` switches.
_CHECKS = ("validate_inbound", "normalize_inbound", "validate_outbound", "normalize_outbound")
_OFF: dict[str, Any] = {f"{name}_headers": False for name in _CHECKS}
SERVER_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None, **_OFF)
CLIENT_WINDOW = 2**30 - 1  # h2load's default -w 30 / -W 30


class Answerer:
    """A server connection answering every unary call once its request has ended.

    With ``netkit=True`` the connection is netkit's own ``_ServerProtocol`` (h2 with
    netkit's caching HPACK encoder and decoder) instead of plain h2.
    """

    def __init__(self, response: bytes, *, netkit: bool = False) -> None:
        self.response = response
        self.calls = 0
        self.data_bytes = 0
        self.netkit = netkit
        if netkit:
            from netkit.http import ServerConfig
            from netkit.http._h2 import _ServerProtocol

            self.h2 = _ServerProtocol(ServerConfig())
        else:
            self.h2 = h2.connection.H2Connection(SERVER_CONFIG)
        self.h2.initiate_connection()

    def receive(self, blob: bytes) -> bytes:
        for event in self.h2.receive_data(blob):
            if isinstance(event, h2.events.DataReceived) and event.stream_id:
                length = event.flow_controlled_length
                self.h2.acknowledge_received_data(length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id:
                self.h2.send_headers(event.stream_id, RESPONSE_HEADERS)
                self.h2.send_data(event.stream_id, self.response)
                self.h2.send_headers(event.stream_id, TRAILERS, end_stream=True)
                if self.netkit:
                    self.h2.busy -= 1  # its driver's count of running handlers
                self.calls += 1
                self.data_bytes += len(self.response)
        return self.h2.data_to_send()


def record(calls: int, batch: int, request: bytes, response: bytes) -> list[bytes]:
    """The client's bytes, one blob per step, for ``calls`` unary calls."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.local_settings.update(
        {
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: CLIENT_WINDOW,
        }
    )
    client.initiate_connection()
    client.increment_flow_control_window(CLIENT_WINDOW - 65_535)
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"127.0.0.1"),
        (b":path", PATH),
        (b"user-agent", b"h2load nghttp2/1.52.0"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"content-length", str(len(request)).encode()),
    ]
    server = Answerer(response)
    client.receive_data(server.h2.data_to_send())  # the server's SETTINGS
    blobs: list[bytes] = []
    sent = 0
    while sent < calls:
        for _ in range(min(batch, calls - sent)):
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, headers)
            client.send_data(stream_id, request, end_stream=True)
            sent += 1
        blobs.append(client.data_to_send())
        for event in client.receive_data(server.receive(blobs[-1])):
            if isinstance(event, h2.events.DataReceived) and event.stream_id:
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    tail = client.data_to_send()  # acknowledgements of the last answers
    if tail:
        blobs.append(tail)
    if server.calls != calls:
        raise SystemExit(f"recording: {server.calls} of {calls} calls answered")
    return blobs


def write_blobs(path: Path, blobs: list[bytes]) -> None:
    path.write_bytes(b"".join(len(blob).to_bytes(4, "big") + blob for blob in blobs))


def read_blobs(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        yield data[offset + 4 : offset + 4 + size]
        offset += 4 + size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    rec = steps.add_parser("record", help="save a client's bytes for --calls unary calls")
    rec.add_argument("--calls", type=int, required=True)
    rec.add_argument("--batch", type=int, default=16, help="streams per step (h2load's -m)")
    rec.add_argument("--request", type=Path, required=True, help="one framed request message")
    rec.add_argument("--response", type=Path, required=True, help="one framed response message")
    rec.add_argument("--out", type=Path, required=True)
    rep = steps.add_parser("replay", help="answer the recorded calls on a fresh connection")
    rep.add_argument("--recording", type=Path, required=True)
    rep.add_argument("--response", type=Path, required=True)
    rep.add_argument("--idle", action="store_true", help="read the recording, feed nothing")
    rep.add_argument(
        "--netkit", action="store_true", help="answer with netkit's _ServerProtocol, not plain h2"
    )
    args = parser.parse_args()
    if args.step == "record":
        request, response = args.request.read_bytes(), args.response.read_bytes()
        blobs = record(args.calls, args.batch, request, response)
        write_blobs(args.out, blobs)
        print(json.dumps({"calls": args.calls, "blobs": len(blobs)}))
        return
    blobs = list(read_blobs(args.recording.read_bytes()))
    server = Answerer(args.response.read_bytes(), netkit=args.netkit)
    server.h2.data_to_send()  # its SETTINGS, written once the connection is accepted
    for blob in [] if args.idle else blobs:
        server.receive(blob)
    print(json.dumps({"calls": server.calls, "data_bytes": server.data_bytes, "blobs": len(blobs)}))


if __name__ == "__main__":
    main()
