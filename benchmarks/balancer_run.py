"""The load balancer's benchmarks: (a) what ``netkit balancer`` costs, (b) tail latency
with one degraded backend (Linkerd's "Beyond Round Robin" experiment, scaled down).

(a) Proxy overhead. One netkit backend (``apps/balancer_backend.py``: ``GET /hello``
and the gRPC echo service) pinned to CPU 0; ``netkit balancer`` in front of it pinned
to CPU 1, with the load generator (a C program, much lighter than either) on CPU 1
too -- the machine has two cores, so there is no third. Each protocol runs direct to
the backend and then through the proxy, side by side in one run; the figure is the
ratio of requests/s (target: >= 60 %) and the p99 latencies:

* HTTP/1.1: ``wrk -t1 -c32 --latency`` on ``GET /hello``;
* h2c: ``h2load -c8 -m16`` on ``GET /hello``;
* gRPC unary: ``h2load -c8 -m16`` posting a framed ``EchoRequest`` to
  ``Echo/Unary`` (as grpc_run.py does); a netkit gRPC call through the proxy checks
  grpc-status first, since h2load sees HTTP statuses only.

(b) Tail latency, simulated: 11 backends in one trio process under trio's MockClock
(deterministic, and minutes of traffic in seconds), each with 4 workers and a fixed
10 ms service time; open-loop Poisson arrivals at 50 % of capacity; a caller timeout of
0.5 s. After 10 s one backend turns 10x slower (100 ms) for 10 s, then recovers; the
run lasts 30 s. The real :class:`~netkit.balance.LoadBalancer` and strategies pick
every request (outlier detection off: the strategies alone are compared). Reported per
strategy: p50/p99/p99.9 and success rate over the whole run, p99.9 of the healthy first
phase, and a plot (SVG) of p99 per second.

Usage::

    .venv/bin/python benchmarks/balancer_run.py [--part overhead|cpu|instructions|tail|all]
        [--duration 10] [--requests 20000] [--json out.json] [--svg docs/balancer-tail.svg]
        [--protocols http/1.1,h2c,grpc-unary]

``--protocols``: the protocols of (a) and of ``--part instructions`` (default all three).

``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: ``--part
overhead``, HTTP/1.1 only, one second each way).

``--part cpu`` (not in ``all``): CPU seconds per request of the proxy and the backend
(utime+stime from /proc/PID/stat around ``--requests`` h2load requests, HTTP/1.1 as
``h2load --h1 -c32``), and the throughput the proxy would keep with a core of its own:
the direct backend's cost over the costlier of proxy and proxied backend. Much less
sensitive to other load than requests/s, though not immune (caches, frequency).
``--part instructions`` (not in ``all``): the same with callgrind's instruction counts
(each process in turn under valgrind; counters zeroed before and dumped after each
load run with ``callgrind_control``), which no other load moves; use ``--requests
1000``: valgrind runs Python about 50 times slower.
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _harness as h
import trio
import trio.testing

from netkit.balance import BalancerConfig, LoadBalancer, OutlierConfig, make_strategy
from netkit.balance._backend import Backend
from netkit.balance._balancer import Outcome
from netkit.protos.echo.v1 import echo_pb2

# --- (a) proxy overhead ----------------------------------------------------------------

PROTOCOLS = ("http/1.1", "h2c", "grpc-unary")
GRPC_PATH = "/netkit.echo.v1.Echo/Unary"
PROXY_CPU = h.CLIENT_CPU


@dataclass
class Overhead:
    protocol: str
    target: str  # "direct" or "proxy"
    rps: float | None = None
    p99_ms: float | None = None
    failed: int = 0
    status: str = "ok"
    command: list[str] = field(default_factory=list)


def _backend_command(port: int, idle: bool) -> list[list[str]]:
    cmd = [h.PYTHON, "-m", "netkit", "serve", "balancer_backend:app"]
    return [[*cmd, "--host", h.HOST, "--port", str(port), "--log-level", "WARNING"]]


def _proxy_spec(backend_port: int, pin: bool) -> h.ServerSpec:
    def command(port: int, idle: bool) -> list[list[str]]:
        cmd = [h.PYTHON, "-m", "netkit", "balancer", "--host", h.HOST, "--port", str(port)]
        cmd += ["--backend", f"{h.HOST}:{backend_port}", "--strategy", "round_robin"]
        return [h.pinned([*cmd, "--log-level", "WARNING"], PROXY_CPU if pin else None)]

    return h.ServerSpec("netkit-balancer", "netkit balancer, 1 backend", (h.H1, h.H2C), command)


BACKEND = h.ServerSpec(
    "netkit-backend", "netkit serve balancer_backend:app", (h.H1, h.H2C), _backend_command
)

_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(port: int, duration: int, cpu: int | None) -> Overhead:
    argv = ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency", f"http://{h.HOST}:{port}/hello"]
    done = h.run_tool(h.pinned(argv, cpu), duration + h.TOOL_GRACE)
    rps, p99 = _WRK_RPS.search(done.stdout), _WRK_P99.search(done.stdout)
    if done.returncode != 0 or rps is None or p99 is None:
        raise h.HarnessError(f"wrk failed: {(done.stderr or done.stdout).strip()[-300:]}")
    m = Overhead("http/1.1", "", float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", done.stdout)
    m.failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        m.failed += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    m.command = argv
    return m


def _h2load(port: int, protocol: str, duration: int, cpu: int | None) -> Overhead:
    with tempfile.TemporaryDirectory(prefix="netkit-balancer-bench-") as tmp:
        log = Path(tmp) / "log.tsv"
        argv = ["h2load", "-t1", "-c8", "-m16", f"-D{duration}s", f"--log-file={log}"]
        if h.h2load_has_warmup():
            argv.append("--warm-up-time=1s")
        if protocol == "grpc-unary":
            body = Path(tmp) / "body.bin"
            message = echo_pb2.EchoRequest(payload=bytes(range(16))).SerializeToString()
            body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
            argv += ["-d", str(body), "-H", "content-type: application/grpc"]
            argv += ["-H", "te: trailers", f"http://{h.HOST}:{port}{GRPC_PATH}"]
        else:
            argv.append(f"http://{h.HOST}:{port}/hello")
        done = h.run_tool(h.pinned(argv, cpu), duration + 1 + h.TOOL_GRACE)
        if done.returncode != 0 or "finished in" not in done.stdout:
            raise h.HarnessError(f"h2load failed: {(done.stderr or done.stdout).strip()[-300:]}")
        stats = h.parse_h2load(done.stdout)
        latencies = sorted(
            int(cols[2])
            for row in log.read_text().splitlines()
            if len(cols := row.split("\t")) >= 3
        )
    m = Overhead(protocol, "", stats["rps"], None, int(stats["failed"] + stats["timeout"]))
    if latencies:
        m.p99_ms = h.percentile(latencies, 99) / 1000
    m.command = argv
    return m


def _grpc_works(port: int) -> str | None:
    """One real gRPC call (netkit's client) through ``port``; None if grpc-status is OK."""
    from netkit.grpc import GRPCError, open_channel
    from netkit.protos.echo.v1.echo_netkit import EchoStub

    async def call() -> str | None:
        async with open_channel(h.HOST, port) as channel:
            try:
                reply = await EchoStub(channel).Unary(
                    echo_pb2.EchoRequest(payload=b"check"), timeout=10
                )
            except GRPCError as exc:
                return f"gRPC call failed: {exc}"
            return None if reply.payload == b"check" else "wrong echo"

    return trio.run(call)


def measure_overhead(
    duration: int, logdir: Path, protocols: tuple[str, ...] = PROTOCOLS
) -> list[Overhead]:
    pin = h.can_pin()
    client_cpu = h.CLIENT_CPU if pin else None
    results: list[Overhead] = []
    with (
        h.running_server(BACKEND, logdir, pin=pin) as backend,
        h.running_server(_proxy_spec(backend.port, pin), logdir, pin=False) as proxy,
    ):
        problem = None
        if "grpc-unary" in protocols:
            problem = _grpc_works(proxy.port) or _grpc_works(backend.port)
        for protocol in protocols:
            for target, port in (("direct", backend.port), ("proxy", proxy.port)):
                try:
                    if protocol == "grpc-unary" and problem:
                        raise h.HarnessError(problem)
                    if protocol == "http/1.1":
                        m = _wrk(port, duration, client_cpu)
                    else:
                        m = _h2load(port, protocol, duration, client_cpu)
                except h.HarnessError as exc:
                    m = Overhead(protocol, target, status=str(exc)[:200])
                m.target = target
                results.append(m)
                print(f"  {protocol:10} {target:6} {m.rps or 0:9.0f} req/s  p99 {m.p99_ms} ms")
    return results


def render_overhead(results: list[Overhead]) -> str:
    rows = []
    for protocol in [p for p in PROTOCOLS if any(m.protocol == p for m in results)]:
        by = {m.target: m for m in results if m.protocol == protocol}
        direct, proxy = by.get("direct"), by.get("proxy")
        ratio = (
            f"{proxy.rps / direct.rps:.0%}"
            if direct and proxy and direct.rps and proxy.rps
            else "-"
        )
        rows.append(
            [
                protocol,
                f"{direct.rps:,.0f}" if direct and direct.rps else str(direct and direct.status),
                f"{proxy.rps:,.0f}" if proxy and proxy.rps else str(proxy and proxy.status),
                ratio,
                f"{direct.p99_ms:.2f}" if direct and direct.p99_ms else "-",
                f"{proxy.p99_ms:.2f}" if proxy and proxy.p99_ms else "-",
                f"{(direct.failed if direct else 0) + (proxy.failed if proxy else 0)}",
            ]
        )
    headers = ["protocol", "direct req/s", "proxy req/s", "proxy/direct", "p99 direct ms"]
    return h.format_table([*headers, "p99 proxy ms", "failed"], rows)


# --- (a') CPU per request: the noise-resistant view of (a) ------------------------------


@dataclass
class CpuCost:
    protocol: str
    requests: int
    direct_backend_ms: float  # backend CPU per request, served directly
    proxy_ms: float  # proxy CPU per request, through the proxy
    proxied_backend_ms: float  # backend CPU per request, behind the proxy (HTTP/2 upstream)

    @property
    def ratio(self) -> float:
        """Throughput the proxy keeps when it has a core of its own: the direct backend's
        cost over the costlier of the two processes a proxied request goes through."""
        return self.direct_backend_ms / max(self.proxy_ms, self.proxied_backend_ms)


def _h2load_n(port: int, protocol: str, requests: int, tmp: Path, *, check: bool = True) -> None:
    argv = ["h2load", "-t1", f"-n{requests}"]
    if protocol == "http/1.1":
        argv += ["--h1", "-c32"]
    else:
        argv += ["-c8", "-m16"]
    if protocol == "grpc-unary":
        body = tmp / "body.bin"
        message = echo_pb2.EchoRequest(payload=bytes(range(16))).SerializeToString()
        body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
        argv += ["-d", str(body), "-H", "content-type: application/grpc"]
        argv += ["-H", "te: trailers", f"http://{h.HOST}:{port}{GRPC_PATH}"]
    else:
        argv.append(f"http://{h.HOST}:{port}/hello")
    done = h.run_tool(argv, 600)
    stats = h.parse_h2load(done.stdout) if "finished in" in done.stdout else {}
    if check and (done.returncode != 0 or stats.get("succeeded") != requests):
        raise h.HarnessError(f"h2load failed: {(done.stderr or done.stdout).strip()[-300:]}")


def measure_cpu(requests: int, logdir: Path) -> list[CpuCost]:
    """CPU seconds per request of the proxy and of the backend (utime + stime from
    /proc/PID/stat around ``requests`` requests): unlike requests/s, what other processes
    do on the machine barely moves it, so it shows the effect of a change under load."""
    results: list[CpuCost] = []
    with (
        h.running_server(BACKEND, logdir, pin=False) as backend,
        h.running_server(_proxy_spec(backend.port, False), logdir, pin=False) as proxy,
        tempfile.TemporaryDirectory(prefix="netkit-balancer-cpu-") as tmp,
    ):
        problem = _grpc_works(proxy.port)
        if problem:
            raise h.HarnessError(problem)
        for protocol in PROTOCOLS:
            warm = max(requests // 10, 200)
            _h2load_n(backend.port, protocol, warm, Path(tmp))
            _h2load_n(proxy.port, protocol, warm, Path(tmp))
            b0 = h.cpu_sample(backend.process.pid).server
            _h2load_n(backend.port, protocol, requests, Path(tmp))
            b1 = h.cpu_sample(backend.process.pid).server
            p1 = h.cpu_sample(proxy.process.pid).server
            _h2load_n(proxy.port, protocol, requests, Path(tmp))
            b2 = h.cpu_sample(backend.process.pid).server
            p2 = h.cpu_sample(proxy.process.pid).server
            cost = CpuCost(
                protocol,
                requests,
                1000 * (b1 - b0) / requests,
                1000 * (p2 - p1) / requests,
                1000 * (b2 - b1) / requests,
            )
            results.append(cost)
            print(
                f"  {protocol:10} direct backend {cost.direct_backend_ms:.3f} ms  "
                f"proxy {cost.proxy_ms:.3f} ms  proxied backend {cost.proxied_backend_ms:.3f} ms"
                f"  -> {cost.ratio:.0%}"
            )
    return results


def render_cpu(results: list[CpuCost]) -> str:
    rows = [
        [
            c.protocol,
            f"{c.direct_backend_ms:.3f}",
            f"{c.proxy_ms:.3f}",
            f"{c.proxied_backend_ms:.3f}",
            f"{c.ratio:.0%}",
        ]
        for c in results
    ]
    headers = ["protocol", "backend ms/req (direct)", "proxy ms/req", "backend ms/req (proxied)"]
    return h.format_table([*headers, "throughput kept (est.)"], rows)


# --- (a'') instructions per request: callgrind, no noise at all --------------------------

#: Start and probe timeouts for a server under valgrind (about 50 times slower).
_SLOW: dict[str, Any] = {"start_timeout": 600.0, "probe_timeout": 120.0}
_CG_COUNT = re.compile(r"^(?:summary|totals):\s+(\d+)", re.M)


def _callgrind_window(pid: int, outdir: Path, run: Callable[[], None]) -> int:
    """Instructions ``pid`` (a process under callgrind) executed while ``run()`` ran:
    counters zeroed before, dumped after (``callgrind_control``), so start-up, imports
    and shutdown are not counted."""
    before = set(outdir.glob(f"cg.{pid}*"))
    h.run_tool(["callgrind_control", "--zero", str(pid)], 120)
    run()
    h.run_tool(["callgrind_control", "--dump", str(pid)], 300)
    for _ in range(300):
        new = sorted(set(outdir.glob(f"cg.{pid}*")) - before)
        if new and (found := _CG_COUNT.search(new[-1].read_text(errors="replace"))):
            return int(found.group(1))
        time.sleep(1)
    raise h.HarnessError(f"no callgrind dump from {pid}")


def measure_instructions(
    requests: int, logdir: Path, protocols: tuple[str, ...] = PROTOCOLS
) -> list[dict[str, object]]:
    """Instructions per request of the proxy and of the backend, each under callgrind in
    turn (the other one runs normally): the same requests as ``measure_cpu``."""
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="netkit-balancer-cg-") as tmp_name:
        tmp = Path(tmp_name)

        def under_callgrind(spec: h.ServerSpec) -> h.ServerSpec:
            prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp / 'cg.%p'}"]
            return h.ServerSpec(
                spec.name,
                spec.description,
                spec.protocols,
                lambda port, idle: [[*prefix, *argv] for argv in spec.command(port, idle)],
            )

        counts: dict[tuple[str, str], float] = {}
        for measured in ("proxy", "backend"):
            backend_spec = under_callgrind(BACKEND) if measured == "backend" else BACKEND
            with h.running_server(backend_spec, logdir, pin=False, **_SLOW) as backend:
                proxy_spec = _proxy_spec(backend.port, False)
                if measured == "proxy":
                    proxy_spec = under_callgrind(proxy_spec)
                with h.running_server(proxy_spec, logdir, pin=False, **_SLOW) as proxy:
                    target = proxy if measured == "proxy" else backend
                    ports = [proxy.port] if measured == "proxy" else [backend.port, proxy.port]
                    for protocol in protocols:
                        for port in ports:
                            kind = "direct" if port == backend.port else "proxied"
                            name = "proxy" if measured == "proxy" else f"backend {kind}"
                            # Warm-up, not counted (nor checked: under valgrind a few of
                            # its first requests may outlast the proxy's response timeout).
                            _h2load_n(port, protocol, 300, tmp, check=False)
                            count = _callgrind_window(
                                target.process.pid,
                                tmp,
                                functools.partial(_h2load_n, port, protocol, requests, tmp),
                            )
                            counts[(protocol, name)] = count / requests
                            print(f"  {protocol:10} {name:16} {count / requests:12,.0f} instr/req")
        for protocol in protocols:
            direct = counts[(protocol, "backend direct")]
            proxied = counts[(protocol, "backend proxied")]
            proxy_cost = counts[(protocol, "proxy")]
            results.append(
                {
                    "protocol": protocol,
                    "requests": requests,
                    "backend_direct": direct,
                    "proxy": proxy_cost,
                    "backend_proxied": proxied,
                    "ratio": direct / max(proxy_cost, proxied),
                }
            )
    return results


def render_instructions(results: list[dict[str, object]]) -> str:
    rows = [
        [
            str(r["protocol"]),
            f"{r['backend_direct']:,.0f}",
            f"{r['proxy']:,.0f}",
            f"{r['backend_proxied']:,.0f}",
            f"{r['ratio']:.0%}",
        ]
        for r in results
    ]
    headers = ["protocol", "backend instr/req (direct)", "proxy instr/req"]
    return h.format_table([*headers, "backend instr/req (proxied)", "kept (est.)"], rows)


# --- (b) tail latency under a degraded backend (simulated) ------------------------------

BACKENDS = 11
WORKERS = 4  # requests a backend serves at once; more wait in its queue
SERVICE_TIME = 0.010
SLOW_FACTOR = 10.0
LOAD = 0.5  # offered load as a fraction of the fleet's capacity
TIMEOUT = 0.5  # the caller's timeout
HEALTHY, DEGRADED, RECOVERED = 10.0, 10.0, 10.0
STRATEGIES = ("round_robin", "least_outstanding", "peak_ewma")


@dataclass
class Tail:
    strategy: str
    requests: int = 0
    succeeded: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    healthy_p999_ms: float = 0.0
    degraded_p99_ms: float = 0.0
    to_slow: int = 0  # requests sent to the slow backend while it was slow
    p99_per_second: list[float] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0


class SimBackend:
    def __init__(self, index: int) -> None:
        self.backend = Backend("10.0.0.1", 9000 + index)
        self.workers = trio.Semaphore(WORKERS)
        self.slow = False

    async def serve(self) -> None:
        async with self.workers:
            await trio.sleep(SERVICE_TIME * (SLOW_FACTOR if self.slow else 1.0))


async def _simulate(strategy: str, seed: int) -> Tail:
    rng = random.Random(seed)
    config = BalancerConfig(outlier=OutlierConfig(enabled=False))
    lb = LoadBalancer(make_strategy(strategy, rng=random.Random(seed + 1)), config)
    fleet = [SimBackend(i) for i in range(BACKENDS)]
    by_backend = {b.backend: b for b in fleet}
    start = trio.current_time()
    lb.update([b.backend for b in fleet], start)
    rate = LOAD * BACKENDS * WORKERS / SERVICE_TIME
    end = HEALTHY + DEGRADED + RECOVERED
    samples: list[tuple[float, float, bool]] = []  # (sent at, latency, ok)
    result = Tail(strategy)

    async def one(sent: float) -> None:
        state = lb.pick(sent)
        assert state is not None
        backend = by_backend[state.backend]
        if backend.slow:
            result.to_slow += 1
        lb.start(state, sent)
        with trio.move_on_after(TIMEOUT) as scope:
            await backend.serve()
        now = trio.current_time()
        ok = not scope.cancelled_caught
        lb.end(state, now, Outcome.SUCCESS if ok else Outcome.LOCAL_FAILURE, latency=now - sent)
        samples.append((sent - start, now - sent, ok))

    async def degrade() -> None:
        await trio.sleep(HEALTHY)
        fleet[0].slow = True
        await trio.sleep(DEGRADED)
        fleet[0].slow = False

    async with trio.open_nursery() as nursery:
        nursery.start_soon(degrade)
        while (now := trio.current_time()) - start < end:
            nursery.start_soon(one, now)
            await trio.sleep(rng.expovariate(rate))

    latencies = sorted(latency for _, latency, _ in samples)
    healthy = sorted(latency for t, latency, _ in samples if t < HEALTHY)
    degraded = sorted(lat for t, lat, _ in samples if HEALTHY <= t < HEALTHY + DEGRADED)
    result.requests = len(samples)
    result.succeeded = sum(ok for _, _, ok in samples)
    result.p50_ms = _pct(latencies, 50)
    result.p99_ms = _pct(latencies, 99)
    result.p999_ms = _pct(latencies, 99.9)
    result.healthy_p999_ms = _pct(healthy, 99.9)
    result.degraded_p99_ms = _pct(degraded, 99)
    for second in range(int(end)):
        window = sorted(lat for t, lat, _ in samples if second <= t < second + 1)
        result.p99_per_second.append(_pct(window, 99) if window else 0.0)
    return result


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[max(1, math.ceil(pct / 100 * len(values))) - 1] * 1000


def simulate(strategy: str, seed: int = 1) -> Tail:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(_simulate, strategy, seed, clock=clock)


def render_tail(results: list[Tail]) -> str:
    rows = [
        [
            t.strategy,
            f"{t.p50_ms:.1f}",
            f"{t.p99_ms:.1f}",
            f"{t.p999_ms:.1f}",
            f"{t.healthy_p999_ms:.1f}",
            f"{t.degraded_p99_ms:.1f}",
            f"{t.success_rate:.4%}",
            str(t.to_slow),
            f"{t.requests:,}",
        ]
        for t in results
    ]
    headers = ["strategy", "p50 ms", "p99 ms", "p99.9 ms", "healthy p99.9 ms"]
    headers += ["degraded p99 ms", "success", "to slow", "requests"]
    return h.format_table(headers, rows)


def tail_svg(results: list[Tail]) -> str:
    """p99 latency per second for each strategy: a small hand-written SVG line chart."""
    width, height, left, right, top, bottom = 720, 360, 60, 150, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    seconds = len(results[0].p99_per_second)
    low, high = math.log10(5), math.log10(TIMEOUT * 1000 * 1.2)

    def x(second: float) -> float:
        return left + plot_w * second / seconds

    def y(ms: float) -> float:
        value = min(max(math.log10(max(ms, 5)), low), high)
        return top + plot_h * (1 - (value - low) / (high - low))

    colours = {"round_robin": "#d62728", "least_outstanding": "#ff7f0e", "peak_ewma": "#1f77b4"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect x="{x(HEALTHY):.1f}" y="{top}" width="{x(HEALTHY + DEGRADED) - x(HEALTHY):.1f}" '
        f'height="{plot_h}" fill="#eeeeee"/>',
        f'<text x="{x(HEALTHY) + 4:.1f}" y="{top + 14}">one backend 10x slower</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
    ]
    for ms in (5, 10, 20, 50, 100, 200, 500):
        if math.log10(ms) <= high:
            parts.append(
                f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms}</text>'
                f'<line x1="{left}" y1="{y(ms):.1f}" x2="{left + plot_w}" y2="{y(ms):.1f}" '
                'stroke="#dddddd"/>'
            )
    for second in range(0, seconds + 1, 5):
        parts.append(
            f'<text x="{x(second):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{second}</text>"
        )
    mid = top + plot_h / 2
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        "simulated seconds</text>"
        f'<text x="14" y="{mid:.1f}" transform="rotate(-90 14 {mid:.1f})" '
        'text-anchor="middle">p99 latency per second, ms (log)</text>'
    )
    for i, t in enumerate(results):
        colour = colours.get(t.strategy, "black")
        points = " ".join(f"{x(s + 0.5):.1f},{y(ms):.1f}" for s, ms in enumerate(t.p99_per_second))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        ly = top + 20 + 20 * i
        parts.append(
            f'<line x1="{left + plot_w + 10}" y1="{ly}" x2="{left + plot_w + 30}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + plot_w + 34}" y="{ly + 4}">{t.strategy}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- main ------------------------------------------------------------------------------


#: ``--quick``: the proxy overhead on HTTP/1.1 only, one second direct and one proxied.
QUICK: dict[str, object] = {"part": "overhead", "protocols": "http/1.1", "duration": 1}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", choices=("overhead", "cpu", "instructions", "tail", "all"), default="all"
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests per cpu run")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--svg", type=Path, help="write the tail-latency plot here")
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help="protocols of (a) overhead and --part instructions, comma-separated",
    )
    args = h.parse_args(parser, argv, QUICK)
    args.protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    if not args.protocols or set(args.protocols) - set(PROTOCOLS):
        parser.error(f"--protocols: choose from {', '.join(PROTOCOLS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    h.install_signal_handlers()
    report: dict[str, object] = {"machine": h.machine_info()}
    status = 0
    if args.part in ("overhead", "all"):
        h.require_tools("wrk", "h2load")
        h.warn_if_busy()
        print("(a) proxy overhead")
        with tempfile.TemporaryDirectory(prefix="netkit-balancer-logs-") as logs:
            overhead = measure_overhead(args.duration, Path(logs), args.protocols)
        print(render_overhead(overhead))
        report["overhead"] = [asdict(m) for m in overhead]
        status |= any(m.status != "ok" for m in overhead)
    if args.part == "cpu":
        h.require_tools("h2load")
        print("(a') CPU per request, proxy and backend")
        with tempfile.TemporaryDirectory(prefix="netkit-balancer-logs-") as logs:
            costs = measure_cpu(args.requests, Path(logs))
        print(render_cpu(costs))
        report["cpu"] = [{**asdict(c), "ratio": c.ratio} for c in costs]
    if args.part == "instructions":
        h.require_tools("h2load", "valgrind", "callgrind_control")
        print("(a'') instructions per request (callgrind), proxy and backend")
        with tempfile.TemporaryDirectory(prefix="netkit-balancer-logs-") as logs:
            counted = measure_instructions(args.requests, Path(logs), args.protocols)
        print(render_instructions(counted))
        report["instructions"] = counted
    if args.part in ("tail", "all"):
        print("\n(b) tail latency, one backend 10x slower (simulated, MockClock)")
        tails = [simulate(name) for name in STRATEGIES]
        print(render_tail(tails))
        ewma = tails[-1]
        met = ewma.p999_ms <= 2 * ewma.healthy_p999_ms and ewma.success_rate > 0.999
        print(
            f"peak_ewma: p99.9 {ewma.p999_ms:.1f} ms vs healthy {ewma.healthy_p999_ms:.1f} ms, "
            f"success {ewma.success_rate:.4%}: target {'met' if met else 'missed'}"
        )
        report["tail"] = [asdict(t) for t in tails]
        if args.svg:
            args.svg.write_text(tail_svg(tails))
            print(f"plot written to {args.svg}")
    if args.json:
        h.write_report(args.json, report)
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(h.APPS_DIR))
    h.run_main(main)
