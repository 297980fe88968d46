"""REST throughput: netkit's REST layer against Starlette on hypercorn (trio) and on uvicorn.

Every server serves the same small JSON resource (``benchmarks/apps/rest_netkit.py`` and
``rest_starlette.py``): ``POST /v1/orders`` with a validated JSON body (201) and
``GET /v1/orders/1`` (200).  One server runs at a time on 127.0.0.1, pinned to CPU 0; the
load generator is pinned to CPU 1, driven the same way for every server:

* HTTP/1.1: ``wrk -t1 -c32`` (keep-alive); POST bodies through a generated wrk script;
* h2c (prior knowledge): ``h2load -t1 -c8 -m16``; POST bodies with ``h2load -d``.
  uvicorn has no HTTP/2: n/a.

Before the load and after it, each server must answer a GET and a POST correctly (and
reject an invalid body with 422), so a fast wrong answer cannot win.

Usage::

    .venv/bin/python benchmarks/rest_run.py [--duration 10] [--repeat 1]
        [--only netkit,starlette-uvicorn] [--workloads get,post] [--json out.json]

``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: netkit and
Starlette on uvicorn, GET over HTTP/1.1, one second, no warm-up).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness as h

WRK_CONNECTIONS = 32
H2LOAD = (1, 8, 16)  # threads, clients, streams per client
REQUEST_TIMEOUT = 10
GET_PATH = "/v1/orders/1"
POST_PATH = "/v1/orders"
POST_BODY = b'{"sku": "book-7", "quantity": 3, "note": "gift wrap"}'
BAD_BODY = b'{"sku": "", "quantity": "three"}'
EXPECTED_GET = {"id": 1, "sku": "book-1", "quantity": 2, "note": None}
WORKLOADS = ("get", "post")
OURS = "netkit"


def _netkit(port: int, idle: bool) -> list[list[str]]:
    base = [h.PYTHON, "-m", "netkit", "serve", "rest_netkit:app", "--host", h.HOST]
    base += ["--port", str(port)]
    return [[*base, "--log-level", "WARNING"], base]


def _hypercorn(port: int, idle: bool) -> list[list[str]]:
    cmd = [h.PYTHON, "-m", "hypercorn", "--worker-class", "trio", "--workers", "1"]
    cmd += ["--config", str(h.BENCH_DIR / "hypercorn.toml"), "--bind", f"{h.HOST}:{port}"]
    return [[*cmd, "rest_starlette:app"]]


def _uvicorn(port: int, idle: bool) -> list[list[str]]:
    cmd = [h.PYTHON, "-m", "uvicorn", "rest_starlette:app", "--app-dir", str(h.APPS_DIR)]
    cmd += ["--host", h.HOST, "--port", str(port), "--http", "h11", "--loop", "asyncio"]
    cmd += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    return [cmd]


SERVERS = {
    spec.name: spec
    for spec in (
        h.ServerSpec(OURS, "netkit serve rest_netkit:app (netkit.rest)", (h.H1, h.H2C), _netkit),
        h.ServerSpec(
            "starlette-hypercorn-trio",
            "Starlette on hypercorn, trio worker, 1 worker",
            (h.H1, h.H2C),
            _hypercorn,
        ),
        h.ServerSpec(
            "starlette-uvicorn",
            "Starlette on uvicorn --http h11 --loop asyncio (no h2)",
            (h.H1,),
            _uvicorn,
        ),
    )
}


@dataclass
class Measurement:
    server: str
    protocol: str
    workload: str
    status: str
    command: list[str] = field(default_factory=list)
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    failed: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)


# --- correctness ------------------------------------------------------------------------


def _call(
    port: int, method: str, path: str, body: bytes | None, timeout: float
) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{h.HOST}:{port}{path}", data=body, method=method)
    if body is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check(port: int, timeout: float) -> str | None:
    """``None`` when GET, POST and an invalid POST get the right answers."""
    try:
        status, body = _call(port, "GET", GET_PATH, None, timeout)
        if status != 200 or json.loads(body) != EXPECTED_GET:
            return f"GET {GET_PATH}: {status} {body[:80]!r}"
        status, body = _call(port, "POST", POST_PATH, POST_BODY, timeout)
        created = json.loads(body)
        if status != 201 or created.get("sku") != "book-7" or created.get("quantity") != 3:
            return f"POST {POST_PATH}: {status} {body[:80]!r}"
        status, body = _call(port, "POST", POST_PATH, BAD_BODY, timeout)
        if status != 422:
            return f"invalid POST got {status}, expected 422"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# --- load generators ---------------------------------------------------------------------


def _wrk_script(workload: str, tmp: Path) -> Path:
    report = (h.BENCH_DIR / "wrk_report.lua").read_text()
    if workload == "get":
        return h.BENCH_DIR / "wrk_report.lua"
    setup = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(POST_BODY.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    path = tmp / "post.lua"
    path.write_text(setup + report)
    return path


def run_wrk(port: int, workload: str, args: argparse.Namespace, tmp: Path) -> Measurement:
    cpu = h.CLIENT_CPU if args.pin else None
    path = GET_PATH if workload == "get" else POST_PATH
    url = f"http://{h.HOST}:{port}{path}"
    base = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"--timeout={REQUEST_TIMEOUT}s"]
    script = str(_wrk_script(workload, tmp))
    if args.warmup > 0:
        h.run_tool(h.pinned([*base, f"-d{args.warmup}s", "-s", script, url], cpu), args.warmup + 30)
    argv = [*base, f"-d{args.duration}s", "--latency", "-s", script, url]
    done = h.run_tool(h.pinned(argv, cpu), args.duration + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("NETKIT-WRK-RESULT ")), "")
    if done.returncode != 0 or not line:
        raise h.HarnessError(f"wrk failed: {(done.stderr or done.stdout).strip()[-300:]}")
    data = json.loads(line.split(" ", 1)[1])
    seconds = data["duration_us"] / 1e6
    failed = sum(
        int(data[k])
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return Measurement(
        "", h.H1, workload, "ok", argv,
        rps=data["requests"] / seconds if seconds else None,
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, failed=failed,
    )  # fmt: skip


def run_h2load(port: int, workload: str, args: argparse.Namespace, tmp: Path) -> Measurement:
    cpu = h.CLIENT_CPU if args.pin else None
    threads, clients, streams = H2LOAD
    argv = ["h2load", f"-t{threads}", f"-c{clients}", f"-m{streams}", f"-D{args.duration}s"]
    if args.warmup > 0 and h.h2load_has_warmup():
        argv.append(f"--warm-up-time={args.warmup}s")
    if workload == "post":
        body = tmp / "body.json"
        body.write_bytes(POST_BODY)
        argv += ["-d", str(body), "-H", "content-type: application/json"]
        argv.append(f"http://{h.HOST}:{port}{POST_PATH}")
    else:
        argv.append(f"http://{h.HOST}:{port}{GET_PATH}")
    done = h.run_tool(h.pinned(argv, cpu), args.duration + args.warmup + 30)
    if done.returncode != 0 or "finished in" not in done.stdout:
        raise h.HarnessError(f"h2load failed: {(done.stderr or done.stdout).strip()[-300:]}")
    stats = h.parse_h2load(done.stdout)
    failed = int(stats["failed"] + stats["errored"] + stats["timeout"])
    failed += int(stats["total"] - stats["done"])
    return Measurement("", h.H2C, workload, "ok", argv, rps=stats["rps"], failed=failed)


# --- driving ---------------------------------------------------------------------------------


def measure_server(spec: h.ServerSpec, args: argparse.Namespace, logdir: Path) -> list[Measurement]:
    """Every (protocol, workload) case of one server; a fresh process per protocol."""
    print(f"== {spec.name}: {spec.description}", flush=True)
    results: list[Measurement] = []
    for protocol in args.protocols:
        if protocol not in spec.protocols:
            results.extend(Measurement(spec.name, protocol, w, "n/a") for w in args.workloads)
            continue
        try:
            with h.running_server(spec, logdir, pin=args.pin, ready=check) as server:
                print(f"   {protocol}: started {' '.join(server.argv)}", flush=True)
                for workload in args.workloads:
                    results.append(measure_case(server, protocol, workload, args))
        except h.HarnessError as exc:
            print(f"   {protocol}: failed to start: {exc}", flush=True)
            results.extend(
                Measurement(spec.name, protocol, w, "failed to start") for w in args.workloads
            )
    return results


def measure_case(
    server: h.RunningServer, protocol: str, workload: str, args: argparse.Namespace
) -> Measurement:
    name = server.spec.name
    if not server.alive():
        return Measurement(name, protocol, workload, "error: server died earlier")
    runner = run_wrk if protocol == h.H1 else run_h2load
    runs: list[Measurement] = []
    for _ in range(args.repeat):
        before = h.cpu_sample(server.process.pid)
        try:
            with tempfile.TemporaryDirectory(prefix="netkit-rest-") as tmp:
                m = runner(server.port, workload, args, Path(tmp))
        except h.HarnessError as exc:
            print(f"   {protocol} {workload}: {exc}", flush=True)
            continue
        m.cpu = h.cpu_usage(before, h.cpu_sample(server.process.pid))
        runs.append(m)
        time.sleep(args.pause)
    if not server.alive():
        problem: str | None = f"server died: {h.last_error(server)}"
    else:
        problem = check(server.port, 5.0)
    if not runs or problem is not None:
        print(f"   {protocol} {workload}: {problem or 'no run completed'}", flush=True)
        return Measurement(name, protocol, workload, f"error: {problem or 'no run completed'}")
    runs.sort(key=lambda m: m.rps or 0.0)
    chosen = runs[(len(runs) - 1) // 2]
    chosen.server = name
    chosen.runs = [m.rps or 0.0 for m in runs]
    print(f"   {protocol} {workload}: {chosen.rps:,.0f} req/s, failed {chosen.failed}", flush=True)
    return chosen


def ratios(results: list[Measurement]) -> list[dict[str, object]]:
    by_key = {(m.server, m.protocol, m.workload): m for m in results if m.status == "ok"}
    rows: list[dict[str, object]] = []
    for (server, protocol, workload), ours in by_key.items():
        if server != OURS:
            continue
        for other in SERVERS:
            theirs = by_key.get((other, protocol, workload))
            if other == OURS or theirs is None or not theirs.rps or not ours.rps:
                continue
            rows.append(
                {
                    "protocol": protocol,
                    "workload": workload,
                    "baseline": other,
                    "rps_ratio": ours.rps / theirs.rps,
                }
            )
    return rows


def render(results: list[Measurement], ratio_rows: list[dict[str, object]]) -> str:
    headers = ["server", "protocol", "workload", "req/s", "p50 ms", "p99 ms", "failed"]
    headers += ["srv CPU%", "other CPU%", "status"]
    rows = []
    for m in results:
        if m.status != "ok":
            rows.append([m.server, m.protocol, m.workload, *["n/a"] * 6, m.status[:80]])
            continue
        rows.append(
            [
                m.server,
                m.protocol,
                m.workload,
                f"{m.rps:,.0f}" if m.rps else "-",
                f"{m.p50_ms:.2f}" if m.p50_ms is not None else "-",
                f"{m.p99_ms:.2f}" if m.p99_ms is not None else "-",
                str(m.failed),
                f"{m.cpu.get('server_cpu_pct', 0):.0f}",
                f"{m.cpu.get('other_cpu_pct', 0):.0f}",
                "ok",
            ]
        )
    text = h.format_table(headers, rows)
    if ratio_rows:
        table = [
            [
                str(r["protocol"]),
                str(r["workload"]),
                f"netkit / {r['baseline']}",
                f"{r['rps_ratio']:.2f}",
            ]
            for r in ratio_rows
        ]
        text += "\n\nratios of req/s (higher is better for netkit)\n"
        text += h.format_table(["protocol", "workload", "ratio", "req/s"], table)
    return text


#: ``--quick``: netkit and Starlette on uvicorn, GET over HTTP/1.1 only, one second, no
#: warm-up.
QUICK: dict[str, object] = {
    "only": "netkit,starlette-uvicorn",
    "workloads": "get",
    "protocols": h.H1,
    "duration": 1,
    "warmup": 0,
    "pause": 0.0,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is kept")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between runs")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SERVERS)}")
    parser.add_argument("--workloads", default="get,post", help="comma-separated: get,post")
    parser.add_argument(
        "--protocols", default=",".join(h.PROTOCOLS), help="http/1.1, h2c or http/1.1,h2c"
    )
    parser.add_argument("--json", type=Path, help="write raw results to this file")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    args = h.parse_args(parser, argv, QUICK)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not set(args.workloads) <= set(WORKLOADS) or not args.workloads:
        parser.error(f"--workloads: choose from {', '.join(WORKLOADS)}")
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not args.protocols or set(args.protocols) - set(h.PROTOCOLS):
        parser.error(f"--protocols: choose from {', '.join(h.PROTOCOLS)}")
    if args.duration <= 0 or args.repeat < 1 or args.warmup < 0:
        parser.error("--duration must be > 0, --repeat >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    h.install_signal_handlers()
    h.require_tools("wrk", "h2load")
    if args.pin and not h.can_pin():
        print("note: taskset or CPUs 0 and 1 unavailable; running unpinned", file=sys.stderr)
        args.pin = False
    specs = h.select_servers(args.only, SERVERS)
    load = h.warn_if_busy()
    machine = h.machine_info()
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="netkit-bench-") as tmp:
        for spec in specs:
            results.extend(measure_server(spec, args, Path(tmp)))
            time.sleep(args.pause)
    ratio_rows = ratios(results)
    print()
    print(render(results, ratio_rows))
    if args.json:
        report = {
            "benchmark": "benchmarks/rest_run.py",
            "machine": machine,
            "load_average_at_start": load,
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "repeat": args.repeat,
                "pinned": args.pin,
                "wrk": {"threads": 1, "connections": WRK_CONNECTIONS},
                "h2load": dict(zip(("threads", "clients", "streams"), H2LOAD, strict=True)),
            },
            "results": [asdict(m) for m in results],
            "ratios": ratio_rows,
        }
        h.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    h.run_main(main)
