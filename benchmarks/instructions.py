"""CPU instructions per request, counted by callgrind: a server cost that noise does not move.

Why: on a small shared VM, requests/s of the same server vary by 15-20 % between runs
(``run.py`` shows it), so "netkit reaches 75 % of the floor" cannot be read from two
throughput numbers.  The number of instructions a server executes to answer a request
does not depend on what else the machine is doing; valgrind's callgrind counts them.

For each server and protocol, two callgrind runs are made, each with a fresh server
started as ``valgrind --tool=callgrind --trace-children=yes
--callgrind-out-file=DIR/cg.%p <the run.py command>`` (pinned to CPU 0):

1. *loaded*: wait until the server answers ``GET /hello`` (curl), then send N requests
   with h2load (pinned to CPU 1) and stop the server with SIGINT;
2. *idle*: the same, with no h2load: the server only sits idle, by default for as long
   as the loaded run's h2load took (see ``--idle``), and is stopped with SIGINT.

Each process writes its own ``cg.PID`` file when it exits; the ``summary:`` (or
``totals:``) lines of all of them are summed, so servers that start worker processes
(hypercorn's parent, its worker and multiprocessing's resource tracker) are counted
whole.  Then

    instructions per request = (total_loaded - total_idle) / N

which cancels start-up, imports, readiness probes and shutdown: what is left is the
work of the N requests (and of the few connections h2load opened for them).

* h2c: ``h2load -t1 -c8 -m16 -n N URL`` (8 connections x 16 streams, as in run.py);
* HTTP/1.1: ``h2load --h1 -t1 -c32 -n N URL`` (32 connections, as wrk in run.py).

h2load gets no timeout of its own (it waits as long as the slowed server needs), but
the whole h2load run is bounded by ``--load-timeout``.

Usage::

    .venv/bin/python benchmarks/instructions.py [--requests 3000] [--only netkit,floor-h2]
        [--protocols h2c,http/1.1] [--repeat 1] [--json out.json]

Valgrind runs Python about 50 times slower: a server needs 10-60 s to start, and a
full run (7 server/protocol cases, 2 callgrind runs each) takes about 17 minutes on a
2-vCPU VM (33 with ``--repeat 2``).  docs/benchmarks.md has the method, its limits
and results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness as h

H2C_CLIENTS = 8
H2C_STREAMS = 16
H1_CLIENTS = 32

START_TIMEOUT = 600.0  # seconds: a server starts in 10-60 s under valgrind, more on a busy VM
PROBE_TIMEOUT = 120.0  # seconds for one curl probe: the first request runs lazy imports
STOP_TIMEOUT = 300.0  # seconds after SIGINT: Python's shutdown and callgrind's dump are slow
LOAD_TIMEOUT = 3600.0  # seconds for one h2load run against the slowed server

BASELINES = {  # the comparisons run.py makes, per protocol
    h.H1: ["hypercorn-trio", "uvicorn-h11", "floor-h11"],
    h.H2C: ["hypercorn-trio", "floor-h2"],
}

_COUNT_LINE = re.compile(r"^(summary|totals):\s+(\d+)")


@dataclass
class ProcessCount:
    """One process's ``cg.PID`` file: what ran and how many instructions it executed."""

    pid: int
    cmd: str
    instructions: int


@dataclass
class CallgrindRun:
    """One server process group run to exit under callgrind."""

    requests: int
    instructions: int  # summed over the processes
    processes: list[ProcessCount]
    load_seconds: float  # h2load's wall time (or the idle wait)
    wall_seconds: float  # start of the server to its exit
    load_command: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    """One server and load: instructions per request, and every pair of runs behind it."""

    server: str
    protocol: str
    status: str  # "ok", "n/a", or what went wrong
    command: list[str] = field(default_factory=list)
    requests: int = 0
    per_request: float | None = None  # median over --repeat pairs
    runs: list[dict[str, object]] = field(default_factory=list)  # every loaded/idle pair
    notes: list[str] = field(default_factory=list)
    workload: str = f"GET {h.PATH}"


@dataclass(frozen=True)
class Load:
    """What a case's loaded run sends and what its answers must add up to.

    Everything else about a callgrind run (valgrind, process accounting, the idle twin)
    is the same whatever the server serves, so this is the one thing a caller varies:
    this script makes one per protocol (``GET /hello``), ``grpc_instructions.py`` one
    per gRPC workload and server.  ``ready`` runs in the loaded *and* the idle run, so
    its cost cancels in the subtraction; ``stop_signal`` is what the server treats as
    "shut down cleanly" (it must exit by itself for callgrind to write its counts).
    """

    label: str  # names the case in progress lines and --keep directories
    protocol: str
    workload: str
    requests: int
    command: Callable[[int], list[str]]  # h2load's argv against a server on this port
    body_sizes: frozenset[int]  # response-body bytes of one request: any one of these
    ready: h.ReadyCheck
    stop_signal: int = signal.SIGINT


# --- callgrind -------------------------------------------------------------------------


def valgrind_version() -> str:
    done = subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


def valgrind_prefix(outdir: Path) -> list[str]:
    """The valgrind part of a server's command line; its files go to ``outdir``."""
    out_file = f"--callgrind-out-file={outdir / 'cg.%p'}"
    return ["valgrind", "--tool=callgrind", "--trace-children=yes", out_file]


def under_callgrind(spec: h.ServerSpec, outdir: Path) -> h.ServerSpec:
    """``spec`` with every candidate command run by valgrind's callgrind.

    ``--trace-children=yes`` makes valgrind follow ``exec``: hypercorn's worker is
    started by multiprocessing's "spawn" (fork, then exec of a new Python), and would
    otherwise run uncounted.  ``%p`` gives every process its own file.  (An exec'd
    process starts counting from zero.  A child that forked *without* exec would start
    with a copy of its parent's counts and be counted twice; none of these servers
    does that, and the JSON report lists every process with its command line.)
    """

    def command(port: int, idle: bool) -> list[list[str]]:
        return [[*valgrind_prefix(outdir), *argv] for argv in spec.command(port, idle)]

    return dataclasses.replace(spec, command=command)


def read_counts(outdir: Path) -> list[ProcessCount]:
    """Every process's instruction count from the ``cg.PID`` files in ``outdir``.

    callgrind writes ``summary: N`` near the top of the file (newer versions; older ones
    only ``totals: N`` at the end), with one event, Ir, as nothing else is collected.
    """
    counts = []
    for path in sorted(outdir.glob("cg.*")):
        pid, cmd, total = int(path.name.rsplit(".", 1)[1]), "", None
        with path.open(errors="replace") as lines:
            for line in lines:
                if line.startswith("cmd:"):
                    cmd = line[4:].strip()
                match = _COUNT_LINE.match(line)
                if match:
                    total = int(match.group(2))
                    if match.group(1) == "summary":
                        break
        if total is None:
            raise h.HarnessError(f"{path.name}: no summary or totals line (incomplete dump?)")
        counts.append(ProcessCount(pid, cmd, total))
    return counts


def _check_processes(counts: list[ProcessCount], seen: set[int]) -> None:
    """Every process that served must have left its counts: a process that was killed
    (SIGKILL after the stop timeout) writes nothing, and the sum would be too low."""
    missing = seen - {count.pid for count in counts}
    if missing:
        raise h.HarnessError(f"no callgrind output from process(es) {sorted(missing)}")
    if not counts:
        raise h.HarnessError("no callgrind output at all")


# --- load ------------------------------------------------------------------------------


def load_command(port: int, protocol: str, requests: int) -> list[str]:
    """h2load for exactly ``requests`` requests, without any timeout of its own."""
    argv = ["h2load", "-t1"]
    if protocol == h.H1:
        argv += ["--h1", f"-c{H1_CLIENTS}"]
    else:
        argv += [f"-c{H2C_CLIENTS}", f"-m{H2C_STREAMS}"]
    return [*argv, f"-n{requests}", f"http://{h.HOST}:{port}{h.PATH}"]


# The two spellings of the expected body: the peers' and netkit's compact one.
BODY_SIZES = {
    len(json.dumps(h.EXPECTED_JSON)),
    len(json.dumps(h.EXPECTED_JSON, separators=(",", ":"))),
}

_H2LOAD_PATTERNS = {
    "total": r"requests: (\d+) total",
    "done": r"(\d+) done",
    "errored": r"(\d+) errored",
    "timeout": r"(\d+) timeout",
    "2xx": r"status codes: (\d+) 2xx",
    "3xx": r"(\d+) 3xx",
    "4xx": r"(\d+) 4xx",
    "5xx": r"(\d+) 5xx",
    "data": r"\((\d+)\) data",
}


def hello_load(protocol: str, requests: int) -> Load:
    """``requests`` times ``GET /hello`` over ``protocol``; ready once curl gets it right."""

    def ready(port: int, timeout: float) -> str | None:
        return h.probe(port, protocol, timeout)

    def command(port: int) -> list[str]:
        return load_command(port, protocol, requests)

    body_sizes = frozenset(BODY_SIZES)
    return Load(protocol, protocol, f"GET {h.PATH}", requests, command, body_sizes, ready)


def run_load(argv: list[str], load: Load, timeout: float) -> list[str]:
    """Run h2load; every one of the load's requests must have been answered with a
    whole body, or the difference between the runs would not be the cost of that many
    answers.  Returns notes for the report.

    h2load's own "succeeded" is not enough, and too strict: over HTTP/1.1 it records a
    response's status only when the status line has a reason phrase.  h11 sends none by
    default (``HTTP/1.1 200 ``), so every answer of the h11 floor counts as "failed"
    although it is a complete 200 with the right body.  So the rule here is: all
    requests done, none errored or timed out, no status other than 2xx seen, and the
    response bodies (h2load's ``data`` bytes) add up to ``requests`` bodies.  (For gRPC,
    where a failed call is still a 200, the bodies are what tell: a failed call sends no
    message.)
    """
    requests = load.requests
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise h.HarnessError(f"h2load did not finish within {timeout:.0f} s") from exc
    stats: dict[str, int] = {}
    for key, pattern in _H2LOAD_PATTERNS.items():
        match = re.search(pattern, done.stdout)
        if match is None:
            detail = (done.stderr or done.stdout).strip()[-300:]
            raise h.HarnessError(f"h2load failed (exit {done.returncode}, no {key!r}): {detail}")
        stats[key] = int(match.group(1))
    problems = []
    if stats["total"] != requests or stats["done"] != requests:
        problems.append(f"{stats['done']} of {requests} requests done")
    if stats["errored"] or stats["timeout"]:
        problems.append(f"{stats['errored']} errored, {stats['timeout']} timed out")
    if stats["3xx"] or stats["4xx"] or stats["5xx"]:
        problems.append(f"non-2xx statuses: {stats['3xx']} 3xx, {stats['4xx']} 4xx, ")
        problems[-1] += f"{stats['5xx']} 5xx"
    if stats["data"] not in {requests * size for size in load.body_sizes}:
        problems.append(f"{stats['data']} bytes of bodies for {requests} requests")
    if problems:
        raise h.HarnessError("h2load: " + "; ".join(problems))
    if stats["2xx"] != requests:
        return [
            f"h2load saw {stats['2xx']} of {requests} statuses (no reason phrase);"
            " all bodies arrived"
        ]
    return []


# --- one callgrind run -----------------------------------------------------------------


def callgrind_run(
    spec: h.ServerSpec,
    load: Load,
    idle_seconds: float | None,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[CallgrindRun, list[str]]:
    """Start ``spec`` under callgrind, send it ``load`` (or, with ``idle_seconds``, leave
    it idle that long), stop it with the load's signal and sum its processes' counts.

    Returns the run and the server's command line (without valgrind).
    """
    outdir = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=workdir))
    wrapped = under_callgrind(spec, outdir)
    requests = 0 if idle_seconds is not None else load.requests
    notes: list[str] = []
    started = time.monotonic()
    with h.running_server(
        wrapped,
        workdir,
        pin=args.pin,
        ready=load.ready,
        start_timeout=args.start_timeout,
        probe_timeout=PROBE_TIMEOUT,
    ) as server:
        argv: list[str] = []
        seen = set(server.pids())
        load_started = time.monotonic()
        if idle_seconds is None:
            argv = h.pinned(load.command(server.port), h.CLIENT_CPU if args.pin else None)
            notes += run_load(argv, load, args.load_timeout)
        else:
            time.sleep(idle_seconds)
        load_seconds = time.monotonic() - load_started
        seen |= set(server.pids())
        if not server.alive():
            notes.append(f"server exited before it was stopped ({server.process.returncode})")
        # SIGINT, as Ctrl-C would (or the signal the load names): every server shuts
        # down by itself, so every process reaches valgrind's exit and writes its counts.
        # A SIGKILL after the timeout would lose them; _check_processes reports which.
        h.stop(server.process, timeout=STOP_TIMEOUT, signum=load.stop_signal)
        if server.process.returncode == -signal.SIGKILL:
            name = signal.Signals(load.stop_signal).name
            raise h.HarnessError(f"did not exit within {STOP_TIMEOUT:.0f} s of {name}; killed")
        command = server.argv[len(valgrind_prefix(outdir)) :]
    wall_seconds = time.monotonic() - started
    counts = read_counts(outdir)
    _check_processes(counts, seen)
    if args.keep:
        kept = args.keep / f"{spec.name}-{load.label.replace('/', '')}-{requests}-{outdir.name}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(outdir, kept)
    else:
        shutil.rmtree(outdir)
    run = CallgrindRun(
        requests=requests,
        instructions=sum(count.instructions for count in counts),
        processes=counts,
        load_seconds=round(load_seconds, 1),
        wall_seconds=round(wall_seconds, 1),
        load_command=argv,
        notes=notes,
    )
    return run, command


# --- driving the servers ---------------------------------------------------------------


def measure(spec: h.ServerSpec, load: Load, args: argparse.Namespace, workdir: Path) -> Result:
    """``--repeat`` pairs of callgrind runs (loaded, then idle) of one server and load.

    The idle run comes second so that, with ``--idle matched``, it can sit idle exactly
    as long as the loaded run's h2load took: uvicorn wakes every 0.1 s and hypercorn's
    worker polls its shutdown event every 0.1 s, whether requests come or not.  Under
    valgrind those wake-ups cost per second of the run, and at ~50x fewer requests per
    second than at full speed they would be charged to the requests.  Matching the idle
    time subtracts them; at full speed they are negligible.
    """
    result = Result(spec.name, load.protocol, "ok", requests=load.requests)
    result.workload = load.workload
    values: list[float] = []
    for i in range(args.repeat):
        tag = f"   {load.label} #{i + 1}" if args.repeat > 1 else f"   {load.label}"
        try:
            loaded, command = callgrind_run(spec, load, None, args, workdir)
            result.command = command
            print(
                f"{tag}: loaded: {loaded.instructions:,} instructions in "
                f"{len(loaded.processes)} process(es), h2load {loaded.load_seconds:.0f} s",
                flush=True,
            )
            idle_for = loaded.load_seconds if args.idle == "matched" else 0.0
            idle, _ = callgrind_run(spec, load, idle_for, args, workdir)
            print(
                f"{tag}: idle:   {idle.instructions:,} instructions in "
                f"{len(idle.processes)} process(es), idle {idle.load_seconds:.0f} s",
                flush=True,
            )
        except h.HarnessError as exc:
            print(f"{tag}: {exc}", flush=True)
            result.notes.append(f"pair {i + 1}: {str(exc).splitlines()[0]}")
            continue
        notes = loaded.notes + idle.notes
        if len(loaded.processes) != len(idle.processes):
            notes.append(f"{len(loaded.processes)} processes loaded, {len(idle.processes)} idle")
        for note in notes:  # the same note from every pair is said once
            if note not in result.notes:
                result.notes.append(note)
        value = (loaded.instructions - idle.instructions) / load.requests
        values.append(value)
        result.runs.append(
            {"per_request": round(value), "loaded": asdict(loaded), "idle": asdict(idle)}
        )
        print(f"{tag}: {value:,.0f} instructions per request", flush=True)
    if not values:
        result.status = "error: " + "; ".join(result.notes)
    else:
        result.per_request = statistics.median(values)
    return result


def measure_server(spec: h.ServerSpec, args: argparse.Namespace, workdir: Path) -> list[Result]:
    print(f"== {spec.name}: {spec.description}", flush=True)
    results = []
    for protocol in args.protocols:
        if protocol in spec.protocols:
            results.append(measure(spec, hello_load(protocol, args.requests), args, workdir))
        else:
            results.append(Result(spec.name, protocol, "n/a"))
    return results


def ratios(results: list[Result]) -> list[dict[str, object]]:
    """netkit ÷ each baseline (instructions: below 1, netkit does less work per request)
    and its inverse, baseline ÷ netkit, which reads like a throughput ratio."""
    by_key = {(r.server, r.protocol): r for r in results}
    out: list[dict[str, object]] = []
    for protocol, baselines in BASELINES.items():
        ours = by_key.get(("netkit", protocol))
        for baseline in baselines:
            theirs = by_key.get((baseline, protocol))
            if ours is None or theirs is None:
                continue  # not selected with --only / --protocols
            row: dict[str, object] = {
                "protocol": protocol,
                "baseline": baseline,
                "netkit_over_baseline": None,
                "baseline_over_netkit": None,
            }
            if ours.per_request and theirs.per_request:
                row["netkit_over_baseline"] = ours.per_request / theirs.per_request
                row["baseline_over_netkit"] = theirs.per_request / ours.per_request
            out.append(row)
    return out


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def render(results: list[Result], ratio_rows: list[dict[str, object]]) -> str:
    headers = ["server", "protocol", "instructions/request", "each pair", "processes"]
    headers += ["h2load s", "status"]
    rows = []
    for r in results:
        if r.per_request is None:
            rows.append([r.server, r.protocol, "n/a", "", "", "", r.status[:100]])
            continue
        each = ", ".join(f"{run['per_request']:,}" for run in r.runs)
        first = r.runs[0]["loaded"]
        assert isinstance(first, dict)
        cells = [_fmt(r.per_request), each, str(len(first["processes"]))]
        cells.append(f"{first['load_seconds']:.0f}")
        rows.append([r.server, r.protocol, *cells, "; ".join(["ok", *r.notes])])
    text = h.format_table(headers, rows)
    if ratio_rows:
        table = [
            [
                str(row["protocol"]),
                f"netkit / {row['baseline']}",
                _fmt(row["netkit_over_baseline"], ".2f"),  # type: ignore[arg-type]
                _fmt(row["baseline_over_netkit"], ".2f"),  # type: ignore[arg-type]
            ]
            for row in ratio_rows
        ]
        text += (
            "\n\nratios (instructions: lower is better for netkit; the inverse reads like"
            " a req/s ratio, higher is better)\n"
        )
        headers = ["protocol", "comparison", "netkit ÷ baseline", "baseline ÷ netkit"]
        text += h.format_table(headers, table)
    return text


def _protocols(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    aliases = {"h1": h.H1, "http1": h.H1, "http/1.1": h.H1, "h2c": h.H2C, "h2": h.H2C}
    unknown = [name for name in names if name not in aliases]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {unknown}; use h2c, http/1.1")
    chosen = {aliases[name] for name in names}
    return [protocol for protocol in h.PROTOCOLS if protocol in chosen]


def add_callgrind_options(parser: argparse.ArgumentParser) -> None:
    """The options of every callgrind benchmark (this one and ``grpc_instructions.py``):
    what ``measure`` and ``callgrind_run`` read from ``args``."""
    parser.add_argument(
        "--repeat", type=int, default=1, help="loaded/idle pairs per case; the median is kept"
    )
    parser.add_argument(
        "--idle",
        choices=["matched", "zero"],
        default="matched",
        help="how long the idle run idles: as long as the loaded run's h2load took"
        " (default), or not at all",
    )
    parser.add_argument("--json", type=Path, help="write raw results to this file")
    parser.add_argument(
        "--keep", type=Path, help="keep the callgrind files here (for callgrind_annotate)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=START_TIMEOUT,
        help=f"seconds for a server under valgrind to answer (default {START_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--load-timeout",
        type=float,
        default=LOAD_TIMEOUT,
        help=f"seconds for one h2load run (default {LOAD_TIMEOUT:.0f})",
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")


def prepare_environment(args: argparse.Namespace, *tools: str) -> dict[str, object]:
    """Check for valgrind, h2load and ``tools``, unpin when pinning is impossible, and
    describe the machine (taken at the start: its "date" is when the benchmark began)."""
    h.install_signal_handlers()
    h.require_tools("valgrind", "h2load", *tools)
    if args.pin and not h.can_pin():
        print("note: taskset or CPUs 0 and 1 unavailable; running unpinned", file=sys.stderr)
        args.pin = False
    machine = h.machine_info()
    machine["valgrind"] = valgrind_version()
    return machine


def write_json(
    args: argparse.Namespace,
    benchmark: str,
    machine: dict[str, object],
    settings: dict[str, object],
    started: float,
    results: list[Result],
    ratio_rows: list[dict[str, object]],
    **extra: object,
) -> None:
    """The ``--json`` report: the benchmark's own ``settings`` and ``extra`` fields, plus
    the callgrind options every such benchmark shares."""
    settings = {**settings, "repeat": args.repeat, "idle": args.idle, "pinned": args.pin}
    settings["valgrind"] = valgrind_prefix(Path("DIR"))[1:]
    report = {"benchmark": benchmark, "machine": machine, **extra, "settings": settings}
    report["elapsed_s"] = round(time.time() - started, 1)
    report["results"] = [asdict(r) for r in results]
    report["ratios"] = ratio_rows
    h.write_report(args.json, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per loaded run (default 3000)"
    )
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(h.SERVERS)}")
    parser.add_argument(
        "--protocols",
        type=_protocols,
        default=list(h.PROTOCOLS),
        help="comma-separated subset of: http/1.1 (or h1), h2c (default both)",
    )
    add_callgrind_options(parser)
    args = parser.parse_args(argv)
    if args.requests < H1_CLIENTS or args.repeat < 1:
        parser.error(f"--requests must be >= {H1_CLIENTS} (h2load's clients), --repeat >= 1")
    specs = h.select_servers(args.only)
    machine = prepare_environment(args, "curl")
    started = time.time()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="netkit-callgrind-") as tmp:
        for spec in specs:
            results.extend(measure_server(spec, args, Path(tmp)))
    ratio_rows = ratios(results)
    print()
    print(render(results, ratio_rows))
    if args.json:
        h2load = {
            protocol: load_command(0, protocol, args.requests)[1:-1] for protocol in h.PROTOCOLS
        }
        settings = {"requests": args.requests, "h2load": h2load}
        write_json(
            args, "benchmarks/instructions.py", machine, settings, started, results, ratio_rows
        )
    return 0


if __name__ == "__main__":
    h.run_main(main)
