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

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: One short measured run per case, no warm-up, no pause between runs.
QUICK_LOAD = ("--duration", "1", "--warmup", "0", "--repeat", "1", "--pause", "0")
#: ``--quick`` stops a suite that runs longer than this (seconds).
QUICK_CAP = 60.0
SUITES: list[tuple[str, str, list[str], list[str]]] = [
    # name, script, quick flags, full flags
    ("HTTP", "run.py", [*QUICK_LOAD], []),
    ("gRPC", "grpc_run.py", [*QUICK_LOAD], []),
    ("REST", "rest_run.py", [*QUICK_LOAD], []),
    ("WebSocket", "ws_run.py", ["--duration", "1", "--rounds", "1", "--subscribers", "100"], []),
    ("registry", "registry_run.py", ["--instances", "1000", "--window", "2"], []),
    ("balancer", "balancer_run.py", ["--duration", "1", "--part", "overhead"], []),
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


def run(root: Path, *, quick: bool, cap: float, out: Any = sys.stdout, command: str = "") -> int:
    present = [s for s in SUITES if (root / "benchmarks" / s[1]).exists()]
    if not present:
        print("netkit bench: no benchmarks/ here (run it from a netkit checkout)", file=out)
        return 2
    results: list[tuple[str, str, list[dict[str, Any]] | None, str]] = []
    load = _load_average()  # before our own load
    tty = out.isatty()
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, script, quick_flags, full_flags) in enumerate(present, 1):
            target = Path(tmp) / f"{script}.json"
            argv = [sys.executable, str(root / "benchmarks" / script), "--json", str(target)]
            argv += quick_flags if quick else full_flags
            started = time.monotonic()
            process = subprocess.Popen(
                argv, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            note = ""
            while process.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > cap:
                    process.kill()
                    note = f"stopped after {cap:g} s"
                    break
                if tty:
                    out.write(f"\r[{n}/{len(present)}] {name:<10} {script:<16} {elapsed:5.0f} s")
                    out.flush()
                time.sleep(0.5)
            process.wait()
            elapsed = time.monotonic() - started
            rows: list[dict[str, Any]] | None = None
            if target.exists():
                rows = list(records(json.loads(target.read_text())))
            elif not note:
                stderr = (process.stderr.read() if process.stderr else "").strip().splitlines()
                note = f"failed (exit {process.returncode}): {stderr[-1] if stderr else ''}"
            status = note or "ok"
            start = "\r" if tty else ""
            print(
                f"{start}[{n}/{len(present)}] {name:<10} {script:<16} {elapsed:5.0f} s  {status}",
                file=out,
                flush=True,
            )
            results.append((name, script, rows, note))
    write_report(root, results, quick=quick, command=command, load=load)
    print("netkit bench: wrote docs/benchmarks.md (section 'netkit bench')", file=out)
    return 0


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
