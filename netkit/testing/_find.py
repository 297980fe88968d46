"""``find_failure``: run a state machine and hand back its shrunk failure, for reading.

Used by the toolkit's own tests (a deliberately broken server must be caught, and the
failure must shrink to a short story) and by the tutorial in docs/testing.md.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from hypothesis import HealthCheck, Phase, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import INVARIANT_MARKER, RuleBasedStateMachine, run_state_machine_as_test

_STEP = re.compile(r"^(?:\w+ = )?state\.(\w+)\(")
#: Steps that are not rules: the printed checks and the end of the example.
_NOT_RULES = frozenset({"teardown"})


@attrs.frozen
class Failure:
    """What hypothesis reported for the shrunk failing example."""

    error: BaseException
    #: The report's lines (``state = Machine()``, ``state.rule(...)``, ...).
    report: tuple[str, ...]
    #: The rule calls of the shrunk example, invariant checks and teardown left out.
    steps: tuple[str, ...]


def find_failure(
    machine: type[RuleBasedStateMachine],
    *,
    max_examples: int = 100,
    stateful_step_count: int = 30,
    invariants: frozenset[str] | None = None,
) -> Failure | None:
    """Run ``machine`` deterministically (derandomized); its shrunk failure, or None.

    ``invariants`` names the methods whose printed checks are left out of ``steps``
    (default: the machine's invariants; they are always in ``report``).
    """
    if invariants is None:
        invariants = invariant_names(machine)
    lines: list[str] = []
    config = settings(
        max_examples=max_examples,
        stateful_step_count=stateful_step_count,
        derandomize=True,
        report_multiple_bugs=False,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    with with_reporter(lambda text: lines.extend(str(text).splitlines())):
        try:
            run_state_machine_as_test(machine, settings=config)
        except Exception as error:
            lines.extend(
                line for note in getattr(error, "__notes__", ()) for line in note.splitlines()
            )
            steps = tuple(
                line
                for line in lines
                if (m := _STEP.match(line)) and m[1] not in _NOT_RULES | invariants
            )
            return Failure(error, tuple(lines), steps)
    return None


def invariant_names(machine: type[Any]) -> frozenset[str]:
    """The names of ``machine``'s invariants (to leave them out of ``Failure.steps``)."""
    return frozenset(
        name
        for name in dir(machine)
        if getattr(getattr(machine, name, None), INVARIANT_MARKER, None)
    )
