"""``netkit bench``: the benchmark suites of benchmarks/ side by side, into docs/benchmarks.md.

Runs each suite present (``run.py``, ``grpc_run.py``, ``rest_run.py``, ``ws_run.py``,
``registry_run.py``, ``balancer_run.py``) one after another as a subprocess with
``--json``, shows which one runs and for how long, then writes a generated section at
the end of docs/benchmarks.md (between ``<!-- netkit bench -->`` markers; the rest of
the page is left as it is) with one table per suite and a PNG plot of requests/s per
server (matplotlib, the ``bench`` extra). ``--quick`` runs each suite briefly (a smoke
run: the numbers only show that everything works).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ``--quick``: every suite runs its own smoke selection (its ``QUICK``: netkit and one
#: peer, one workload, about a second of load, no warm-up).
QUICK_FLAGS = ["--quick"]
#: ``--quick``: all the suites together get this long (seconds), start-up included.
QUICK_BUDGET = 60.0
#: A full run: all the suites together get this long (seconds).
FULL_BUDGET = 2700.0
#: Between SIGTERM (the suite unwinds and stops its servers) and SIGKILL, seconds.
STOP_GRACE = 5.0
SUITES: list[tuple[str, str, list[str], list[str]]] = [
    # name, script, quick flags, full flags (none: the script's own defaults)
    ("HTTP", "run.py", QUICK_FLAGS, []),
    ("gRPC", "grpc_run.py", QUICK_FLAGS, []),
    ("REST", "rest_run.py", QUICK_FLAGS, []),
    ("WebSocket", "ws_run.py", QUICK_FLAGS, []),
    ("registry", "registry_run.py", QUICK_FLAGS, []),
    ("balancer", "balancer_run.py", QUICK_FLAGS, []),
]
BEGIN, END = "<!-- netkit bench -->", "<!-- /netkit bench -->"
LABELS = ("server", "protocol", "workload", "case", "mode")
METRICS = ("rps", "p50_ms", "p99_ms")


def records(data: Any) -> Iterator[dict[str, Any]]:
    """Every measurement-like object (a dict with a ``server``) in a suite's JSON."""
    if isinstance(data, dict):
        if "server" in data:
            yield data
        else:
            for value in data.values():
                yield from records(value)
    elif isinstance(data, list):
        for value in data:
            yield from records(value)


def table(rows: list[dict[str, Any]]) -> list[str]:
    labels = [k for k in LABELS if any(k in r for r in rows)]
    metrics = [k for k in METRICS if any(isinstance(r.get(k), int | float) for r in rows)]
    if not metrics:
        return ["(no requests/s or latency in this suite's results; see its own report)"]
    lines = [
        "| " + " | ".join(labels + metrics) + " |",
        "|" + "---|" * (len(labels) + len(metrics)),
    ]
    for r in rows:
        cells = [str(r.get(k, "")) for k in labels]
        cells += [f"{r[k]:,.1f}" if isinstance(r.get(k), int | float) else "-" for k in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot(name: str, rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points = [
        (" ".join(str(r.get(k, "")) for k in LABELS if k in r), float(r["rps"]))
        for r in rows
        if isinstance(r.get("rps"), int | float)
    ]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=(8, 0.4 * len(points) + 1.2))
    axes.barh([p[0] for p in points], [p[1] for p in points])
    axes.set_xlabel("requests/s (higher is better)")
    axes.set_title(f"{name}: throughput per server")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


Suite = tuple[str, str, list[str], list[str]]
Result = tuple[str, str, list[dict[str, Any]] | None, str]


def run(
    root: Path,
    *,
    quick: bool,
    budget: float,
    cap: float | None = None,
    out: Any = sys.stdout,
    command: str = "",
    suites: list[Suite] | None = None,
) -> int:
    """Run the suites one after another within ``budget`` seconds in all.

    A suite still running at the deadline (or after ``cap`` seconds of its own) is
    stopped -- SIGTERM to its process group, so it unwinds and stops its servers, then
    SIGKILL after ``STOP_GRACE`` -- and the report says so; a suite the deadline leaves
    no time for is reported as not run.
    """
    present = [
        s for s in (SUITES if suites is None else suites) if (root / "benchmarks" / s[1]).exists()
    ]
    if not present:
        print("netkit bench: no benchmarks/ here (run it from a netkit checkout)", file=out)
        return 2
    results: list[Result] = []
    load = _load_average()  # before our own load
    tty = out.isatty()
    deadline = time.monotonic() + budget
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, script, quick_flags, full_flags) in enumerate(present, 1):
            label = f"[{n}/{len(present)}] {name:<10} {script:<16}"
            if deadline - time.monotonic() < 1.0:
                note = f"not run: the {budget:g} s budget of this run was spent before it started"
                print(f"{label}     -  {note}", file=out, flush=True)
                results.append((name, script, None, note))
                continue
            target = Path(tmp) / f"{script}.json"
            argv = [sys.executable, str(root / "benchmarks" / script), "--json", str(target)]
            argv += quick_flags if quick else full_flags
            started = time.monotonic()
            stop_at = deadline if cap is None else min(deadline, started + cap)
            errors = Path(tmp) / f"{script}.stderr"  # a file: a pipe could fill and block it
            with errors.open("w") as stderr_file:
                process = subprocess.Popen(
                    argv,
                    cwd=root,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr_file,
                    start_new_session=True,  # its own process group: stopped as a whole
                )
            note = ""
            try:
                while process.poll() is None:
                    now = time.monotonic()
                    if now >= stop_at:
                        _stop(process)
                        why = "the run's" if stop_at == deadline else "its"
                        limit = budget if stop_at == deadline else cap
                        note = (
                            f"stopped after {now - started:.0f} s: {why} {limit:g} s budget ran out"
                        )
                        break
                    if tty:
                        left = deadline - now
                        out.write(
                            f"\r{label} {now - started:5.0f} s  ({left:.0f} s of the budget left) "
                        )
                        out.flush()
                    time.sleep(0.25)
            except BaseException:
                _stop(process)  # Ctrl-C: the suite's servers go with it
                raise
            process.wait()
            elapsed = time.monotonic() - started
            rows: list[dict[str, Any]] | None = None
            if target.exists() and not note:
                rows = list(records(json.loads(target.read_text())))
            elif not note:
                last = errors.read_text(errors="replace").strip().splitlines()
                note = f"failed (exit {process.returncode}): {last[-1] if last else ''}"
            status = note or "ok"
            start = "\r" if tty else ""
            print(f"{start}{label} {elapsed:5.0f} s  {status}" + " " * 12, file=out, flush=True)
            results.append((name, script, rows, note))
    write_report(root, results, quick=quick, command=command, load=load, budget=budget)
    print("netkit bench: wrote docs/benchmarks.md (section 'netkit bench')", file=out)
    return 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the suite's process group, SIGKILL if it has not exited after a grace."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def write_report(
    root: Path,
    results: list[tuple[str, str, list[dict[str, Any]] | None, str]],
    *,
    quick: bool,
    command: str = "",
    load: str | None = None,
    budget: float | None = None,
) -> None:
    docs = root / "docs"
    images = docs / "img"
    images.mkdir(exist_ok=True)
    command = command or ("netkit bench --quick" if quick else "netkit bench")
    title = (
        "Latest `netkit bench --quick` run: a smoke run" if quick else "Latest `netkit bench` run"
    )
    lines = [BEGIN, "", f"## {title}", ""]
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load or _load_average()
    lines.append(f"Generated by `{command}` on {when}; 1-minute load average at the start {load}.")
    if budget is not None:
        lines[-1] += (
            f" All the suites together had {budget:g} s; a suite still running when that ran"
            " out was stopped, and says so below."
        )
    if quick:
        lines += [
            "",
            "**A smoke run**: one short round per case, no warm-up, on whatever machine ran "
            "it (possibly shared and under load). These numbers only show that every suite "
            "runs; they are not numbers to compare. The measured tables are in the sections "
            "above.",
        ]
    for name, script, rows, note in results:
        lines += ["", f"### {name} (`benchmarks/{script}`)", ""]
        if rows is None:
            lines.append(f"Not measured: {note}.")
            continue
        lines += table(rows)
        picture = images / f"bench-{script.removesuffix('.py')}.png"
        if plot(name, rows, picture):
            lines += ["", f"![{name} requests/s per server](img/{picture.name})"]
    lines += ["", END, ""]
    page = docs / "benchmarks.md"
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END) + 1 :]
    page.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines))
