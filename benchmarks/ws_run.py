"""WebSocket: netkit against trio-websocket and websockets, in one run, one client.

Each server (benchmarks/apps/ws_servers.py) runs in its own subprocess, pinned to the
server CPU when ``taskset`` exists; the client — the ``websockets`` library's synchronous
client (C-accelerated framing), the same for every server — runs here, on the client CPU:

* echo round-trips/s: one connection, 32-byte text messages, one at a time;
* echo MB/s: one connection, 64 KiB binary messages, one at a time (bytes sent + received);
* server CPU per message (from /proc/PID/stat, user + system): what the machine's other
  load moves least, printed beside each rate;
* fan-out (netkit only, the peers have no hub): 1,000 subscriber connections on
  ``/events`` (plain sockets, frames written by hand to keep the client cheap), one
  publish, time until the last subscriber has read its message; the median of five
  publishes.

All servers run at once and are measured in ``--rounds`` interleaved rounds (the order
rotating), each server's median kept, so that a burst of load elsewhere on the machine
hits every server rather than the one measured at that moment.

Usage::

    .venv/bin/python benchmarks/ws_run.py [--duration 12] [--rounds 6]
                                          [--only netkit,websockets] [--json out.json]

``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: netkit and
websockets, one round of one second, 100 subscribers).

A shared machine makes absolute numbers noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import (
    CLIENT_CPU,
    SERVER_CPU,
    can_pin,
    free_port,
    install_signal_handlers,
    parse_args,
    pinned,
    stop,
)
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
SERVERS = ["netkit", "trio-websocket", "websockets"]


def start(impl: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = pinned(
        [sys.executable, str(HERE / "apps" / "ws_servers.py"), impl, str(port)],
        SERVER_CPU if can_pin() else None,
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo_rate(port: int, pid: int, size: int, duration: float) -> tuple[float, float, float]:
    """(round trips per second, MB/s both ways, server CPU microseconds per round trip)."""
    message: str | bytes = "x" * size if size <= 1024 else os.urandom(size)
    with connect(f"ws://127.0.0.1:{port}/echo", compression=None, max_size=None) as ws:
        for _ in range(50):  # warm up
            ws.send(message)
            ws.recv()
        count = 0
        cpu = cpu_seconds(pid)
        start = time.perf_counter()
        end = start + duration
        while time.perf_counter() < end:
            for _ in range(20):
                ws.send(message)
                ws.recv()
            count += 20
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(pid) - cpu
    return count / elapsed, 2 * count * size / elapsed / 1e6, cpu / count * 1e6


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


def fan_out(port: int, subscribers: int, publishes: int = 5) -> float:
    """Median seconds from sending one publish until every subscriber has read it."""
    socks = [_subscriber(port) for _ in range(subscribers)]
    try:
        selector = selectors.DefaultSelector()
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        times = []
        with connect(f"ws://127.0.0.1:{port}/events", compression=None) as publisher:
            for n in range(publishes):
                marker = f'"x{n}"'.encode()
                waiting = set(socks)
                got: dict[socket.socket, bytes] = {}
                start = time.perf_counter()
                publisher.send(
                    f'{{"v":1,"type":"publish","id":{n + 2},"topic":"bench.fanout","data":"x{n}"}}'
                )
                while waiting:
                    for key, _ in selector.select(timeout=10):
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        if sock not in waiting:
                            sock.recv(65536)
                            continue
                        got[sock] = got.get(sock, b"") + sock.recv(65536)
                        if marker in got[sock]:
                            waiting.discard(sock)
                times.append(time.perf_counter() - start)
                time.sleep(0.2)  # let the publisher's ack and the writers settle
        return statistics.median(times)
    finally:
        for sock in socks:
            sock.close()


#: ``--quick``: netkit and websockets, one round of one second, 100 fan-out subscribers.
QUICK: dict[str, object] = {
    "only": "netkit,websockets",
    "duration": 1.0,
    "rounds": 1,
    "subscribers": 100,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per test")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    return parse_args(parser, argv, QUICK)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    install_signal_handlers()  # SIGTERM (netkit bench's deadline) stops the servers too
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CPU})
    impls = args.only.split(",")
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    samples: dict[str, dict[str, list[float]]] = {impl: {} for impl in impls}
    try:
        for impl in impls:
            servers[impl] = start(impl)
        slice_ = args.duration / args.rounds
        for r in range(args.rounds):
            for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
                proc, port = servers[impl]
                rtt, _, cpu32 = echo_rate(port, proc.pid, 32, slice_)
                _, mbps, cpu64k = echo_rate(port, proc.pid, 64 * 1024, slice_)
                row = {"rtt": rtt, "cpu32": cpu32, "mbps": mbps, "cpu64k": cpu64k}
                for key, value in row.items():
                    samples[impl].setdefault(key, []).append(value)
        report: dict[str, dict[str, float]] = {}
        for impl in impls:
            med = {key: statistics.median(values) for key, values in samples[impl].items()}
            report[impl] = {
                "round_trips_per_s": round(med["rtt"]),
                "server_us_per_round_trip_32": round(med["cpu32"], 1),
                "mb_per_s_64k": round(med["mbps"], 1),
                "server_us_per_round_trip_64k": round(med["cpu64k"], 1),
            }
        if "netkit" in servers:
            _, port = servers["netkit"]
            report["netkit"]["fanout_ms"] = round(fan_out(port, args.subscribers) * 1000, 1)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    for impl, row in report.items():
        print(f"{impl:15} {row}", flush=True)
    for peer in ("websockets", "trio-websocket"):
        if peer in report and "netkit" in report:
            ref, us = report[peer], report["netkit"]
            rtt_ratio = us["round_trips_per_s"] / ref["round_trips_per_s"]
            mbps_ratio = us["mb_per_s_64k"] / ref["mb_per_s_64k"]
            cpu_ratio = (
                ref["server_us_per_round_trip_32"] / us["server_us_per_round_trip_32"],
                ref["server_us_per_round_trip_64k"] / us["server_us_per_round_trip_64k"],
            )
            print(
                f"netkit / {peer}: round trips x{rtt_ratio:.2f}, MB/s x{mbps_ratio:.2f}; "
                f"server CPU per message x{cpu_ratio[0]:.2f} (32 B), x{cpu_ratio[1]:.2f} "
                "(64 KiB) (above 1: netkit uses less)"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
