"""The live status of ``netkit up``: one row per component, refreshed in place.

``StatusView.show(rows, summary)`` is called once a second with the components' rows
and the summary lines :func:`netkit.observe.render_status` draws from the same numbers
``/metrics`` exposes (requests/s, errors/s, p99, connections, the balancer's backends).
On a terminal the block is redrawn where it stands (ANSI: cursor up, clear to the end):
observe's summary, then the components. Otherwise (a pipe, a log, a test) one
``status:`` line is printed only when something other than the rates changed, so logs
stay short and can be waited on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TextIO

import attrs


@attrs.frozen
class Row:
    name: str
    address: str
    #: "up", "killed", "stopped"...
    state: str
    #: what the registry says ("passing", "critical", "-" when not registered)
    health: str
    #: what the balancer does with it ("in rotation", "ejected", "-")
    balancer: str
    rate: float


class StatusView(Protocol):
    def show(self, rows: Sequence[Row], summary: Sequence[str] = ()) -> None: ...

    def close(self) -> None: ...


def _table(rows: Sequence[Row]) -> list[str]:
    lines = [
        f"{'':2}{'name':<10} {'address':<22} {'state':<8} {'registry':<10} {'balancer':<12} req/s"
    ]
    for row in rows:
        lines.append(
            f"{'':2}{row.name:<10} {row.address:<22} {row.state:<8} {row.health:<10} "
            f"{row.balancer:<12} {row.rate:6.1f}"
        )
    return lines


class TerminalStatus:
    """Redraws the table in place on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._drawn = 0

    def show(self, rows: Sequence[Row], summary: Sequence[str] = ()) -> None:
        lines = [*summary, *([""] if summary else []), *_table(rows)]
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._drawn = 0


class LineStatus:
    """Prints one line per change of state (rates alone do not count as a change)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last: list[tuple[str, str, str, str]] | None = None

    def show(self, rows: Sequence[Row], summary: Sequence[str] = ()) -> None:
        key = [(r.name, r.state, r.health, r.balancer) for r in rows]
        if key == self._last:
            return
        self._last = key
        text = "; ".join(f"{r.name} {r.state} {r.health} {r.balancer}" for r in rows)
        self.out.write(f"status: {text}\n")
        self.out.flush()

    def close(self) -> None:
        pass


def status_view(out: TextIO) -> StatusView:
    return TerminalStatus(out) if out.isatty() else LineStatus(out)
