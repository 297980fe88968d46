"""CPU instructions per gRPC call, counted by callgrind: netkit against the other gRPC servers.

``grpc_run.py`` measures req/s and MB/s, which vary by 15-20 % between runs on a small
shared VM.  This script counts what each server executes per call instead, with the
method and machinery of ``instructions.py`` (read its docstring): every server of
``grpc_run.py`` is started under ``valgrind --tool=callgrind --trace-children=yes``,
pinned to CPU 0, once loaded and once idle, and

    instructions per call = (total_loaded - total_idle) / calls

* unary: ``--calls`` (default 3000) ``Echo/Unary`` calls with a 16-byte payload,
  ``h2load -t1 -c8 -m16 -nN`` (grpc_run.py's connections and streams);
* stream: ``--stream-calls`` (default 4) ``Echo/ServerStream`` calls of 10,000 x 1 KiB,
  ``h2load -t1 -c2 -m2 -nN``; the count per call is also shown per message.

A server is ready once grpc_run.py's grpcio check of the workload passes (grpc-status
0 and every payload byte; for streaming, all 10,000 messages).  That check runs in the
loaded *and* the idle run, so its cost cancels.  The loaded run then counts only if
h2load did every call, none failed or errored, every status was 2xx and the response
DATA adds up to every call's whole answer: a gRPC call that fails is still HTTP 200,
but it sends no messages, so its bytes would be missing.

The servers are stopped with SIGINT, except two stopped with SIGTERM (``STOP_SIGNALS``):
grpclib, whose app shuts down on SIGTERM only (``apps/grpclib_echo.py``), and purerpc,
which under valgrind did not exit on SIGINT, while SIGTERM's default action ends it at
once (callgrind still writes its counts).  grpcio's threads are counted: callgrind adds
up the threads of a process.

One more row, ``h2-floor``, is h2 alone (``floors/h2_grpc_unary.py``): a client's bytes
for the same unary calls are recorded once, then replayed under callgrind into a fresh
h2 server connection that answers every call with HEADERS, DATA and trailers, with no
sockets and no event loop; (replay of every call - replay of none) / calls.  Set
against each server's unary count, it says how much of that count is h2 itself.

Usage::

    .venv/bin/python benchmarks/grpc_instructions.py [--calls 3000] [--stream-calls 4]
        [--only netkit,grpclib,h2-floor] [--workloads unary,stream] [--repeat 1]
        [--json out.json]

About 10 s to 2 min per callgrind run: a full run (5 servers x 2 workloads, 2 runs
each, and the floor) takes about half an hour on a 2-vCPU VM.  docs/benchmarks.md has
the method and results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import _harness as h
import grpc_run as g
import instructions as ins

FLOOR = "h2-floor"
FLOOR_SCRIPT = h.FLOORS_DIR / "h2_grpc_unary.py"
FLOOR_TIMEOUT = 1800.0  # seconds for one replay under callgrind
# grpclib_echo.py stops on SIGTERM only; purerpc_echo.py, on SIGINT under valgrind, did
# not exit within 300 s after the unary load, and SIGTERM (its default action) ends it at
# once: callgrind still writes its counts when a signal ends the process.
STOP_SIGNALS = {"grpclib": signal.SIGTERM, "purerpc": signal.SIGTERM}


def _patient_netkit(port: int, idle: bool) -> list[list[str]]:
    script = h.APPS_DIR / "netkit_grpc_patient.py"
    return [[h.PYTHON, str(script), "--host", h.HOST, "--port", str(port)]]


# netkit's keep-alive and request-head timeouts (5 s, 10 s) fire under valgrind's
# slowdown between bursts of calls and h2load sees calls errored: the same app with
# them raised (see apps/netkit_grpc_patient.py).
SERVERS = {
    **g.SERVERS,
    "netkit": dataclasses.replace(
        g.SERVERS["netkit"],
        description="netkit.examples.grpc_echo:app, timeouts raised (apps/netkit_grpc_patient.py)",
        command=_patient_netkit,
    ),
}


def _not_a_server(port: int, idle: bool) -> list[list[str]]:
    raise h.HarnessError(f"{FLOOR} is not a server: measure_floor replays it")


FLOOR_SPEC = h.ServerSpec(
    FLOOR, f"bare h2, recorded unary calls replayed ({FLOOR_SCRIPT.name})", (h.H2C,), _not_a_server
)
MENU = {**SERVERS, FLOOR: FLOOR_SPEC}


def grpc_load(
    spec: h.ServerSpec, workload: str, calls: int, body: Path, cpu: int | None
) -> ins.Load:
    """``calls`` calls of ``workload``, its request body in ``body``; ready once grpcio's
    check of the same workload passes."""

    def ready(port: int, timeout: float) -> str | None:
        return g.verify(port, workload, cpu, timeout)

    def command(port: int) -> list[str]:
        return g.h2load_argv(port, workload, body, calls=calls, log=None)

    return ins.Load(
        label=workload,
        protocol=h.H2C,
        workload=workload,
        requests=calls,
        command=command,
        body_sizes=frozenset({g.response_data_bytes(workload)}),
        ready=ready,
        stop_signal=STOP_SIGNALS.get(spec.name, signal.SIGINT),
    )


# --- the bare-h2 floor -----------------------------------------------------------------


def _replay(
    files: dict[str, Path], idle: bool, args: argparse.Namespace, workdir: Path
) -> ins.CallgrindRun:
    """One replay of the recorded calls (or, ``idle``, of none) under callgrind."""
    outdir = Path(tempfile.mkdtemp(prefix=f"{FLOOR}-", dir=workdir))
    argv = [h.PYTHON, str(FLOOR_SCRIPT), "replay", "--recording", str(files["recording"])]
    argv += ["--response", str(files["response"]), *(["--idle"] if idle else [])]
    started = time.monotonic()
    wrapped = h.pinned([*ins.valgrind_prefix(outdir), *argv], h.SERVER_CPU if args.pin else None)
    done = h.run_tool(wrapped, FLOOR_TIMEOUT)
    wall = time.monotonic() - started
    try:
        answered = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise h.HarnessError(
            f"replay exit {done.returncode}: {done.stderr.strip()[-300:]}"
        ) from None
    calls = 0 if idle else args.calls
    if answered["calls"] != calls or answered["data_bytes"] != calls * g.response_data_bytes(
        g.UNARY
    ):
        raise h.HarnessError(f"replay answered {answered} instead of {calls} calls")
    counts = ins.read_counts(outdir)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.move(outdir, args.keep / f"{FLOOR}-unary-{calls}-{outdir.name}")
    else:
        shutil.rmtree(outdir)
    return ins.CallgrindRun(
        requests=calls,
        instructions=sum(count.instructions for count in counts),
        processes=counts,
        load_seconds=0.0,
        wall_seconds=round(wall, 1),
        load_command=argv,
    )


def measure_floor(args: argparse.Namespace, workdir: Path) -> ins.Result:
    """``--repeat`` pairs of replays (every call, then none) of one recording."""
    files = {name: workdir / f"floor-{name}.bin" for name in ("request", "response", "recording")}
    files["request"].write_bytes(g.request_body(g.UNARY))
    files["response"].write_bytes(g.response_frame(g.UNARY_PAYLOAD))
    record = [h.PYTHON, str(FLOOR_SCRIPT), "record", "--calls", str(args.calls)]
    record += ["--batch", str(g.H2LOAD[g.UNARY][2])]
    record += [f"--{name}={files[name]}" for name in ("request", "response")]
    done = h.run_tool([*record, "--out", str(files["recording"])], 120)
    result = ins.Result(FLOOR, h.H2C, "ok", command=record, requests=args.calls, workload=g.UNARY)
    if done.returncode != 0:
        result.status = f"error: record failed: {done.stderr.strip()[-200:]}"
        return result
    values = []
    for i in range(args.repeat):
        try:
            loaded = _replay(files, False, args, workdir)
            idle = _replay(files, True, args, workdir)
        except h.HarnessError as exc:
            print(f"   unary: {exc}", flush=True)
            result.notes.append(f"pair {i + 1}: {exc}")
            continue
        value = (loaded.instructions - idle.instructions) / args.calls
        values.append(value)
        result.runs.append(
            {"per_request": round(value), "loaded": asdict(loaded), "idle": asdict(idle)}
        )
        print(f"   unary: {value:,.0f} instructions per call (replayed)", flush=True)
    if values:
        result.per_request = statistics.median(values)
    else:
        result.status = "error: " + "; ".join(result.notes)
    return result


# --- driving the servers ---------------------------------------------------------------


def measure_server(
    spec: h.ServerSpec, args: argparse.Namespace, versions: dict[str, str], workdir: Path
) -> list[ins.Result]:
    print(f"== {spec.name}: {spec.description}", flush=True)
    problem = g.prepare(spec, versions)
    if problem is not None:
        return [ins.Result(spec.name, h.H2C, problem, workload=w) for w in args.workloads]
    cpu = h.CLIENT_CPU if args.pin else None
    results = []
    for workload in args.workloads:
        body = workdir / f"body-{workload}.bin"
        body.write_bytes(g.request_body(workload))
        calls = args.calls if workload == g.UNARY else args.stream_calls
        results.append(
            ins.measure(spec, grpc_load(spec, workload, calls, body, cpu), args, workdir)
        )
    return results


def ratios(results: list[ins.Result]) -> list[dict[str, object]]:
    """Per workload, each server's count ÷ netkit's (above 1: netkit does less work per
    call; reads like netkit's req/s ÷ the peer's), and the h2 floor ÷ each server's
    unary count (the share of the server's work that is bare h2)."""
    counts = {(r.server, r.workload): r.per_request for r in results if r.per_request}
    floor = counts.get((FLOOR, g.UNARY))
    out: list[dict[str, object]] = []
    for (server, workload), count in counts.items():
        if server == FLOOR:
            continue
        netkit = counts.get(("netkit", workload))
        row: dict[str, object] = {"server": server, "workload": workload}
        row["server_over_netkit"] = count / netkit if netkit else None
        row["floor_over_server"] = floor / count if floor and workload == g.UNARY else None
        out.append(row)
    return out


def _cell(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(results: list[ins.Result], ratio_rows: list[dict[str, object]]) -> str:
    shares = {(row["server"], row["workload"]): row for row in ratio_rows}
    headers = ["server", "workload", "instructions/call", "per message", "each pair"]
    headers += ["processes", "h2load s", "÷ netkit", "h2 floor share", "status"]
    rows = []
    for r in results:
        if r.per_request is None:
            rows.append([r.server, r.workload, *["n/a"] * 7, r.status[:100]])
            continue
        per_message = r.per_request / g.STREAM_COUNT if r.workload == g.STREAM else None
        first = r.runs[0]["loaded"]
        assert isinstance(first, dict)
        row = shares.get((r.server, r.workload), {})
        cells = [_cell(r.per_request, ",.0f"), _cell(per_message, ",.0f")]
        cells.append(", ".join(f"{run['per_request']:,}" for run in r.runs))
        load_seconds = "-" if r.server == FLOOR else f"{first['load_seconds']:.0f}"
        cells += [str(len(first["processes"])), load_seconds]
        cells += [_cell(row.get("server_over_netkit"), ".2f")]
        cells += [_cell(row.get("floor_over_server"), ".0%")]
        rows.append([r.server, r.workload, *cells, "; ".join(["ok", *r.notes])])
    return (
        h.format_table(headers, rows)
        + "\n(÷ netkit: the server's instructions per call ÷ netkit's, which reads like"
        " netkit's req/s ÷ the server's: above 1, netkit does less work; h2 floor share:"
        f" {FLOOR}'s unary count ÷ the server's, the part of its work that is bare h2)"
    )


def _workloads(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - set(g.WORKLOADS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(g.WORKLOADS)}")
    return [workload for workload in g.WORKLOADS if workload in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="unary calls (default 3000)")
    parser.add_argument(
        "--stream-calls", type=int, default=4, help="ServerStream calls of 10,000 messages"
    )
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(MENU)}")
    parser.add_argument(
        "--workloads", type=_workloads, default=list(g.WORKLOADS), help="unary, stream or both"
    )
    ins.add_callgrind_options(parser)
    args = parser.parse_args(argv)
    unary_clients, stream_clients = g.H2LOAD[g.UNARY][1], g.H2LOAD[g.STREAM][1]
    if args.calls < unary_clients or args.stream_calls < stream_clients or args.repeat < 1:
        parser.error(
            f"--calls must be >= {unary_clients} and --stream-calls >= {stream_clients}"
            " (h2load's clients), --repeat >= 1"
        )
    specs = h.select_servers(args.only, MENU)
    machine = ins.prepare_environment(args)
    versions = g.software_versions()
    started = time.time()
    results: list[ins.Result] = []
    with tempfile.TemporaryDirectory(prefix="netkit-grpc-callgrind-") as tmp:
        for spec in specs:
            if spec is not FLOOR_SPEC:
                results += measure_server(spec, args, versions, Path(tmp))
            elif g.UNARY in args.workloads:
                print(f"== {spec.name}: {spec.description}", flush=True)
                results.append(measure_floor(args, Path(tmp)))
    ratio_rows = ratios(results)
    print()
    print(render(results, ratio_rows))
    if args.json:
        calls = {g.UNARY: args.calls, g.STREAM: args.stream_calls}
        h2load = {
            w: g.h2load_argv(0, w, Path("BODY"), calls=calls[w], log=None)[1:-1] for w in calls
        }
        settings = {"calls": calls, "stream_messages_per_call": g.STREAM_COUNT, "h2load": h2load}
        benchmark = "benchmarks/grpc_instructions.py"
        ins.write_json(
            args, benchmark, machine, settings, started, results, ratio_rows, versions=versions
        )
    return 0


if __name__ == "__main__":
    h.run_main(main)
