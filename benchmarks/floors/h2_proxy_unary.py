"""Benchmark floor: the h2 work of *relaying* unary gRPC calls, as netkit's proxy does.

``h2_grpc_unary.py`` measures what h2 costs a server per unary call. A proxy does that
and more: for each call it (1) receives the client's request and (3) answers it on its
server-side connection, and (2) sends the request upstream and (4) receives the
backend's answer on its client-side connection. This script counts (1)-(4) with netkit's
own h2 protocol classes (``_ServerProtocol`` and ``_ClientProtocol``: h2 with netkit's
caching HPACK encoder and decoder, h2's header checks off) and nothing else: no
sockets, no trio, no relay logic, no netkit driver. It is the least a proxy built on h2
can spend per call, the way ``balancer_run.py --part instructions`` counts the proxy.

Two steps, so that only the proxy's side is measured:

* ``record``: h2load's side (a plain h2 client, ``--batch`` calls at a time), the proxy
  (netkit's two protocol classes) and a backend (a plain h2 server answering HEADERS,
  one DATA frame, ``grpc-status: 0`` trailers) run in one process; what reaches the
  proxy from the client and from the backend is saved, one blob per step.
* ``replay``: a fresh proxy receives the client's blobs and the backend's blobs in the
  same order and does exactly what it did when recording (the same stream ids, so the
  backend's HPACK blocks decode the same). With ``--idle`` it feeds nothing.

Under callgrind, (replay - replay --idle) / calls is the proxy's h2 work per call.

Usage::

    python benchmarks/floors/h2_proxy_unary.py record --calls 3000 --out REC
    python benchmarks/floors/h2_proxy_unary.py replay --recording REC [--idle]
"""

from __future__ import annotations

import argparse
import json
import pickle
import secrets
import sys
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from hpack import NeverIndexedHeaderTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from h2_grpc_unary import CLIENT_WINDOW, PATH, Answerer

from netkit.http import ClientConfig, ServerConfig
from netkit.http._client import _ClientProtocol
from netkit.http._h2 import _ServerProtocol
from netkit.protos.echo.v1 import echo_pb2

REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1"),
    (b":path", PATH),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
#: What the proxy adds going upstream (netkit.balance._forwarding), the request id new
#: on every call and never indexed (``_hpack``).
FORWARDING = [
    (b"x-forwarded-for", b"127.0.0.1"),
    (b"x-forwarded-proto", b"http"),
    (b"x-forwarded-host", b"127.0.0.1"),
    (b"forwarded", b"for=127.0.0.1;host=127.0.0.1;proto=http"),
    (b"via", b"2 netkit"),
]


def _framed(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


class Proxy:
    """netkit's two h2 protocol objects and the relay between them, nothing more."""

    def __init__(self) -> None:
        self.down = _ServerProtocol(ServerConfig())
        self.down.initiate_connection()
        self.up = _ClientProtocol(ClientConfig(max_concurrent_streams=1000))
        self.up.initiate_connection()
        self.pending: dict[int, bytearray] = {}
        self.upstream_of: dict[int, int] = {}  # upstream stream id -> downstream one
        self.answers: dict[int, list[Any]] = {}
        self.relayed = 0

    def from_client(self, blob: bytes) -> tuple[bytes, bytes]:
        """Feed what the client sent; returns what goes to the client and upstream."""
        for event in self.down.receive_data(blob):
            if isinstance(event, h2.events.RequestReceived):
                self.pending[event.stream_id] = bytearray()
            elif isinstance(event, h2.events.DataReceived):
                self.pending[event.stream_id] += event.data
                self.down.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                body = bytes(self.pending.pop(event.stream_id))
                sid = self.up.get_next_available_stream_id()
                head = [*REQUEST_HEADERS, *FORWARDING]
                # Never indexed, as netkit's header rules mark it (_h2_headers): a value new
                # on every call would otherwise change the HPACK table on every call.
                head.append(
                    NeverIndexedHeaderTuple(b"x-request-id", secrets.token_hex(16).encode())
                )
                self.up.send_headers(sid, head)
                self.up.send_data(sid, body, end_stream=True)
                self.upstream_of[sid] = event.stream_id
        return self.down.data_to_send(), self.up.data_to_send()

    def from_backend(self, blob: bytes) -> tuple[bytes, bytes]:
        """Feed what the backend sent; returns what goes to the client and upstream."""
        for event in self.up.receive_data(blob):
            sid = getattr(event, "stream_id", 0)
            if isinstance(event, h2.events.ResponseReceived):
                self.answers[sid] = [event.headers, bytearray(), None]
            elif isinstance(event, h2.events.DataReceived):
                self.answers[sid][1] += event.data
                self.up.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.TrailersReceived):
                self.answers[sid][2] = event.headers
            elif isinstance(event, h2.events.StreamEnded):
                head, body, trailers = self.answers.pop(sid)
                down = self.upstream_of.pop(sid)
                self.down.send_headers(down, [*head, (b"via", b"2 netkit")])
                self.down.send_data(down, bytes(body))
                self.down.send_headers(down, trailers, end_stream=True)
                self.down.busy -= 1  # the driver's count of running handlers
                self.relayed += 1
        return self.down.data_to_send(), self.up.data_to_send()


def record(calls: int, batch: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """The blobs that reach the proxy: the set-up ones, then those of the calls."""
    request = _framed(echo_pb2.EchoRequest(payload=bytes(range(16))).SerializeToString())
    response = _framed(echo_pb2.EchoResponse(payload=bytes(range(16))).SerializeToString())
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.local_settings.update(
        {
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: CLIENT_WINDOW,
        }
    )
    client.initiate_connection()
    client.increment_flow_control_window(CLIENT_WINDOW - 65_535)
    backend = Answerer(response)
    proxy = Proxy()
    steps: list[tuple[str, bytes]] = []

    def feed(source: str, blob: bytes) -> None:
        steps.append((source, blob))
        to_client, to_backend = (proxy.from_client if source == "client" else proxy.from_backend)(
            blob
        )
        for event in client.receive_data(to_client):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        answer = backend.receive(to_backend) if to_backend else b""
        if answer:
            feed("backend", answer)
        if client_out := client.data_to_send():
            feed("client", client_out)

    # Connection set-up: prefaces and SETTINGS both ways.
    client.receive_data(proxy.down.data_to_send())
    backend.receive(proxy.up.data_to_send())
    feed("backend", backend.h2.data_to_send())
    feed("client", client.data_to_send())
    set_up = len(steps)
    sent = 0
    head = [*REQUEST_HEADERS, (b"content-length", str(len(request)).encode())]
    while sent < calls:
        for _ in range(min(batch, calls - sent)):
            sid = client.get_next_available_stream_id()
            client.send_headers(sid, head)
            client.send_data(sid, request, end_stream=True)
            sent += 1
        feed("client", client.data_to_send())
    if proxy.relayed != calls:
        raise SystemExit(f"recording: {proxy.relayed} of {calls} calls relayed")
    return steps[:set_up], steps[set_up:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps_ = parser.add_subparsers(dest="step", required=True)
    rec = steps_.add_parser("record")
    rec.add_argument("--calls", type=int, required=True)
    rec.add_argument("--batch", type=int, default=16, help="streams per step (h2load's -m)")
    rec.add_argument("--out", type=Path, required=True)
    rep = steps_.add_parser("replay")
    rep.add_argument("--recording", type=Path, required=True)
    rep.add_argument("--idle", action="store_true", help="read the recording, feed nothing")
    args = parser.parse_args()
    if args.step == "record":
        set_up, calls = record(args.calls, args.batch)
        args.out.write_bytes(pickle.dumps((set_up, calls)))
        print(json.dumps({"calls": args.calls, "steps": len(calls)}))
        return
    set_up, calls = pickle.loads(args.recording.read_bytes())
    proxy = Proxy()
    for source, blob in [*set_up, *([] if args.idle else calls)]:
        (proxy.from_client if source == "client" else proxy.from_backend)(blob)
    print(json.dumps({"relayed": proxy.relayed, "steps": len(calls)}))


if __name__ == "__main__":
    main()
