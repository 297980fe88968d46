"""WebSocket: netkit against trio-websocket and websockets, in one run, one client.

Each server (benchmarks/apps/ws_servers.py) runs in its own subprocess, pinned to CPU 0
when ``taskset`` exists; the client — the ``websockets`` library's synchronous client
(C-accelerated framing), the same for every server — runs here:

* echo round-trips/s: one connection, 32-byte text messages, one at a time;
* echo MB/s: one connection, 64 KiB binary messages, one at a time (bytes sent + received);
* fan-out (netkit only, the peers have no hub): 1,000 subscriber connections on
  ``/events`` (plain sockets, frames written by hand to keep the client cheap), one
  publish, time until the last subscriber has read its message.

Usage::

    .venv/bin/python benchmarks/ws_run.py [--duration 5] [--only netkit,websockets]
                                          [--json out.json]

A shared machine makes absolute numbers noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

from _harness import can_pin, free_port, pinned, stop
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
SERVERS = ["netkit", "trio-websocket", "websockets"]


def start(impl: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = pinned(
        [sys.executable, str(HERE / "apps" / "ws_servers.py"), impl, str(port)],
        0 if can_pin() else None,
    )
    proc = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{impl} did not start")


def echo_rate(port: int, size: int, duration: float) -> tuple[float, float]:
    """(round trips per second, MB/s both ways) on one connection."""
    message: str | bytes = "x" * size if size <= 1024 else os.urandom(size)
    with connect(f"ws://127.0.0.1:{port}/echo", compression=None, max_size=None) as ws:
        for _ in range(50):  # warm up
            ws.send(message)
            ws.recv()
        count = 0
        start = time.perf_counter()
        end = start + duration
        while time.perf_counter() < end:
            for _ in range(20):
                ws.send(message)
                ws.recv()
            count += 20
        elapsed = time.perf_counter() - start
    return count / elapsed, 2 * count * size / elapsed / 1e6


def _frame(text: str) -> bytes:
    """A masked (mask 0) client text frame."""
    data = text.encode()
    n = len(data)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0xFE]) + n.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + data


def _subscriber(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    sock.sendall(_frame('{"v":1,"type":"subscribe","id":1,"topic":"bench.fanout"}'))
    while b'"ack"' not in buf:
        buf += sock.recv(4096)
    sock.setblocking(False)
    return sock


def fan_out(port: int, subscribers: int) -> float:
    """Seconds from sending one publish until every subscriber has read its message."""
    socks = [_subscriber(port) for _ in range(subscribers)]
    try:
        selector = selectors.DefaultSelector()
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        with connect(f"ws://127.0.0.1:{port}/events", compression=None) as publisher:
            waiting = set(socks)
            start = time.perf_counter()
            publisher.send('{"v":1,"type":"publish","id":2,"topic":"bench.fanout","data":"x"}')
            got: dict[socket.socket, bytes] = {}
            while waiting:
                for key, _ in selector.select(timeout=10):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    got[sock] = got.get(sock, b"") + sock.recv(65536)
                    if b'"message"' in got[sock]:
                        waiting.discard(sock)
                        selector.unregister(sock)
            return time.perf_counter() - start
    finally:
        for sock in socks:
            sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    report: dict[str, dict[str, float]] = {}
    for impl in args.only.split(","):
        proc, port = start(impl)
        try:
            rtt, _ = echo_rate(port, 32, args.duration)
            _, mbps = echo_rate(port, 64 * 1024, args.duration)
            row = {"round_trips_per_s": round(rtt), "mb_per_s_64k": round(mbps, 1)}
            if impl == "netkit":
                row["fanout_ms"] = round(fan_out(port, args.subscribers) * 1000, 1)
            report[impl] = row
            print(f"{impl:15} {row}", flush=True)
        finally:
            stop(proc)
    if "websockets" in report and "netkit" in report:
        ref, us = report["websockets"], report["netkit"]
        rtt_ratio = us["round_trips_per_s"] / ref["round_trips_per_s"]
        mbps_ratio = us["mb_per_s_64k"] / ref["mb_per_s_64k"]
        print(f"netkit / websockets: round trips x{rtt_ratio:.2f}, MB/s x{mbps_ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
