"""What metrics cost: the hello-world benchmark with ``netkit.observe`` on versus off.

The issue's budget: with metrics on, at most 5 % fewer requests/s than with metrics off,
measured in the same run. Variants, each a fresh server pinned to CPU 0 (the load
generator on CPU 1), all serving ``netkit.examples.hello:app``:

* ``off``: ``netkit.serve(app)`` without an observer (the HTTP layer pays one ``is None``
  check per hook);
* ``metrics``: ``observer=Observability(access_log=False)``: metrics and trace context;
* ``metrics+log`` (``--access-log``): the same plus one JSON access line per request.

Rounds are interleaved (off, metrics, off, metrics, ...) so that a change in what else
the machine does hits both alike; per protocol the script prints each round's
requests/s, the median of the per-round ratios (metrics / off) and the verdict against
the 5 % budget. HTTP/1.1 load comes from wrk, h2c from h2load, with run.py's settings.

Throughput on a shared 2-vCPU machine moves 15-20 % between runs; when the ratios are
that noisy, count instructions instead, with ``instructions.py``'s method (callgrind,
instructions per request = loaded minus idle, over N requests): this script does not,
``benchmarks/icount_http1.sh`` runs that count on ``benchmarks/apps/hello_observed.py``
with and without ``--metrics`` (docs/benchmarks.md, *Metrics cost*).

Usage::

    .venv/bin/python benchmarks/metrics_cost.py [--rounds 3] [--duration 5] [--warmup 1]
        [--protocols http/1.1,h2c] [--access-log] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h
import run

APP = str(h.APPS_DIR / "hello_observed.py")


def _spec(name: str, flags: list[str]) -> h.ServerSpec:
    def command(port: int, idle: bool) -> list[list[str]]:
        return [[h.PYTHON, APP, "--port", str(port), *flags]]

    return h.ServerSpec(
        name, f"hello app {' '.join(flags) or '(no observer)'}", h.PROTOCOLS, command
    )


VARIANTS = {
    "off": _spec("off", []),
    "metrics": _spec("metrics", ["--metrics"]),
    "metrics+log": _spec("metrics+log", ["--metrics", "--access-log"]),
}


def measure(spec: h.ServerSpec, protocol: str, args: argparse.Namespace, logdir: Path) -> float:
    with h.running_server(spec, logdir) as server:
        load = run.run_wrk if protocol == h.H1 else run.run_h2load
        result = load(
            server.port, args.duration, args.warmup, h.CLIENT_CPU if h.can_pin() else None
        )
        if result.failed:
            raise h.HarnessError(f"{spec.name} {protocol}: {result.failed} failed requests")
        return float(result.rps or 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--protocols", default="http/1.1,h2c")
    parser.add_argument("--access-log", action="store_true", help="also measure metrics+log")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    h.install_signal_handlers()
    h.require_tools("wrk", "h2load", "curl")
    load = h.warn_if_busy()
    names = ["off", "metrics"] + (["metrics+log"] if args.access_log else [])
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    results: dict[str, dict[str, list[float]]] = {p: {n: [] for n in names} for p in protocols}
    with tempfile.TemporaryDirectory(prefix="netkit-metrics-cost-") as tmp:
        for protocol in protocols:
            for round_no in range(args.rounds):
                for name in names:
                    rps = measure(VARIANTS[name], protocol, args, Path(tmp))
                    results[protocol][name].append(rps)
                    print(
                        f"{protocol} round {round_no + 1} {name:12s} {rps:10.0f} req/s", flush=True
                    )
    summary: dict[str, object] = {"load_average_at_start": load, "protocols": {}}
    print()
    for protocol in protocols:
        off = results[protocol]["off"]
        line: dict[str, object] = {"rps": results[protocol]}
        for name in names[1:]:
            ratios = [on / base for on, base in zip(results[protocol][name], off, strict=True)]
            median = statistics.median(ratios)
            line[f"{name}_ratio_median"] = median
            line[f"{name}_ratios"] = ratios
            verdict = "within" if median >= 0.95 else "OVER"
            print(
                f"{protocol:9s} {name:12s} / off: median ratio {median:.3f} "
                f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}) -> {verdict} the 5 % budget"
            )
        summary["protocols"][protocol] = line  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
