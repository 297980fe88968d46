"""Memory cost of an idle keep-alive connection: server RSS growth per open connection.

For each server and protocol, a fresh server process is started (pinned to CPU 0) and:

1. one request is made on the protocol and a few warm-up connections are opened and
   closed, so one-off allocations (lazy imports, codec tables) are not counted;
2. its RSS is read from /proc/PID/status (VmRSS, summed over the process group);
3. N connections (default 1000) are opened from this process with plain sockets:
   * HTTP/1.1: one complete ``GET /hello`` is sent and its response read, then idle;
   * h2c: the client preface and an empty SETTINGS frame are sent; the server's
     SETTINGS are acknowledged and its ACK of ours awaited, then idle;
4. after ``--settle`` seconds (default 1) RSS is read again and the connections that
   are still open are counted;
5. (RSS_after - RSS_before) / N is reported in KiB per idle connection.

Usage::

    .venv/bin/python benchmarks/idle_memory.py [--servers netkit|all|a,b] [--connections 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness as h
import h11

CONNECT_TIMEOUT = 5.0  # seconds for one connection to be set up (request answered, SETTINGS)
WARMUP_CONNECTIONS = 20
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = 0x4
H2_GOAWAY = 0x7
H2_ACK = 0x1


@dataclass
class IdleResult:
    server: str
    protocol: str
    status: str  # "ok", "n/a", "failed to start", or what went wrong
    command: list[str] | None = None
    connections: int = 0
    alive: int = 0
    open_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    kib_per_connection: float | None = None


# --- clients ---------------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((h.HOST, port), timeout=CONNECT_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_h1(port: int) -> socket.socket:
    """A connection that has carried one ``GET /hello`` and is kept alive."""
    sock = _connect(port)
    try:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=h.PATH, headers=[("host", f"{h.HOST}:{port}")])
        sock.sendall((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        status = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise h.HarnessError("server closed the connection before answering")
        if status != 200:
            raise h.HarnessError(f"GET {h.PATH} answered {status}")
        if conn.their_state is not h11.DONE:
            raise h.HarnessError("server did not keep the connection alive")
        return sock
    except BaseException:
        sock.close()
        raise


def _frame(frame_type: int, flags: int = 0, payload: bytes = b"", stream_id: int = 0) -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([frame_type, flags])
    return header + stream_id.to_bytes(4, "big") + payload


def open_h2c(port: int) -> socket.socket:
    """A connection past the HTTP/2 handshake (SETTINGS exchanged both ways), no streams."""
    sock = _connect(port)
    try:
        sock.sendall(H2_PREFACE + _frame(H2_SETTINGS))
        buffer = b""
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            data = sock.recv(65536)
            if not data:
                raise h.HarnessError("server closed the h2c connection during the handshake")
            buffer += data
            while len(buffer) >= 9:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < 9 + length:
                    break
                frame_type, flags = buffer[3], buffer[4]
                buffer = buffer[9 + length :]
                if frame_type == H2_GOAWAY:
                    raise h.HarnessError("server sent GOAWAY during the handshake")
                if frame_type == H2_SETTINGS and flags & H2_ACK:
                    got_ack = True
                elif frame_type == H2_SETTINGS:
                    got_settings = True
                    sock.sendall(_frame(H2_SETTINGS, H2_ACK))
        return sock
    except BaseException:
        sock.close()
        raise


OPENERS = {h.H1: open_h1, h.H2C: open_h2c}


def count_alive(socks: list[socket.socket]) -> int:
    """Connections the server has not closed (a readable socket with nothing to read)."""
    alive = 0
    for sock in socks:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            alive += 1
            continue
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            continue  # reset
        if data:
            alive += 1  # the server sent something (e.g. a PING) but did not close
    return alive


# --- measuring -------------------------------------------------------------------------


def measure(
    spec: h.ServerSpec, protocol: str, args: argparse.Namespace, logdir: Path
) -> IdleResult:
    opener = OPENERS[protocol]
    print(f"== {spec.name} {protocol}", flush=True)
    try:
        with h.running_server(spec, logdir, idle=True, pin=args.pin) as server:
            result = IdleResult(spec.name, protocol, "ok", command=server.argv)
            problem = h.probe(server.port, protocol)
            if problem is not None:
                result.status = f"probe: {problem}"
                return result
            socks: list[socket.socket] = []
            try:
                for _ in range(WARMUP_CONNECTIONS):
                    opener(server.port).close()
                time.sleep(args.settle)
                result.rss_before_kib = server.rss_kib()
                started = time.monotonic()
                for _ in range(args.connections):
                    socks.append(opener(server.port))
                result.open_seconds = round(time.monotonic() - started, 3)
                time.sleep(args.settle)
                result.rss_after_kib = server.rss_kib()
                result.connections = len(socks)
                result.alive = count_alive(socks)
            except (OSError, h.HarnessError) as exc:
                result.connections = len(socks)
                result.status = f"error after {len(socks)} connections: {exc}"
                print(f"   {result.status}\n{server.log_tail()}", flush=True)
                return result
            finally:
                for sock in socks:
                    with contextlib.suppress(OSError):
                        sock.close()
            if not server.alive():
                result.status = "server exited"
                return result
    except h.HarnessError as exc:
        print(f"   failed to start: {exc}", flush=True)
        return IdleResult(spec.name, protocol, "failed to start")
    growth = result.rss_after_kib - result.rss_before_kib
    result.kib_per_connection = growth / result.connections
    if result.alive < result.connections:
        result.status = f"ok, but only {result.alive} still open"
    print(
        f"   RSS {result.rss_before_kib} -> {result.rss_after_kib} KiB over "
        f"{result.connections} connections ({result.alive} open after {args.settle:g} s): "
        f"{result.kib_per_connection:.1f} KiB each",
        flush=True,
    )
    return result


def render(results: list[IdleResult]) -> str:
    headers = ["server", "protocol", "conns", "alive", "RSS before", "RSS after", "KiB/conn"]
    headers.append("status")
    rows = []
    for r in results:
        if r.kib_per_connection is None:
            rows.append([r.server, r.protocol, "-", "-", "-", "-", "n/a", r.status[:60]])
            continue
        rows.append(
            [
                r.server,
                r.protocol,
                str(r.connections),
                str(r.alive),
                f"{r.rss_before_kib / 1024:.1f} MiB",
                f"{r.rss_after_kib / 1024:.1f} MiB",
                f"{r.kib_per_connection:.1f}",
                r.status,
            ]
        )
    return h.format_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers",
        "--only",
        default="netkit",
        help=f"'all' or comma-separated subset of: {', '.join(h.SERVERS)} (default: netkit)",
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before RSS")
    parser.add_argument("--protocols", default=",".join(h.PROTOCOLS), help="http/1.1,h2c")
    parser.add_argument("--json", type=Path, help="write raw results to this file")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    args = parser.parse_args(argv)
    h.install_signal_handlers()
    if args.connections < 1:
        parser.error("--connections must be >= 1")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not set(protocols) <= set(h.PROTOCOLS):
        parser.error(f"--protocols: choose from {', '.join(h.PROTOCOLS)}")
    h.require_tools("curl")
    if args.pin and not h.can_pin():
        print("note: taskset or CPUs 0 and 1 unavailable; running unpinned", file=sys.stderr)
        args.pin = False
    if args.pin:
        os.sched_setaffinity(0, {h.CLIENT_CPU})  # this process is the client
    fd_limit = h.raise_fd_limit(args.connections + WARMUP_CONNECTIONS + 256)
    if fd_limit < args.connections + 64:
        raise SystemExit(f"RLIMIT_NOFILE is {fd_limit}; too low for {args.connections} sockets")
    h.warn_if_busy()
    machine = h.machine_info()  # taken at the start: "date" is when the benchmark began
    results: list[IdleResult] = []
    with tempfile.TemporaryDirectory(prefix="netkit-idle-") as tmp:
        for spec in h.select_servers(args.servers):
            for protocol in protocols:
                if protocol not in spec.protocols:
                    results.append(IdleResult(spec.name, protocol, "n/a"))
                    continue
                results.append(measure(spec, protocol, args, Path(tmp)))
    print()
    print(render(results))
    if args.json:
        report = {
            "benchmark": "benchmarks/idle_memory.py",
            "machine": machine,
            "settings": {
                "connections": args.connections,
                "settle_s": args.settle,
                "warmup_connections": WARMUP_CONNECTIONS,
                "pinned": args.pin,
            },
            "results": [asdict(r) for r in results],
        }
        h.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    h.run_main(main)
