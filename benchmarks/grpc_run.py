"""gRPC throughput of netkit against grpclib, purerpc and grpcio (threaded and asyncio).

Every server serves netkit's ``netkit.echo.v1.Echo`` service over h2c and is driven by
h2load, one server at a time, server pinned to CPU 0 and h2load to CPU 1:

* unary: ``Echo/Unary`` with a 16-byte payload, ``h2load -c8 -m16``: requests/s and
  p50/p99 latency (from h2load's ``--log-file``);
* streaming: ``Echo/ServerStream`` with count=10,000 and a 1 KiB payload, so every
  call is ~10 MB of responses, ``h2load -c2 -m2``: MB/s of response DATA.

h2load sees HTTP statuses only, and a failed gRPC call is still HTTP 200 (the error is
in the grpc-status trailer).  So before each workload, and again after it, a real gRPC
client (grpcio, in a subprocess: ``apps/grpcio_echo.py --mode check``) makes the same
calls and checks grpc-status 0 and every echoed byte.

purerpc lives in its own virtual environment (``benchmarks/.venvs/purerpc``, created on
first use): it needs h2<4 and netkit needs h2>=4.1.

Usage::

    .venv/bin/python benchmarks/grpc_run.py [--duration 10] [--repeat 3] [--only netkit,grpclib]
                                            [--workloads unary,stream] [--json out.json]

A server that does not start or answers wrongly gets that as its status; the others
still run. ``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: netkit
and grpclib, unary only, one second, no warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness as h

# run.py's h2load plumbing (one copy of the summary parser and the percentile rule).
from netkit.protos.echo.v1 import echo_pb2

SERVICE = "netkit.echo.v1.Echo"
UNARY = "unary"
STREAM = "stream"
WORKLOADS = (UNARY, STREAM)

UNARY_PAYLOAD = 16  # bytes per request and per response
STREAM_PAYLOAD = 1024  # bytes per response message
STREAM_COUNT = 10_000  # responses per ServerStream call (~10 MB)
H2LOAD = {  # threads, clients, streams per client
    # 128 calls in flight, as run.py's h2c case: the server, not the client, is the limit.
    UNARY: (1, 8, 16),
    # 4 calls of ~10 MB in flight: the server always has data to send, and h2load's
    # default 1 GiB windows never stop it; more calls would only add memory.
    STREAM: (1, 2, 2),
}
CHECK_TIMEOUT = 60.0  # seconds for one full verification (10,000 messages on a slow server)
PURERPC_VERSION = "0.8.0"
PURERPC_VENV = h.BENCH_DIR / ".venvs" / "purerpc"
PURERPC_PYTHON = PURERPC_VENV / "bin" / "python"
VENV_TIMEOUT = 600.0  # seconds for creating the purerpc venv (pip downloads)

BASELINES = ["grpclib", "purerpc", "grpcio-sync", "grpcio-aio"]


@dataclass
class Measurement:
    server: str
    workload: str  # "unary" or "stream"
    status: str  # "ok", "failed to start", "verify: ...", or what went wrong
    command: list[str] = field(default_factory=list)
    calls: int = 0  # gRPC calls h2load completed in the measured period
    duration_s: float = 0.0
    rps: float | None = None  # completed calls per second
    mbps: float | None = None  # streaming: MB (10**6 bytes) of response DATA per second
    messages_per_s: float | None = None  # streaming: mbps in response messages
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    failed: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, float | None]] = field(default_factory=list)  # every repetition
    notes: list[str] = field(default_factory=list)
    server_log: list[str] = field(default_factory=list)  # its last lines, after it stopped
    cpu: dict[str, float] = field(default_factory=dict)  # % of a CPU: server, client, other

    @property
    def rate(self) -> float | None:
        """The figure the runs are ranked by: req/s for unary, MB/s for streaming."""
        return self.rps if self.workload == UNARY else self.mbps


# --- request bodies --------------------------------------------------------------------


def _payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))  # not all zeros: an echo must copy it


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: uncompressed flag, 4-byte length, message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def request_body(workload: str) -> bytes:
    if workload == UNARY:
        message = echo_pb2.EchoRequest(payload=_payload(UNARY_PAYLOAD))
    else:
        message = echo_pb2.EchoStreamRequest(payload=_payload(STREAM_PAYLOAD), count=STREAM_COUNT)
    return grpc_frame(message.SerializeToString())


def response_frame(size: int) -> bytes:
    """One framed ``EchoResponse`` carrying a ``size``-byte payload, as the servers send."""
    return grpc_frame(echo_pb2.EchoResponse(payload=_payload(size)).SerializeToString())


STREAM_MESSAGE_BYTES = len(response_frame(STREAM_PAYLOAD))


def response_data_bytes(workload: str) -> int:
    """DATA bytes of one whole successful call's responses (h2load's ``data`` per call)."""
    if workload == UNARY:
        return len(response_frame(UNARY_PAYLOAD))
    return STREAM_COUNT * STREAM_MESSAGE_BYTES


# --- servers ---------------------------------------------------------------------------


def _netkit(port: int, idle: bool) -> list[list[str]]:
    cmd = [h.PYTHON, "-m", "netkit", "serve", "netkit.examples.grpc_echo:app"]
    return [[*cmd, "--host", h.HOST, "--port", str(port), "--log-level", "WARNING"]]


def _app(
    script: str, *extra: str, python: Path | str = h.PYTHON
) -> Callable[[int, bool], list[list[str]]]:
    def command(port: int, idle: bool) -> list[list[str]]:
        argv = [str(python), str(h.APPS_DIR / script), *extra]
        return [[*argv, "--host", h.HOST, "--port", str(port)]]

    return command


SERVERS: dict[str, h.ServerSpec] = {
    spec.name: spec
    for spec in (
        h.ServerSpec("netkit", "netkit serve netkit.examples.grpc_echo:app", (h.H2C,), _netkit),
        h.ServerSpec(
            "grpclib",
            "grpclib 0.4 server, asyncio, hand-written __mapping__",
            (h.H2C,),
            _app("grpclib_echo.py"),
        ),
        h.ServerSpec(
            "purerpc",
            f"purerpc {PURERPC_VERSION} on anyio's trio backend, own venv",
            (h.H2C,),
            _app("purerpc_echo.py", python=PURERPC_PYTHON),
        ),
        h.ServerSpec(
            "grpcio-sync",
            "grpcio grpc.server, ThreadPoolExecutor(16), generic handlers",
            (h.H2C,),
            _app("grpcio_echo.py", "--mode", "sync"),
        ),
        h.ServerSpec(
            "grpcio-aio",
            "grpcio grpc.aio.server, generic handlers",
            (h.H2C,),
            _app("grpcio_echo.py", "--mode", "aio"),
        ),
    )
}


def _purerpc_venv_problem() -> str | None:
    """``None`` when the purerpc venv has what the server needs, else what it lacks."""
    if not PURERPC_PYTHON.exists():
        return "no venv"
    script = (
        "import importlib.metadata as m, json, sys;"
        f"sys.path.insert(0, {str(h.REPO / 'netkit/protos/echo/v1')!r});"
        "import purerpc, trio, echo_pb2;"
        "names = ('purerpc', 'protobuf', 'trio', 'anyio', 'h2');"
        "print(json.dumps({name: m.version(name) for name in names}))"
    )
    try:
        done = subprocess.run(
            [str(PURERPC_PYTHON), "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=h.BENCH_DIR,  # not the repo root: ``netkit`` must not be importable there
        )
    except subprocess.TimeoutExpired:
        return "the venv's python did not answer"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["import failed"])[-1]
    have = json.loads(done.stdout)
    wrong = [
        f"{name} {have.get(name)} instead of {version}"
        for name, version in _purerpc_pins().items()
        if have.get(name) != version
    ]
    return "; ".join(wrong) or None


def _purerpc_pins() -> dict[str, str]:
    """purerpc itself, and protobuf and trio exactly as netkit's venv has them.

    purerpc declares no protobuf requirement, so the venv can have the protobuf that
    netkit's generated ``echo_pb2`` was made for (the generated code checks the runtime
    version when imported); trio is pinned so that purerpc and netkit run on the same
    trio.  anyio and h2 are whatever purerpc's own requirements resolve to.
    """
    return {
        "purerpc": PURERPC_VERSION,
        "protobuf": importlib.metadata.version("protobuf"),
        "trio": importlib.metadata.version("trio"),
    }


def ensure_purerpc_venv() -> dict[str, str]:
    """Create or repair ``benchmarks/.venvs/purerpc``; return its package versions.

    Raises :class:`HarnessError` when that fails (e.g. PyPI unreachable): purerpc is
    then reported as failed to start and the other servers still run.
    """
    problem = _purerpc_venv_problem()
    if problem is not None:
        print(f"   purerpc venv: {problem}; (re)creating {PURERPC_VENV}", flush=True)
        pins = [f"{name}=={version}" for name, version in _purerpc_pins().items()]
        steps = [
            [h.PYTHON, "-m", "venv", "--clear", str(PURERPC_VENV)],
            [str(PURERPC_PYTHON), "-m", "pip", "install", "--quiet", *pins],
        ]
        for argv in steps:
            done = h.run_tool(argv, VENV_TIMEOUT)
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip()[-300:]
                raise h.HarnessError(f"{' '.join(argv[:4])} failed: {detail}")
        problem = _purerpc_venv_problem()
        if problem is not None:
            raise h.HarnessError(f"purerpc venv still unusable: {problem}")
    done = h.run_tool([str(PURERPC_PYTHON), "-m", "pip", "list", "--format=json"], 60)
    wanted = {"purerpc", "protobuf", "trio", "anyio", "h2"}
    return {p["name"]: p["version"] for p in json.loads(done.stdout) if p["name"] in wanted}


# --- verification with a real gRPC client ----------------------------------------------


def grpc_check(
    port: int, timeout: float, *, count: int, payload: int, cpu: int | None
) -> str | None:
    """Unary and ServerStream with grpcio, in a subprocess; ``None`` if both are right.

    A subprocess because grpcio starts threads that must not live in the process that
    forks the servers and h2load; its CPU time is outside every measured interval.
    """
    argv = [h.PYTHON, str(h.APPS_DIR / "grpcio_echo.py"), "--mode", "check"]
    argv += ["--host", h.HOST, "--port", str(port), "--count", str(count)]
    argv += ["--payload-size", str(payload), "--timeout", str(timeout)]
    try:
        done = subprocess.run(
            h.pinned(argv, cpu),
            capture_output=True,
            text=True,
            timeout=timeout + 30,  # + interpreter start-up and grpcio import
            check=False,
            cwd=h.REPO,
            env=h.server_env(),
        )
    except subprocess.TimeoutExpired:
        return f"grpcio check did not finish within {timeout + 30:.0f} s"
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"grpcio check exit {done.returncode}: {done.stderr.strip()[-200:]}"
    return None if result["ok"] else "; ".join(result["problems"])[:300]


def verify(port: int, workload: str, cpu: int | None, timeout: float = CHECK_TIMEOUT) -> str | None:
    """The full check for one workload: the exact payload size and message count."""
    if workload == UNARY:
        return grpc_check(port, timeout, count=3, payload=UNARY_PAYLOAD, cpu=cpu)
    return grpc_check(port, timeout, count=STREAM_COUNT, payload=STREAM_PAYLOAD, cpu=cpu)


# --- load ------------------------------------------------------------------------------

_TRAFFIC = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data")
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")


def h2load_argv(
    port: int, workload: str, body: Path, *, seconds: int = 0, calls: int = 0, log: Path | None
) -> list[str]:
    """h2load making ``workload``'s calls for ``seconds`` (``-D``), or exactly ``calls``
    of them (``-n``, for ``grpc_instructions.py``), with the body file ``body``."""
    threads, clients, streams = H2LOAD[workload]
    method = "Unary" if workload == UNARY else "ServerStream"
    argv = ["h2load", f"-t{threads}", f"-c{clients}", f"-m{streams}"]
    argv.append(f"-n{calls}" if calls else f"-D{seconds}s")
    argv += ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if log is not None:
        argv.append(f"--log-file={log}")
    argv.append(f"http://{h.HOST}:{port}/{SERVICE}/{method}")
    return argv


def _read_log(log: Path) -> tuple[list[int], int, int]:
    """Latencies (us) of h2load's ``--log-file`` rows, rows not 200, rows with status 0.

    Rows are: start time, HTTP status (-1: the stream failed), microseconds to the end
    of the response.  Status 0 marks a call in flight when the warm-up ended (its
    response head was seen during the warm-up); h2load counts it as succeeded.
    """
    latencies: list[int] = []
    bad = no_status = 0
    with log.open() as rows:
        for row in rows:
            cols = row.split("\t")
            if len(cols) >= 3:
                latencies.append(int(cols[2]))
                status = int(cols[1])
                no_status += status == 0
                bad += status not in (0, 200)
    return sorted(latencies), bad, no_status


def run_h2load(
    port: int, workload: str, duration: int, warmup: int, cpu: int | None
) -> Measurement:
    """One measured h2load run (after the warm-up, if any).

    Unary uses h2load's ``--warm-up-time``: request counts and the log cover the
    measured period only.  Streaming warms up with a separate, discarded run instead,
    because h2load (1.52) keeps adding DATA bytes received during the warm-up to its
    ``data`` total, and that total is what streaming is measured by.  Calls still in
    flight when the measured run stops count neither as done nor as failed; their bytes
    so far are in ``data``, as they should be for a rate.
    """
    with tempfile.TemporaryDirectory(prefix="netkit-grpc-h2load-") as tmp:
        body, log = Path(tmp) / "body.bin", Path(tmp) / "requests.tsv"
        body.write_bytes(request_body(workload))
        use_warmup_flag = workload == UNARY and h.h2load_has_warmup()
        if warmup > 0 and not use_warmup_flag:
            argv = h2load_argv(port, workload, body, seconds=warmup, log=None)
            h.run_tool(h.pinned(argv, cpu), warmup + h.TOOL_GRACE)
        argv = h2load_argv(port, workload, body, seconds=duration, log=log)
        if warmup > 0 and use_warmup_flag:
            argv.insert(-1, f"--warm-up-time={warmup}s")
        wait = duration + (warmup if use_warmup_flag else 0) + h.TOOL_GRACE
        done = h.run_tool(h.pinned(argv, cpu), wait)
        if done.returncode != 0 or "finished in" not in done.stdout:
            detail = (done.stderr or done.stdout).strip()[-300:]
            raise h.HarnessError(f"h2load failed (exit {done.returncode}): {detail}")
        stats = h.parse_h2load(done.stdout)
        traffic = _TRAFFIC.search(done.stdout)
        finished = _FINISHED.search(done.stdout)
        if traffic is None or finished is None:
            raise h.HarnessError("could not find the traffic totals in h2load's output")
        latencies, bad, no_status = _read_log(log)
    if not stats["done"] and not int(traffic.group(3)):
        raise h.HarnessError("h2load completed no calls and got no data (server not answering?)")
    errors = {
        "failed": int(stats["failed"]),  # includes non-2xx/3xx responses and "errored"
        "errored": int(stats["errored"]),
        "timeout": int(stats["timeout"]),
        "not_200_logged": bad,
        "no_status_logged": no_status,
    }
    m = Measurement(server="", workload=workload, status="ok", command=argv)
    m.calls = int(stats["done"])
    m.rps = stats["rps"]
    if workload == UNARY:
        m.duration_s = m.calls / m.rps if m.rps else float(duration)
    else:  # no warm-up in this run: "finished in" is the measured period
        m.duration_s = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
        data = int(traffic.group(3))
        m.mbps = data / m.duration_s / 1e6
        m.messages_per_s = data / m.duration_s / STREAM_MESSAGE_BYTES
        errors["data_bytes"] = data
    if latencies:
        m.p50_ms = h.percentile(latencies, 50) / 1000
        m.p90_ms = h.percentile(latencies, 90) / 1000
        m.p99_ms = h.percentile(latencies, 99) / 1000
        m.max_ms = latencies[-1] / 1000
    m.failed = max(errors["failed"] + errors["timeout"], bad)  # the two overlap
    m.errors = errors
    return m


# --- driving the servers ---------------------------------------------------------------


def _median_run(runs: list[Measurement]) -> Measurement:
    ordered = sorted(runs, key=lambda m: m.rate or 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [
        {"rps": m.rps, "mbps": m.mbps, "p99_ms": m.p99_ms, "failed": m.failed, **m.cpu}
        for m in runs
    ]
    return chosen


def measure_workload(
    spec: h.ServerSpec, workload: str, args: argparse.Namespace, logdir: Path
) -> Measurement:
    """``--repeat`` runs of one workload against a fresh server process.

    The server is verified with grpcio before the first run and again after the last;
    a server that dies between runs is restarted (and that is noted), as in run.py.
    """
    cpu = h.CLIENT_CPU if args.pin else None

    def ready(port: int, timeout: float) -> str | None:  # cheap: start-up polls it
        return grpc_check(port, timeout, count=3, payload=UNARY_PAYLOAD, cpu=cpu)

    runs: list[Measurement] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        server: h.RunningServer | None = None
        for i in range(args.repeat):
            if server is None or not server.alive():
                if server is not None:
                    stack.close()  # stop what is left of the dead server
                try:
                    server = stack.enter_context(
                        h.running_server(spec, logdir, pin=args.pin, ready=ready)
                    )
                except h.HarnessError as exc:
                    print(f"   {workload}: failed to start: {exc}", flush=True)
                    if i == 0:
                        return Measurement(spec.name, workload, "failed to start", notes=[str(exc)])
                    notes.append(f"could not restart after run {i}")
                    break
                if i == 0:
                    print(f"   {workload}: started {' '.join(server.argv)}", flush=True)
                problem = verify(server.port, workload, cpu)
                if problem is not None:
                    print(f"   {workload}: verification failed: {problem}", flush=True)
                    return Measurement(spec.name, workload, f"verify: {problem}")
                warmup = args.warmup
            else:
                warmup = 0  # the same server process, warm already
            try:
                before = h.cpu_sample(server.process.pid)
                runs.append(run_h2load(server.port, workload, args.duration, warmup, cpu))
                runs[-1].cpu = h.cpu_usage(before, h.cpu_sample(server.process.pid))
            except h.HarnessError as exc:
                notes.append(f"run {i + 1}: {exc}")
                print(f"   {workload}: run {i + 1}: {exc}", flush=True)
            time.sleep(args.pause)
            if not server.alive():
                notes.append(f"server died after run {i + 1}: {h.last_error(server)}")
                print(f"   {workload}: {notes[-1]}", flush=True)
        if server is not None and server.alive():
            problem = verify(server.port, workload, cpu)
            if problem is not None:
                notes.append(f"wrong answers after the load: {problem}")
                print(f"   {workload}: {notes[-1]}", flush=True)
    # Every server logs at WARNING or quieter, so anything here is worth a look
    # (purerpc warns about every connection the client drops: h2load at its end).
    log = server.log_tail(10).splitlines() if server is not None else []
    if log:
        print(f"   {workload}: server log ends with: {log[-1][:120]}", flush=True)
    if not runs:
        status = "error: " + "; ".join(notes)
        return Measurement(spec.name, workload, status, notes=notes, server_log=log)
    m = _median_run(runs)
    m.server = spec.name
    m.notes = notes
    m.server_log = log
    if workload == UNARY:
        figure = f"{_fmt(m.rps, ',.0f')} req/s, p99 {_fmt(m.p99_ms, '.2f')} ms"
    else:
        figure = f"{_fmt(m.mbps, ',.1f')} MB/s, {m.calls} calls done"
    print(
        f"   {workload}: {figure}, failed {m.failed}, srv CPU {m.cpu.get('server_cpu_pct')}%"
        + (f" ({'; '.join(notes)})" if notes else ""),
        flush=True,
    )
    return m


def ratios(results: list[Measurement]) -> list[dict[str, object]]:
    """netkit ÷ each peer: req/s and p99 (unary), MB/s (streaming)."""
    by_key = {(m.server, m.workload): m for m in results if m.status == "ok"}
    out: list[dict[str, object]] = []
    for workload in WORKLOADS:
        ours = by_key.get(("netkit", workload))
        for baseline in BASELINES:
            theirs = by_key.get((baseline, workload))
            if ours is None or theirs is None:
                continue  # not selected, or no result
            row: dict[str, object] = {"workload": workload, "baseline": baseline}
            if workload == UNARY:
                row["rps_ratio"] = ours.rps / theirs.rps if ours.rps and theirs.rps else None
                p99 = ours.p99_ms and theirs.p99_ms
                row["p99_ratio"] = ours.p99_ms / theirs.p99_ms if p99 else None  # type: ignore[operator]
            else:
                row["mbps_ratio"] = ours.mbps / theirs.mbps if ours.mbps and theirs.mbps else None
            out.append(row)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _status_cell(m: Measurement) -> str:
    died = sum(note.startswith("server died") for note in m.notes)
    notes = [note for note in m.notes if not note.startswith("server died")]
    crashes = [f"server died after {died} of {len(m.runs)} runs"] if died else []
    return "; ".join(["ok", *crashes, *notes])


def _cpu_cells(m: Measurement) -> list[str]:
    others = [o for run in m.runs if (o := run.get("other_cpu_pct")) is not None]
    return [
        _fmt(m.cpu.get("server_cpu_pct"), ".0f"),
        _fmt(max(others), ".0f") if others else "-",
    ]


def render(results: list[Measurement], ratio_rows: list[dict[str, object]]) -> str:
    parts = []
    unary = [m for m in results if m.workload == UNARY]
    if unary:
        headers = ["server", "req/s", "req/s range", "p50 ms", "p99 ms", "failed"]
        headers += ["srv CPU%", "other CPU%", "status"]
        rows = []
        for m in unary:
            if m.status != "ok":
                rows.append([m.server, *["n/a"] * 7, m.status[:100]])
                continue
            rates = [r for run in m.runs if (r := run.get("rps")) is not None]
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "-"
            cells = [_fmt(m.rps, ",.0f"), spread, _fmt(m.p50_ms, ".2f"), _fmt(m.p99_ms, ".2f")]
            rows.append([m.server, *cells, str(m.failed), *_cpu_cells(m), _status_cell(m)])
        title = f"unary: Echo/Unary, {UNARY_PAYLOAD}-byte payload, h2load -c{H2LOAD[UNARY][1]}"
        parts.append(f"{title} -m{H2LOAD[UNARY][2]}\n" + h.format_table(headers, rows))
    stream = [m for m in results if m.workload == STREAM]
    if stream:
        headers = ["server", "MB/s", "MB/s range", "msg/s", "calls done", "failed"]
        headers += ["srv CPU%", "other CPU%", "status"]
        rows = []
        for m in stream:
            if m.status != "ok":
                rows.append([m.server, *["n/a"] * 7, m.status[:100]])
                continue
            rates = [r for run in m.runs if (r := run.get("mbps")) is not None]
            spread = f"{min(rates):,.1f}-{max(rates):,.1f}" if len(rates) > 1 else "-"
            cells = [_fmt(m.mbps, ",.1f"), spread, _fmt(m.messages_per_s, ",.0f"), str(m.calls)]
            rows.append([m.server, *cells, str(m.failed), *_cpu_cells(m), _status_cell(m)])
        title = (
            f"streaming: Echo/ServerStream, {STREAM_COUNT:,} x {STREAM_PAYLOAD} B per call,"
            f" h2load -c{H2LOAD[STREAM][1]} -m{H2LOAD[STREAM][2]}; MB/s = 10^6 bytes of"
            " response DATA per second"
        )
        parts.append(title + "\n" + h.format_table(headers, rows))
    text = "\n\n".join(parts)
    text += (
        "\n(srv CPU%: server processes, % of one CPU, median run; other CPU%: all other"
        " processes on the machine, worst run: when high, other work competed for the CPUs)"
    )
    if ratio_rows:
        table = []
        for r in ratio_rows:
            if r["workload"] == UNARY:
                cells = [_fmt(r["rps_ratio"], ".2f"), _fmt(r["p99_ratio"], ".2f"), "-"]  # type: ignore[arg-type]
            else:
                cells = ["-", "-", _fmt(r["mbps_ratio"], ".2f")]  # type: ignore[arg-type]
            table.append([str(r["workload"]), f"netkit / {r['baseline']}", *cells])
        text += "\n\nratios (req/s and MB/s: above 1, netkit is faster; p99: below 1, netkit's"
        text += " tail is shorter)\n"
        text += h.format_table(["workload", "ratio", "req/s", "p99", "MB/s"], table)
    return text


#: ``--quick``: netkit and grpclib (no venv to build, light to start), unary only, one
#: second, no warm-up.
QUICK: dict[str, object] = {
    "only": "netkit,grpclib",
    "workloads": UNARY,
    "duration": 1,
    "warmup": 0,
    "pause": 0.0,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # h2load takes whole seconds
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is kept")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between runs")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SERVERS)}")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="unary, stream or unary,stream"
    )
    parser.add_argument("--json", type=Path, help="write raw results to this file")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    args = h.parse_args(parser, argv, QUICK)
    if args.duration <= 0 or args.repeat < 1 or args.warmup < 0:
        parser.error("--duration must be > 0, --repeat >= 1, --warmup >= 0")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        parser.error(f"--workloads: choose from {', '.join(WORKLOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    workloads: list[str] = args.workloads
    h.install_signal_handlers()
    h.require_tools("h2load")
    if args.pin and not h.can_pin():
        print("note: taskset or CPUs 0 and 1 unavailable; running unpinned", file=sys.stderr)
        args.pin = False
    specs = h.select_servers(args.only, SERVERS)
    load_at_start = h.warn_if_busy()
    machine = h.machine_info()  # taken at the start: "date" is when the benchmark began
    versions = software_versions()
    started = time.time()
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="netkit-grpc-bench-") as tmp:
        for spec in specs:
            print(f"== {spec.name}: {spec.description}", flush=True)
            problem = prepare(spec, versions)
            if problem is not None:
                results += [Measurement(spec.name, w, problem) for w in workloads]
                continue
            for workload in workloads:
                results.append(measure_workload(spec, workload, args, Path(tmp)))
                time.sleep(args.pause)
    ratio_rows = ratios(results)
    print()
    print(render(results, ratio_rows))
    if args.json:
        report = {
            "benchmark": "benchmarks/grpc_run.py",
            "machine": machine,
            "versions": versions,
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "repeat": args.repeat,
                "pinned": args.pin,
                "server_cpu": h.SERVER_CPU if args.pin else None,
                "client_cpu": h.CLIENT_CPU if args.pin else None,
                "unary": {
                    "payload_bytes": UNARY_PAYLOAD,
                    "h2load_threads_clients_streams": H2LOAD[UNARY],
                },
                "stream": {
                    "payload_bytes": STREAM_PAYLOAD,
                    "count": STREAM_COUNT,
                    "message_bytes_on_the_wire": STREAM_MESSAGE_BYTES,
                    "h2load_threads_clients_streams": H2LOAD[STREAM],
                },
            },
            "elapsed_s": round(time.time() - started, 1),
            "load_average_at_start": load_at_start,
            "results": [asdict(m) for m in results],
            "ratios": ratio_rows,
        }
        h.write_report(args.json, report)
    return 0


def software_versions() -> dict[str, str]:
    """The versions of the libraries the servers run on (purerpc's venv: ``prepare``)."""
    return {
        name: importlib.metadata.version(name)
        for name in ("grpclib", "grpcio", "protobuf", "trio", "h2")
        if _installed(name)
    }


def prepare(spec: h.ServerSpec, versions: dict[str, str]) -> str | None:
    """Make what ``spec`` needs before it can start (purerpc: its venv, whose versions
    go into ``versions``); ``None`` when ready, else the status for its results."""
    if spec.name != "purerpc":
        return None
    try:
        purerpc_versions = ensure_purerpc_venv()
    except h.HarnessError as exc:
        print(f"   purerpc venv: {exc}", flush=True)
        return f"no venv: {exc}"
    versions["purerpc venv"] = ", ".join(f"{k} {v}" for k, v in sorted(purerpc_versions.items()))
    print(f"   purerpc venv: {versions['purerpc venv']}", flush=True)
    return None


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    h.run_main(main)
