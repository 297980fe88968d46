"""``netkit bench``'s report: tables from the suites' JSON, PNG plots, and a section of
docs/benchmarks.md that is replaced, not appended, on the next run."""

from __future__ import annotations

from pathlib import Path

from netkit._bench import BEGIN, END, records, table, write_report

RESULTS = {
    "results": [
        {"server": "netkit", "protocol": "h2c", "rps": 1200.0, "p99_ms": 3.5, "status": "ok"},
        {"server": "hypercorn", "protocol": "h2c", "rps": 800.0, "p99_ms": None},
    ]
}


def test_measurements_are_found_and_tabulated() -> None:
    rows = list(records(RESULTS))
    assert [r["server"] for r in rows] == ["netkit", "hypercorn"]
    assert table(rows) == [
        "| server | protocol | rps | p99_ms |",
        "|---|---|---|---|",
        "| netkit | h2c | 1,200.0 | 3.5 |",
        "| hypercorn | h2c | 800.0 | - |",
    ]


def test_the_generated_section_replaces_the_previous_one(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "benchmarks.md"
    page.write_text("# Benchmarks\n\nHand-written numbers.\n")
    rows = list(records(RESULTS))
    for _ in range(2):
        write_report(
            tmp_path, [("HTTP", "run.py", rows, ""), ("ws", "ws_run.py", None, "x")], quick=True
        )
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written numbers.\n")
    assert text.count(BEGIN) == text.count(END) == 1
    assert "| netkit | h2c | 1,200.0 | 3.5 |" in text and "Not measured: x." in text
    png = tmp_path / "docs" / "img" / "bench-run.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
