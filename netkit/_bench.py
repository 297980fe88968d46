"""``netkit bench``: the benchmark suites of benchmarks/ side by side, into docs/benchmarks.md.

Runs each suite present (``run.py``, ``grpc_run.py``, ``rest_run.py``, ``ws_run.py``,
``registry_run.py``, ``balancer_run.py``) one after another as a subprocess with
``--json``, shows which one runs and for how long, then writes a generated section at
the end of docs/benchmarks.md (between ``<!-- netkit bench -->`` markers; the rest of
the page is left as it is) with one table per suite and PNG plots of throughput and of
latency percentiles per server (matplotlib, the ``bench`` extra). ``--quick`` passes each
suite its own ``--quick``, the smoke selection the script defines (its ``QUICK``: netkit
and one peer, one workload, about a second of load, no warm-up): a smoke run whose
numbers only show that everything works. All the suites share one budget (``--budget``;
60 s with ``--quick``); a suite still running when it runs out is stopped, and the report
says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
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
#: Back to the start of the terminal's line and erase it: the progress line is redrawn.
CLEAR = "\r\x1b[K"
BEGIN, END = "<!-- netkit bench -->", "<!-- /netkit bench -->"
#: A smoke run has a section of its own: running one never replaces a full run's tables.
QUICK_BEGIN, QUICK_END = "<!-- netkit bench --quick -->", "<!-- /netkit bench --quick -->"


def markers(quick: bool) -> tuple[str, str]:
    """The markers around the generated section of a full or a quick run."""
    return (QUICK_BEGIN, QUICK_END) if quick else (BEGIN, END)


LABELS = ("server", "target", "strategy", "protocol", "workload", "case", "mode")
#: The headline figures, in the order of the columns; a suite's table has those it reports.
METRICS = (
    "rps",
    "round_trips_per_s",
    "mbps",
    "mb_per_s_64k",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "success_rate",
    "fanout_ms",
    "register_all_s",
    "registry_cpu_cores",
    "registry_rss_mib",
    "heartbeats_per_s",
    "discover_p50_ms",
    "discover_p99_ms",
    "deregister_to_watch_p50_ms",
    "deregister_to_watch_p99_ms",
)
#: Throughput, one per panel: the first its rows have (a gRPC stream's MB/s before its
#: calls/s).
THROUGHPUT = {
    "mbps": "MB/s",
    "rps": "requests/s",
    "round_trips_per_s": "round trips/s",
}
#: Latency percentiles, side by side in the latency plot.
LATENCY = {"p50_ms": "p50", "p99_ms": "p99", "p999_ms": "p99.9"}
#: What tells the rows of one panel apart (the rest of the labels name the panel).
SUBJECTS = ("server", "target", "strategy")
#: A 1-minute load average above this at the start or the end: "measured under load".
BUSY = 0.5


def records(data: Any) -> Iterator[dict[str, Any]]:
    """Every measurement-like object in a suite's JSON: a dict with a ``server`` (or a
    balancer ``target`` or ``strategy``), else -- for suites whose JSON is a mapping of
    figures -- one per server (``{"netkit": {...}, ...}``) or a single netkit one."""
    found = list(_labelled(data))
    if found or not isinstance(data, dict) or not data:
        yield from found
    elif all(_number(v) for v in data.values()):
        yield {"server": "netkit", **data}
    elif all(isinstance(v, dict) and all(_number(x) for x in v.values()) for v in data.values()):
        for server, figures in data.items():
            yield {"server": server, **figures}


def _labelled(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, dict):
        if any(k in data for k in ("server", "target", "strategy")):
            yield data
        else:
            for value in data.values():
                yield from _labelled(value)
    elif isinstance(data, list):
        for value in data:
            yield from _labelled(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if not _number(value):
        return "-"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    labels = [k for k in LABELS if any(k in r for r in rows)]
    metrics = [k for k in METRICS if any(_number(r.get(k)) for r in rows)]
    if not metrics:
        return ["(no requests/s or latency in this suite's results; see its own report)"]
    if len(rows) == 1:  # one server (the registry): its figures one per line
        only = rows[0]
        lines = [f"| {k} | {only[k]} |" for k in labels]
        lines += [f"| {k} | {_cell(only[k])} |" for k in metrics]
        return ["| figure | value |", "|---|---|", *lines]
    status = any(r.get("status", "ok") != "ok" for r in rows)
    header = labels + metrics + (["status"] if status else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [str(r.get(k, "")) for k in labels] + [_cell(r.get(k)) for k in metrics]
        if status:
            cells.append(str(r.get("status", "ok"))[:80].replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _name(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    return " ".join(str(row[k]) for k in keys if k in row)


def panels(rows: list[dict[str, Any]], keys: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The rows that report any of ``keys``, grouped by what they measure (protocol,
    workload...: one panel each, on its own scale), in the order they came."""
    context = tuple(k for k in LABELS if k not in SUBJECTS)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if any(_number(row.get(k)) for k in keys):
            groups.setdefault(_name(row, context), []).append(row)
    return list(groups.items())


def plot(name: str, rows: list[dict[str, Any]], path: Path) -> bool:
    """Bars of each row's throughput, a panel per protocol or workload: requests/s
    (MB/s for streaming, round trips/s for WebSocket), higher is better."""
    groups = panels(rows, list(THROUGHPUT))
    plt = _pyplot() if groups else None
    if plt is None:
        return False
    figure, axes_list = _panels_figure(plt, [0.35 * len(group) + 0.9 for _, group in groups])
    for axes, (title, group) in zip(axes_list[:, 0], groups, strict=True):
        metric = next(k for k in THROUGHPUT if any(_number(r.get(k)) for r in group))
        shown = [r for r in group if _number(r.get(metric))]
        axes.barh([_name(r, SUBJECTS) for r in shown], [float(r[metric]) for r in shown])
        axes.set_title(title, fontsize=10, loc="left")
        axes.set_xlabel(f"{THROUGHPUT[metric]} (higher is better)")
        axes.invert_yaxis()
    figure.suptitle(f"{name}: throughput per server")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def _panels_figure(plt: Any, heights: list[float]) -> tuple[Any, Any]:
    """A figure of one panel per row, each as tall as its bars need."""
    figure, axes = plt.subplots(
        len(heights),
        1,
        figsize=(8, sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    return figure, axes


def plot_latency(name: str, rows: list[dict[str, Any]], path: Path) -> bool:
    """Grouped bars of each row's latency percentiles (p50, p99, p99.9 where reported),
    a panel per protocol or workload, lower is better."""
    groups = panels(rows, list(LATENCY))
    plt = _pyplot() if groups else None
    if plt is None:
        return False
    keys = [k for k in LATENCY if any(_number(r.get(k)) for r in rows)]
    height = 0.8 / len(keys)
    heights = [0.25 * len(group) * len(keys) + 0.9 for _, group in groups]
    figure, axes_list = _panels_figure(plt, heights)
    for axes, (title, group) in zip(axes_list[:, 0], groups, strict=True):
        for i, key in enumerate(keys):
            values = [float(r[key]) if _number(r.get(key)) else 0.0 for r in group]
            places = [n + i * height for n in range(len(group))]
            axes.barh(places, values, height, label=LATENCY[key])
        axes.set_yticks([n + height * (len(keys) - 1) / 2 for n in range(len(group))])
        axes.set_yticklabels([_name(r, SUBJECTS) for r in group])
        axes.set_title(title, fontsize=10, loc="left")
        axes.set_xlabel("latency, ms (lower is better)")
        axes.invert_yaxis()
    axes_list[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(f"{name}: latency percentiles")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files, no display); None without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


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
    # each suite's raw JSON, its own report (stdout) and stderr, kept (git-ignored)
    kept = root / "benchmarks" / "results" / ("netkit-bench-quick" if quick else "netkit-bench")
    kept.mkdir(parents=True, exist_ok=True)
    for n, (name, script, quick_flags, full_flags) in enumerate(present, 1):
        label = f"[{n}/{len(present)}] {name:<10} {script:<16}"
        if deadline - time.monotonic() < 1.0:
            note = f"not run: the {budget:g} s budget of this run was spent before it started"
            print(f"{label}     -  {note}", file=out, flush=True)
            results.append((name, script, None, note))
            continue
        stem = kept / script.removesuffix(".py")
        target, errors, printed = (stem.with_suffix(x) for x in (".json", ".stderr", ".txt"))
        target.unlink(missing_ok=True)  # a failed run must not report the last one's
        argv = [sys.executable, str(root / "benchmarks" / script), "--json", str(target)]
        argv += quick_flags if quick else full_flags
        started = time.monotonic()
        stop_at = deadline if cap is None else min(deadline, started + cap)
        # files, not pipes: a pipe nobody reads while the suite runs could fill and block it
        with printed.open("w") as stdout_file, errors.open("w") as stderr_file:
            process = subprocess.Popen(
                argv,
                cwd=root,
                stdout=stdout_file,
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
                    note = f"stopped after {now - started:.0f} s: {why} {limit:g} s budget ran out"
                    break
                if tty:
                    left = f"({deadline - now:.0f} s of the budget left)"
                    out.write(f"{CLEAR}{label} {now - started:5.0f} s  {left}")
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
        start = CLEAR if tty else ""
        print(f"{start}{label} {elapsed:5.0f} s  {status}", file=out, flush=True)
        results.append((name, script, rows, note))
    load_end = _load_average()
    write_report(
        root,
        results,
        quick=quick,
        command=command,
        load=load,
        budget=budget,
        load_end=load_end,
        kept=kept.relative_to(root).as_posix(),
    )
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
    results: list[Result],
    *,
    quick: bool,
    command: str = "",
    load: str | None = None,
    budget: float | None = None,
    load_end: str | None = None,
    kept: str = "",
) -> None:
    docs = root / "docs"
    images = docs / "img"
    images.mkdir(exist_ok=True)
    command = command or ("netkit bench --quick" if quick else "netkit bench")
    title = (
        "Latest `netkit bench --quick` run: a smoke run" if quick else "Latest `netkit bench` run"
    )
    begin, end_marker = markers(quick)
    prefix = "bench-quick-" if quick else "bench-"
    lines = [begin, "", f"## {title}", ""]
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load or _load_average()
    lines.append(f"Generated by `{command}` on {when}; 1-minute load average at the start {load}.")
    if budget is not None:
        lines[-1] += (
            f" All the suites together had {budget:g} s; a suite still running when that ran"
            " out was stopped, and says so below."
        )
    if kept:
        lines[-1] += f" Each suite's raw JSON and its own report: `{kept}/` (git-ignored)."
    busy = [x for x in (load, load_end) if x and x != "unknown" and float(x) > BUSY]
    if busy:
        end = f", {load_end} at the end" if load_end else ""
        lines += [
            "",
            f"**Measured under load** (1-minute load average {load} at the start{end}, on "
            f"{os.cpu_count()} CPUs): other work shared the machine, so absolute numbers are "
            "low and noisy; compare the servers within one table (ratios), and rerun on a quiet "
            "machine for numbers to quote.",
        ]
    if quick:
        lines += [
            "",
            "**A smoke run**: each suite's `--quick` selection (netkit and one peer, one "
            "workload, about a second of load, no warm-up), on whatever machine ran it "
            "(possibly shared and under load). These numbers only show that every suite "
            "runs; they are not numbers to compare. The measured tables are in the sections "
            "above.",
        ]
    for name, script, rows, note in results:
        lines += ["", f"### {name} (`benchmarks/{script}`)", ""]
        if rows is None:
            lines.append(f"Not measured: {note}.")
            continue
        lines += table(rows)
        picture = images / f"{prefix}{script.removesuffix('.py')}.png"
        if plot(name, rows, picture):
            lines += ["", f"![{name} throughput per server](img/{picture.name})"]
        picture = images / f"{prefix}{script.removesuffix('.py')}-latency.png"
        if plot_latency(name, rows, picture):
            lines += ["", f"![{name} latency percentiles per server](img/{picture.name})"]
    lines += ["", end_marker, ""]
    page = docs / "benchmarks.md"
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    if begin in text and end_marker in text:
        start, stop = text.index(begin), text.index(end_marker) + len(end_marker) + 1
        text = text[:start] + text[stop:]
    page.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines))
