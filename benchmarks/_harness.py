"""Shared machinery of the benchmark scripts: the servers, starting and stopping them.

Every server runs in its own subprocess (its own session, so the whole process group
can be signalled), bound to 127.0.0.1 on a port that was free a moment before, and
optionally pinned to one CPU with ``taskset``.  A server counts as started once it
answers ``GET /hello`` with the expected JSON (or passes the readiness check its
caller gives, e.g. a gRPC call for ``grpc_run.py``); it is stopped with SIGTERM, then
SIGKILL, each bounded by a timeout.  Nothing here ever talks to anything but loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
APPS_DIR = BENCH_DIR / "apps"
FLOORS_DIR = BENCH_DIR / "floors"
PYTHON = sys.executable
HOST = "127.0.0.1"

H1 = "http/1.1"
H2C = "h2c"
PROTOCOLS = (H1, H2C)

SERVER_CPU = 0
CLIENT_CPU = 1

EXPECTED_JSON = {"message": "hello, world"}
PATH = "/hello"

START_TIMEOUT = 30.0  # seconds for a server to answer its first request
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
PROBE_TIMEOUT = 5.0  # seconds for one curl probe


class HarnessError(Exception):
    """A benchmark step failed; the message says what, for the report."""


@dataclass(frozen=True)
class ServerSpec:
    """One server under test.

    ``command(port, idle)`` returns the candidate command lines in order of preference:
    when a candidate exits with a usage error (argparse's exit status 2, e.g. a flag the
    server does not know yet) the next one is tried.  ``idle`` asks for the variant used
    by the idle-connection memory benchmark.
    """

    name: str
    description: str
    protocols: tuple[str, ...]
    command: Callable[[int, bool], list[list[str]]]


def _with_optional(base: list[str], optional: list[list[str]]) -> list[list[str]]:
    """``base`` plus every subset of the optional flag groups, largest subsets first."""
    out: list[list[str]] = []
    for size in range(len(optional), -1, -1):
        for combo in itertools.combinations(optional, size):
            out.append(base + [arg for group in combo for arg in group])
    return out


def _netkit(port: int, idle: bool) -> list[list[str]]:
    base = [PYTHON, "-m", "netkit", "serve", "netkit.examples.hello:app"]
    base += ["--host", HOST, "--port", str(port)]
    optional = [["--log-level", "WARNING"]]
    if idle:
        optional.insert(0, ["--max-connections", "2000"])
    return _with_optional(base, optional)


def _hypercorn(port: int, idle: bool) -> list[list[str]]:
    cmd = [PYTHON, "-m", "hypercorn", "--worker-class", "trio", "--workers", "1"]
    cmd += ["--config", str(BENCH_DIR / "hypercorn.toml"), "--bind", f"{HOST}:{port}"]
    if idle:
        cmd += ["--keep-alive", "600"]  # default 5 s; the idle test must not lose connections
    return [[*cmd, "asgi_hello:app"]]


def _uvicorn(port: int, idle: bool) -> list[list[str]]:
    cmd = [PYTHON, "-m", "uvicorn", "asgi_hello:app", "--app-dir", str(APPS_DIR)]
    cmd += ["--host", HOST, "--port", str(port), "--http", "h11", "--loop", "asyncio"]
    cmd += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    if idle:
        cmd += ["--timeout-keep-alive", "600"]  # default 5 s, as for hypercorn
    return [cmd]


def _floor(script: str) -> Callable[[int, bool], list[list[str]]]:
    def command(port: int, idle: bool) -> list[list[str]]:
        return [[PYTHON, str(FLOORS_DIR / script), "--host", HOST, "--port", str(port)]]

    return command


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("netkit", "netkit serve netkit.examples.hello:app", (H1, H2C), _netkit),
        ServerSpec(
            "hypercorn-trio", "hypercorn, trio worker, 1 worker, ASGI app", (H1, H2C), _hypercorn
        ),
        ServerSpec("uvicorn-h11", "uvicorn --http h11 --loop asyncio, ASGI app", (H1,), _uvicorn),
        ServerSpec(
            "floor-h11", "bare trio + h11 (benchmarks/floors)", (H1,), _floor("trio_h11.py")
        ),
        ServerSpec("floor-h2", "bare trio + h2 (benchmarks/floors)", (H2C,), _floor("trio_h2.py")),
    )
}


def select_servers(
    only: str | None, servers: dict[str, ServerSpec] | None = None
) -> list[ServerSpec]:
    """Parse ``--only a,b``; ``None`` or ``all`` means every server.

    ``servers`` is the menu to choose from (default: the HTTP servers above);
    ``grpc_run.py`` passes its own.
    """
    menu = SERVERS if servers is None else servers
    if not only or only == "all":
        return list(menu.values())
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in menu]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {', '.join(menu)}")
    return [menu[name] for name in names]


# --- environment -----------------------------------------------------------------------


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing required program(s): {', '.join(missing)}")


def can_pin() -> bool:
    """True when ``taskset`` exists and both benchmark CPUs are available to us."""
    if shutil.which("taskset") is None:
        return False
    return {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP unwind the stack, so every server is stopped.

    (A background job may inherit SIGINT as ignored; Python would then never raise
    KeyboardInterrupt and a killed harness would leave its server running.)
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, object]
) -> argparse.Namespace:
    """``parser``'s arguments plus ``--quick``, which makes ``quick`` the defaults.

    ``--quick`` is the smoke selection ``netkit bench --quick`` runs (netkit and one peer,
    one workload, a short run, no warm-up); options given with it still win, and without
    it every default is the full run's.
    """
    shown = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {shown}")
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to ``wanted`` (capped by the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def load_average() -> float:
    """The 1-minute load average (0.0 if unknown)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def warn_if_busy(limit: float = 0.5) -> float:
    """Warn when other work is running: the numbers would be noisy.  Returns the load."""
    load = load_average()
    if load > limit:
        print(
            f"warning: 1-minute load average is {load:.2f}; other processes compete for "
            "the CPUs and the numbers will be noisy",
            file=sys.stderr,
            flush=True,
        )
    return load


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far: the whole machine, the server's process group, ourselves."""

    wall: float
    machine_busy: float
    machine_steal: float
    server: float
    harness: float  # this process and its reaped children (wrk, h2load, curl)


def _process_cpu_seconds(pid: int) -> float:
    fields = _proc_stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_sample(server_pgid: int) -> CpuSample:
    import resource

    ticks = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(values[i] for i in (0, 1, 2, 5, 6)) / ticks  # user nice system irq softirq
    steal = (values[7] if len(values) > 7 else 0) / ticks
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    harness = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    server = sum(_process_cpu_seconds(pid) for pid in group_pids(server_pgid))
    return CpuSample(time.monotonic(), busy, steal, server, harness)


def cpu_usage(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Percent of one CPU over the interval, for the server, the load generator (with this
    harness) and everything else on the machine: ``other_pct`` is the noise indicator."""
    wall = max(after.wall - before.wall, 1e-9)
    server = after.server - before.server
    harness = after.harness - before.harness
    other = (after.machine_busy - before.machine_busy) - server - harness
    return {
        "server_cpu_pct": round(100 * server / wall, 1),
        "client_cpu_pct": round(100 * harness / wall, 1),
        "other_cpu_pct": round(max(other, 0.0) * 100 / wall, 1),
        "steal_pct": round(100 * (after.machine_steal - before.machine_steal) / wall, 1),
    }


def machine_info() -> dict[str, object]:
    def run(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    lscpu = run(["lscpu"])
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
        "",
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": run(["uname", "-sr"]),
        "python": sys.version.split()[0],
        "wrk": (run(["wrk", "--version"]).splitlines() or [""])[0],
        "h2load": run(["h2load", "--version"]),
        "load_average_1min": load_average(),
    }


# --- ports -----------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` and we could bind it ourselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((HOST, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port the kernel just handed out and that nothing is listening on."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port_is_free(port):
            return port
    raise HarnessError("could not find a free loopback port")


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


# --- probing ---------------------------------------------------------------------------


def probe(port: int, protocol: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Fetch ``GET /hello`` with curl; ``None`` if the answer is right, else what is wrong."""
    flag = "--http1.1" if protocol == H1 else "--http2-prior-knowledge"
    argv = ["curl", "-sS", flag, "--max-time", str(timeout)]
    argv += ["-w", "\n%{http_code}\n%{http_version}\n%{content_type}"]
    argv.append(f"http://{HOST}:{port}{PATH}")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout + 5, check=False
        )
    except subprocess.TimeoutExpired:
        return "curl did not finish"
    if done.returncode != 0:
        return f"curl exit {done.returncode}: {done.stderr.strip()[:200]}"
    body, status, version, content_type = done.stdout.rsplit("\n", 3)
    want_version = "1.1" if protocol == H1 else "2"
    problems = []
    if status != "200":
        problems.append(f"status {status}")
    if version != want_version:
        problems.append(f"HTTP version {version}")
    if not content_type.lower().startswith("application/json"):
        problems.append(f"content-type {content_type!r}")
    try:
        if json.loads(body) != EXPECTED_JSON:
            problems.append(f"body {body[:80]!r}")
    except ValueError:
        problems.append(f"body is not JSON: {body[:80]!r}")
    return "; ".join(problems) or None


# --- processes -------------------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat_fields(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return sorted(pids)


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        return group_pids(self.process.pid)

    def rss_kib(self) -> int:
        """Total RSS of the server's process group (hypercorn has a parent and a worker)."""
        return sum(rss_kib(pid) for pid in self.pids())

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_path, lines)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def stop(
    process: subprocess.Popen[bytes],
    timeout: float = STOP_TIMEOUT,
    signum: int = signal.SIGTERM,
) -> None:
    """Send ``signum`` (SIGTERM) to the server's process group, SIGKILL what is left
    after ``timeout``.

    ``instructions.py`` sends SIGINT with a long timeout: a server under valgrind must
    exit by itself, or callgrind never writes its counts.
    """
    pgid = process.pid
    if process.poll() is None:
        _signal_group(pgid, signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
    # Children (e.g. hypercorn's worker) may outlive the leader for a moment.
    deadline = time.monotonic() + timeout
    while group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_pids(pgid):
        _signal_group(pgid, signal.SIGKILL)


def server_env() -> dict[str, str]:
    """The environment of the programs we start: the apps and netkit importable."""
    env = dict(os.environ)
    paths = [str(APPS_DIR), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() signals all of it
        )


ReadyCheck = Callable[[int, float], str | None]
"""``check(port, timeout)``: ``None`` when the server on ``port`` answers correctly,
else what is wrong.  Must give up after ``timeout`` seconds."""


def _hello_check(protocol: str) -> ReadyCheck:
    def check(port: int, timeout: float) -> str | None:
        return probe(port, protocol, timeout)

    return check


def _wait_ready(
    process: subprocess.Popen[bytes],
    port: int,
    check: ReadyCheck,
    start_timeout: float = START_TIMEOUT,
    probe_timeout: float = PROBE_TIMEOUT,
) -> None:
    deadline = time.monotonic() + start_timeout
    last_problem = "port never accepted a connection"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(f"exited with status {process.returncode}")
        if _port_accepts(port):
            remaining = deadline - time.monotonic()
            problem = check(port, max(1.0, min(probe_timeout, remaining)))
            if problem is None:
                return
            last_problem = problem
        time.sleep(0.1)
    raise HarnessError(f"not ready after {start_timeout:.0f} s ({last_problem})")


@contextlib.contextmanager
def running_server(
    spec: ServerSpec,
    logdir: Path,
    *,
    idle: bool = False,
    pin: bool = True,
    ready: ReadyCheck | None = None,
    start_timeout: float = START_TIMEOUT,
    probe_timeout: float = PROBE_TIMEOUT,
) -> Iterator[RunningServer]:
    """Start ``spec``, wait until it serves ``GET /hello`` correctly, stop it on exit.

    ``ready`` replaces the ``GET /hello`` probe for servers that serve something else.
    ``start_timeout`` and ``probe_timeout`` are raised by ``instructions.py``, whose
    servers run about 50 times slower under valgrind.
    Raises :class:`HarnessError` (with the tail of the server's log) when it does not
    start; the process is always cleaned up.
    """
    check = ready if ready is not None else _hello_check(spec.protocols[0])
    candidates = spec.command(0, idle)  # only to count them; ports are fresh per attempt
    server: RunningServer | None = None
    error = ""
    for attempt in range(len(candidates)):
        port = free_port()
        argv = spec.command(port, idle)[attempt]
        log_path = logdir / f"{spec.name}-{port}.log"
        process = _spawn(pinned(argv, SERVER_CPU if pin else None), log_path)
        try:
            _wait_ready(process, port, check, start_timeout, probe_timeout)
        except HarnessError as exc:
            stop(process)
            error = f"{exc}\n  command: {' '.join(argv)}\n{indent(_tail(log_path))}"
            usage_error = process.returncode == 2 and "usage:" in _tail(log_path, 40)
            if usage_error and attempt + 1 < len(candidates):
                continue  # an optional flag was refused: try without it
            raise HarnessError(error) from None
        except BaseException:
            stop(process)
            raise
        server = RunningServer(spec, port, argv, process, log_path)
        break
    if server is None:
        raise HarnessError(error or "no command to run")
    try:
        yield server
    finally:
        stop(server.process)


def indent(text: str, prefix: str = "  | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            numeric = i > 0 and cell[:1].isdigit()
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


# --- shared by the benchmark scripts: load-generator runs, h2load output, reports -------

#: Seconds a load generator may overrun its duration before it is killed.
TOOL_GRACE = 60.0


def run_tool(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{argv[0]} did not finish within {timeout:.0f} s") from exc


@functools.cache
def h2load_has_warmup() -> bool:
    done = run_tool(["h2load", "--help"], 10)
    return "--warm-up-time" in done.stdout


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending list (non-empty)."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def parse_h2load(stdout: str) -> dict[str, float]:
    patterns = {
        "rps": r"finished in [\d.]+\w*, ([\d.]+) req/s",
        "total": r"requests: (\d+) total",
        "started": r"(\d+) started",
        "done": r"(\d+) done",
        "succeeded": r"(\d+) succeeded",
        "failed": r"(\d+) failed",
        "errored": r"(\d+) errored",
        "timeout": r"(\d+) timeout",
    }
    out: dict[str, float] = {}
    for key, pattern in patterns.items():
        match = re.search(pattern, stdout)
        if match is None:
            raise HarnessError(f"could not find {key!r} in h2load output")
        out[key] = float(match.group(1))
    return out


def last_error(server: RunningServer) -> str:
    """The last meaningful line of a server's log (tracebacks end with the exception)."""
    for line in reversed(server.log_tail(40).splitlines()):
        text = line.strip().lstrip("|+- ").strip()
        if text:
            return text[:160]
    return "(no output)"


def write_report(path: Path, report: dict[str, object]) -> None:
    """Write the raw results as JSON (the file named by ``--json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nraw results written to {path}")


def run_main(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; Ctrl-C unwinds (stopping the servers) and exits 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # servers were stopped while the stack unwound
        print("interrupted", file=sys.stderr)
        sys.exit(130)
