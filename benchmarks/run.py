"""Throughput and tail latency of netkit against hypercorn, uvicorn and two bare-trio floors.

Every server answers ``GET /hello`` with ``{"message": "hello, world"}``.  One server
runs at a time on 127.0.0.1, pinned to CPU 0; the load generator is pinned to CPU 1:

* HTTP/1.1: ``wrk -t1 -c32`` (keep-alive), p99 from wrk's latency histogram;
* h2c (prior knowledge): ``h2load -t1 -c8 -m16``, p99 computed from ``--log-file``.

Usage::

    .venv/bin/python benchmarks/run.py [--duration 10] [--only netkit,floor-h11] [--json out.json]

``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: netkit and
hypercorn-trio, HTTP/1.1 only, one second each, no warm-up).

A server that does not start is reported as "failed to start"; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness as h

WRK_CONNECTIONS = 32
WRK_THREADS = 1
H2LOAD_CLIENTS = 8
H2LOAD_STREAMS = 16
H2LOAD_THREADS = 1
REQUEST_TIMEOUT = 10  # seconds; wrk counts slower responses as timeouts

BASELINES = {  # what netkit is compared with, per protocol
    h.H1: ["hypercorn-trio", "uvicorn-h11", "floor-h11"],
    h.H2C: ["hypercorn-trio", "floor-h2"],
}


@dataclass
class Measurement:
    server: str
    protocol: str
    status: str  # "ok", "n/a", "failed to start", or what went wrong
    tool: str = ""
    command: list[str] = field(default_factory=list)
    requests: int = 0
    duration_s: float = 0.0
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    failed: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, float | None]] = field(default_factory=list)  # every repetition
    notes: list[str] = field(default_factory=list)  # e.g. the server died after a run
    cpu: dict[str, float] = field(default_factory=dict)  # % of a CPU: server, client, other


# --- load generators -------------------------------------------------------------------


def _url(port: int) -> str:
    return f"http://{h.HOST}:{port}{h.PATH}"


def run_wrk(port: int, duration: int, warmup: int, cpu: int | None) -> Measurement:
    url = _url(port)
    base = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"--timeout={REQUEST_TIMEOUT}s"]
    if warmup > 0:  # wrk has no warm-up phase: a short discarded run instead
        h.run_tool(h.pinned([*base, f"-d{warmup}s", url], cpu), warmup + h.TOOL_GRACE)
    script = str(h.BENCH_DIR / "wrk_report.lua")
    argv = [*base, f"-d{duration}s", "--latency", "-s", script, url]
    done = h.run_tool(h.pinned(argv, cpu), duration + h.TOOL_GRACE)
    match = re.search(r"^NETKIT-WRK-RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        detail = (done.stderr or done.stdout).strip()[-300:]
        raise h.HarnessError(f"wrk failed (exit {done.returncode}): {detail}")
    data = json.loads(match.group(1))
    if not data["requests"]:
        raise h.HarnessError(f"wrk completed no requests: {data}")
    duration_s = data["duration_us"] / 1e6
    errors = {
        key: int(data[key])
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    }
    return Measurement(
        server="",
        protocol=h.H1,
        status="ok",
        tool="wrk",
        command=argv,
        requests=int(data["requests"]),
        duration_s=duration_s,
        rps=data["requests"] / duration_s if duration_s else None,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        failed=sum(errors.values()),
        errors=errors,
    )


def run_h2load(port: int, duration: int, warmup: int, cpu: int | None) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="netkit-h2load-") as tmp:
        log_file = Path(tmp) / "requests.tsv"
        argv = ["h2load", f"-t{H2LOAD_THREADS}", f"-c{H2LOAD_CLIENTS}", f"-m{H2LOAD_STREAMS}"]
        argv += [f"-D{duration}s", f"--log-file={log_file}"]
        if warmup > 0 and h.h2load_has_warmup():
            argv.append(f"--warm-up-time={warmup}s")
        argv.append(_url(port))
        done = h.run_tool(h.pinned(argv, cpu), duration + warmup + h.TOOL_GRACE)
        if done.returncode != 0 or "finished in" not in done.stdout:
            detail = (done.stderr or done.stdout).strip()[-300:]
            raise h.HarnessError(f"h2load failed (exit {done.returncode}): {detail}")
        stats = h.parse_h2load(done.stdout)
        if not stats["done"]:
            raise h.HarnessError("h2load completed no requests (server not answering?)")
        # --log-file rows: start time (us since epoch), status, microseconds to end of response.
        # With --warm-up-time only requests of the measured period are logged.
        # Status -1 marks a failed stream.  Status 0 shows up for a few requests in flight
        # when the warm-up ends (their response head was counted in the warm-up); h2load
        # still counts them as succeeded, so they are not failures.
        latencies: list[int] = []
        non_2xx = no_status = 0
        with log_file.open() as rows:
            for row in rows:
                cols = row.split("\t")
                if len(cols) >= 3:
                    latencies.append(int(cols[2]))
                    status = int(cols[1])
                    no_status += status == 0
                    non_2xx += status != 0 and not 200 <= status < 300
    latencies.sort()
    pct: dict[str, float | None] = {"p50": None, "p90": None, "p99": None, "max": None}
    if latencies:
        pct = {
            "p50": h.percentile(latencies, 50) / 1000,
            "p90": h.percentile(latencies, 90) / 1000,
            "p99": h.percentile(latencies, 99) / 1000,
            "max": latencies[-1] / 1000,
        }
    total = int(stats["total"])
    errors = {
        "failed": int(stats["failed"]),  # includes non-2xx/3xx responses and "errored"
        "errored": int(stats["errored"]),
        "timeout": int(stats["timeout"]),
        "not_done": total - int(stats["done"]),
        "non_2xx_logged": non_2xx,
        "no_status_logged": no_status,
    }
    rps = stats["rps"]
    return Measurement(
        server="",
        protocol=h.H2C,
        status="ok",
        tool="h2load",
        command=argv,
        requests=total,
        duration_s=total / rps if rps else 0.0,
        rps=rps,
        p50_ms=pct["p50"],
        p90_ms=pct["p90"],
        p99_ms=pct["p99"],
        max_ms=pct["max"],
        failed=max(errors["failed"] + errors["timeout"], non_2xx),
        errors=errors,
    )


# --- driving the servers ---------------------------------------------------------------


def _median_run(runs: list[Measurement]) -> Measurement:
    ordered = sorted(runs, key=lambda m: m.rps or 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [
        {
            "rps": m.rps,
            "p99_ms": m.p99_ms,
            "failed": m.failed,
            "requests": m.requests,
            **m.cpu,
        }
        for m in runs
    ]
    return chosen


def _healthy(server: h.RunningServer, protocol: str) -> bool:
    return server.alive() and h.probe(server.port, protocol) is None


def measure_protocol(
    spec: h.ServerSpec, protocol: str, args: argparse.Namespace, logdir: Path
) -> Measurement:
    """``--repeat`` runs of one protocol against a fresh server process.

    A server that dies (or stops answering) after a run is restarted for the next run,
    and that is recorded in the result's ``notes``: the runs it completed still count.
    """
    cpu = h.CLIENT_CPU if args.pin else None
    runner = run_wrk if protocol == h.H1 else run_h2load
    runs: list[Measurement] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        server: h.RunningServer | None = None
        for i in range(args.repeat):
            if server is None or not _healthy(server, protocol):
                if server is not None:
                    stack.close()  # stop what is left of the dead server
                try:
                    server = stack.enter_context(h.running_server(spec, logdir, pin=args.pin))
                except h.HarnessError as exc:
                    print(f"   {protocol}: failed to start: {exc}", flush=True)
                    if i == 0:
                        return Measurement(spec.name, protocol, "failed to start")
                    notes.append(f"could not restart after run {i}")
                    break
                if i == 0:
                    print(f"   {protocol}: started {' '.join(server.argv)}", flush=True)
                problem = h.probe(server.port, protocol)
                if problem is not None:
                    print(f"   {protocol}: GET /hello is wrong: {problem}", flush=True)
                    return Measurement(spec.name, protocol, f"probe: {problem}")
                warmup = args.warmup
            else:
                warmup = 0  # the same server process, warm already
            try:
                before = h.cpu_sample(server.process.pid)
                runs.append(runner(server.port, args.duration, warmup, cpu))
                runs[-1].cpu = h.cpu_usage(before, h.cpu_sample(server.process.pid))
            except h.HarnessError as exc:
                notes.append(f"run {i + 1}: {exc}")
                print(f"   {protocol}: run {i + 1}: {exc}", flush=True)
            time.sleep(args.pause)
            if not _healthy(server, protocol):
                notes.append(f"server died after run {i + 1}: {h.last_error(server)}")
                print(f"   {protocol}: {notes[-1]}", flush=True)
    if not runs:
        return Measurement(spec.name, protocol, "error: " + "; ".join(notes), notes=notes)
    measurement = _median_run(runs)
    measurement.server = spec.name
    measurement.notes = notes
    rps, p99 = _fmt(measurement.rps, ",.0f"), _fmt(measurement.p99_ms, ".2f")
    print(
        f"   {protocol}: {rps} req/s, p99 {p99} ms, failed {measurement.failed}"
        + (f" ({'; '.join(notes)})" if notes else ""),
        flush=True,
    )
    return measurement


def measure_server(spec: h.ServerSpec, args: argparse.Namespace, logdir: Path) -> list[Measurement]:
    print(f"== {spec.name}: {spec.description}", flush=True)
    results = []
    for protocol in args.protocols:
        if protocol in spec.protocols:
            results.append(measure_protocol(spec, protocol, args, logdir))
            time.sleep(args.pause)
        else:
            results.append(Measurement(spec.name, protocol, "n/a"))
    return results


def ratios(results: list[Measurement]) -> list[dict[str, object]]:
    by_key = {(m.server, m.protocol): m for m in results}
    out: list[dict[str, object]] = []
    for protocol, baselines in BASELINES.items():
        ours = by_key.get(("netkit", protocol))
        for baseline in baselines:
            theirs = by_key.get((baseline, protocol))
            if ours is None or theirs is None:
                continue  # not selected with --only
            row: dict[str, object] = {
                "protocol": protocol,
                "baseline": baseline,
                "rps_ratio": None,
                "p99_ratio": None,
            }
            if ours.rps and theirs.rps:
                row["rps_ratio"] = ours.rps / theirs.rps
            if ours.p99_ms and theirs.p99_ms:
                row["p99_ratio"] = ours.p99_ms / theirs.p99_ms
            out.append(row)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(results: list[Measurement], ratio_rows: list[dict[str, object]]) -> str:
    headers = ["server", "protocol", "req/s", "req/s range", "p50 ms", "p99 ms", "failed"]
    headers += ["srv CPU%", "other CPU%", "status"]
    rows = []
    for m in results:
        if m.status != "ok":
            rows.append([m.server, m.protocol, *["n/a"] * 7, m.status[:90]])
            continue
        rates = [rps for run in m.runs if (rps := run.get("rps")) is not None]
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "-"
        others = [o for run in m.runs if (o := run.get("other_cpu_pct")) is not None]
        died = sum(note.startswith("server died") for note in m.notes)
        notes = [note for note in m.notes if not note.startswith("server died")]
        crashes = [f"server died after {died} of {len(m.runs)} runs"] if died else []
        cells = [_fmt(m.rps, ",.0f"), spread, _fmt(m.p50_ms, ".2f"), _fmt(m.p99_ms, ".2f")]
        cells += [str(m.failed), _fmt(m.cpu.get("server_cpu_pct"), ".0f")]
        cells.append(_fmt(max(others), ".0f") if others else "-")
        rows.append([m.server, m.protocol, *cells, "; ".join(["ok", *crashes, *notes])])
    text = h.format_table(headers, rows)
    text += (
        "\n(srv CPU%: server processes, % of one CPU, median run; other CPU%: all other"
        " processes on the machine, worst run: when high, other work competed for the CPUs)"
    )
    if ratio_rows:
        ratio_table = [
            [
                str(r["protocol"]),
                f"netkit / {r['baseline']}",
                "n/a" if r["rps_ratio"] is None else f"{r['rps_ratio']:.2f}",
                "n/a" if r["p99_ratio"] is None else f"{r['p99_ratio']:.2f}",
            ]
            for r in ratio_rows
        ]
        text += "\n\nratios (req/s: higher is better for netkit; p99: lower is better)\n"
        text += h.format_table(["protocol", "ratio", "req/s", "p99"], ratio_table)
    return text


#: ``--quick``: netkit and its closest peer (trio too), HTTP/1.1, one second, no warm-up.
QUICK: dict[str, object] = {
    "only": "netkit,hypercorn-trio",
    "protocols": h.H1,
    "duration": 1,
    "warmup": 0,
    "pause": 0.0,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # wrk and h2load take whole seconds
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is kept")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between runs")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(h.SERVERS)}")
    parser.add_argument(
        "--protocols", default=",".join(h.PROTOCOLS), help="http/1.1, h2c or http/1.1,h2c"
    )
    parser.add_argument("--json", type=Path, help="write raw results to this file")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    args = h.parse_args(parser, argv, QUICK)
    if args.duration <= 0 or args.repeat < 1 or args.warmup < 0:
        parser.error("--duration must be > 0, --repeat >= 1, --warmup >= 0")
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not args.protocols or set(args.protocols) - set(h.PROTOCOLS):
        parser.error(f"--protocols: choose from {', '.join(h.PROTOCOLS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    h.install_signal_handlers()
    h.require_tools("wrk", "h2load", "curl")
    if args.pin and not h.can_pin():
        print("note: taskset or CPUs 0 and 1 unavailable; running unpinned", file=sys.stderr)
        args.pin = False
    specs = h.select_servers(args.only)
    load_at_start = h.warn_if_busy()
    machine = h.machine_info()  # taken at the start: "date" is when the benchmark began
    started = time.time()
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
            "benchmark": "benchmarks/run.py",
            "machine": machine,
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "repeat": args.repeat,
                "pinned": args.pin,
                "server_cpu": h.SERVER_CPU if args.pin else None,
                "client_cpu": h.CLIENT_CPU if args.pin else None,
                "wrk": {"threads": WRK_THREADS, "connections": WRK_CONNECTIONS},
                "h2load": {
                    "threads": H2LOAD_THREADS,
                    "clients": H2LOAD_CLIENTS,
                    "streams_per_client": H2LOAD_STREAMS,
                },
            },
            "elapsed_s": round(time.time() - started, 1),
            "load_average_at_start": load_at_start,
            "results": [asdict(m) for m in results],
            "ratios": ratio_rows,
        }
        h.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    h.run_main(main)
