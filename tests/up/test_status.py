"""The live view of ``netkit up``: observe's summary and the rows on a terminal, one
line per change of state when piped."""

from __future__ import annotations

import io

from netkit.up import Row
from netkit.up._status import LineStatus, TerminalStatus, status_view


def rows(state: str = "up", rate: float = 0.0) -> list[Row]:
    return [
        Row("balancer", "127.0.0.1:8080", "up", "-", "2 backends", rate),
        Row("orders-1", "127.0.0.1:8082", state, "passing", "in rotation", rate),
    ]


def test_piped_view_prints_a_line_only_when_a_state_changes() -> None:
    out = io.StringIO()
    view = status_view(out)
    assert isinstance(view, LineStatus)
    view.show(rows(), ["requests/s 1.0"])
    view.show(rows(rate=50.0), ["requests/s 50.0"])  # rates alone: no new line
    view.show(rows("killed"), ["requests/s 2.0"])
    lines = out.getvalue().splitlines()
    assert lines == [
        "status: balancer up - 2 backends; orders-1 up passing in rotation",
        "status: balancer up - 2 backends; orders-1 killed passing in rotation",
    ]


def test_terminal_view_redraws_observe_summary_and_rows_in_place() -> None:
    out = io.StringIO()
    view = TerminalStatus(out)
    view.show(rows(), ["requests/s 1.0", "connections  h1 1"])
    first = out.getvalue()
    assert first.startswith("requests/s 1.0\nconnections  h1 1\n\n")
    assert "orders-1" in first and "\x1b[" not in first
    drawn = len(first.splitlines())
    view.show(rows(rate=3.0), ["requests/s 3.0", "connections  h1 1"])
    second = out.getvalue()[len(first) :]
    assert second.startswith(f"\x1b[{drawn}F\x1b[J")  # back over the whole block
    assert "   3.0" in second
