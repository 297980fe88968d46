"""``netkit bench --quick``: each suite's smoke selection, and the budget shared by all
suites, which stops a suite that overruns it (fake suites here: no server, no load)."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from netkit import _bench

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def suite_module(script: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A suite script imported under a name of its own (it imports ``_harness`` as a
    sibling, as when run as a script)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCHMARKS / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def as_flags(selection: dict[str, object]) -> list[str]:
    return [item for k, v in selection.items() for item in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.parametrize("name, script, quick_flags, full_flags", _bench.SUITES)
def test_quick_runs_each_suites_smoke_selection_and_full_keeps_its_defaults(
    name: str,
    script: str,
    quick_flags: list[str],
    full_flags: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = suite_module(script, monkeypatch)
    selection: dict[str, object] = module.QUICK
    quick = vars(module.arguments(quick_flags))
    # what --quick passes is the suite's QUICK selection, spelled out
    assert quick == {**vars(module.arguments(as_flags(selection))), "quick": True}
    # a smoke run: about a second of load, no warm-up, netkit and at most one peer
    assert float(quick.get("duration", quick.get("window", 0))) <= 1
    assert quick.get("warmup", 0) == 0 and quick.get("repeat", 1) == 1
    if "only" in selection:
        servers = str(selection["only"]).split(",")
        assert servers[0] == "netkit" and len(servers) == 2
    # the full run passes nothing: each script's defaults, which --quick leaves alone
    full = vars(module.arguments(full_flags))
    assert not full["quick"]
    changed = {k for k in selection if full[k] != quick[k]}
    assert changed == set(selection), f"{script}: --quick selects what the full run does"


def test_the_suites_run_in_the_budget_of_a_quick_run() -> None:
    assert [s[2] for s in _bench.SUITES] == [["--quick"]] * len(_bench.SUITES)
    assert _bench.QUICK_BUDGET + _bench.STOP_GRACE <= 70


FAST = """
import json, sys
from pathlib import Path
Path(__file__).with_suffix(".argv").write_text(json.dumps(sys.argv[1:]))
target = sys.argv[sys.argv.index("--json") + 1]
open(target, "w").write(json.dumps({"results": [{"server": "netkit", "rps": 10.0}]}))
"""

SLOW = """
import signal, subprocess, sys, time
from pathlib import Path
here = Path(__file__).parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
(here / "child.pid").write_text(str(child.pid))

def stopped(signum, frame):
    (here / "got-sigterm").write_text(str(signum))
    child.terminate()
    child.wait()
    sys.exit(1)

signal.signal(signal.SIGTERM, stopped)
time.sleep(60)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_budget_stops_an_overrunning_suite_and_the_report_says_so(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks").mkdir()
    for script, text in (("fast.py", FAST), ("slow.py", SLOW), ("late.py", FAST)):
        (tmp_path / "benchmarks" / script).write_text(text)
    suites = [
        ("fast", "fast.py", ["--quick"], []),
        ("slow", "slow.py", ["--quick"], []),
        ("late", "late.py", ["--quick"], []),
    ]
    out = io.StringIO()
    started = time.monotonic()
    status = _bench.run(tmp_path, quick=True, budget=2.0, out=out, suites=suites)
    elapsed = time.monotonic() - started
    assert status == 0
    assert elapsed < 2.0 + _bench.STOP_GRACE, out.getvalue()
    # SIGTERM first, so the suite could stop what it started; its child is gone too
    assert (tmp_path / "benchmarks" / "got-sigterm").read_text() == "15"
    assert not _alive(int((tmp_path / "benchmarks" / "child.pid").read_text()))
    argv = json.loads((tmp_path / "benchmarks" / "fast.argv").read_text())
    assert argv[0] == "--json" and argv[2:] == ["--quick"]
    assert not (tmp_path / "benchmarks" / "late.argv").exists()
    lines = out.getvalue().splitlines()
    assert "ok" in lines[0] and "fast.py" in lines[0]
    assert "slow.py" in lines[1] and "stopped after 2 s: the run's 2 s budget ran out" in lines[1]
    assert "late.py" in lines[2] and "not run: the 2 s budget" in lines[2]
    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "Not measured: stopped after 2 s: the run's 2 s budget ran out." in text
    assert "Not measured: not run: the 2 s budget of this run was spent" in text
    assert "| rps | 10.0 |" in text  # the suite that finished is reported


def test_a_suite_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bench, "STOP_GRACE", 0.5)
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "stubborn.py").write_text(STUBBORN)
    out = io.StringIO()
    started = time.monotonic()
    suites = [("stubborn", "stubborn.py", [], [])]
    _bench.run(tmp_path, quick=False, budget=60.0, cap=1.0, out=out, suites=suites)
    assert time.monotonic() - started < 5
    assert "stopped after 1 s: its 1 s budget ran out" in out.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_which_suite_runs_for_how_long(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "nap.py").write_text("import time; time.sleep(1.2)\n" + FAST)
    out = Terminal()
    _bench.run(tmp_path, quick=True, budget=30.0, out=out, suites=[("nap", "nap.py", [], [])])
    progress = out.getvalue().split(_bench.CLEAR)
    assert any(
        re.fullmatch(r"\[1/1\] nap +nap\.py +1 s  \(2\d s of the budget left\)", p)
        for p in progress
    )
    assert re.fullmatch(
        r"\[1/1\] nap +nap\.py +[12] s  ok\n", progress[-1].split("netkit bench:")[0]
    )
