"""``TrioStateMachine``: a hypothesis ``RuleBasedStateMachine`` whose rules may be ``async``.

Each example (one run of the machine) owns a :class:`~netkit.testing.TrioRunner`: a trio
loop in guest mode on ``MockClock(autojump_threshold=0)``, created in ``__init__`` and
closed in ``teardown``. ``async def`` rules, invariants and initializers run in that
loop, one after another; tasks started in ``self.nursery`` (servers, connections,
expiry loops, heartbeats) keep running across rules and are cancelled after the
example. Between rules the loop is frozen: mock time moves only while a rule runs (when
it sleeps, or waits for something with a deadline), so a failure replays exactly and
hypothesis can shrink it.

Plain (synchronous) rules stay plain; ``self.run(async_fn, *args)`` calls into the loop
from them. Hypothesis prints the shrunk failure as the usual ``state.rule(...)`` steps.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import trio
import trio.testing
from hypothesis.stateful import RuleBasedStateMachine

from ._runner import TrioRunner

T = TypeVar("T")


def _bridge(function: Callable[..., Any]) -> Callable[..., Any]:
    """A synchronous stand-in for an ``async def`` rule: runs it in the machine's loop."""
    if not inspect.iscoroutinefunction(function):
        return function

    @functools.wraps(function)
    def run_in_loop(machine: TrioStateMachine, *args: Any, **kwargs: Any) -> Any:
        return machine.run(functools.partial(function, machine, *args, **kwargs))

    return run_in_loop


class TrioStateMachine(RuleBasedStateMachine):
    """A state machine whose rules, invariants and initializers may be ``async def``.

    Class attributes: ``step_timeout`` bounds each rule in mock seconds (a rule that
    waits longer fails with :class:`~netkit.testing.StepTimeout`); ``settle`` (default
    True) makes every rule return only once the whole system is idle again.

    Override :meth:`cleanup` (async) to close what the example opened, gracefully,
    before its tasks are cancelled.
    """

    step_timeout: ClassVar[float] = 3600.0
    settle: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.runner = TrioRunner(step_timeout=self.step_timeout)

    @classmethod
    def setup_state(cls) -> Any:
        """Hypothesis' per-class rule table, with every ``async`` function bridged."""
        cache = RuleBasedStateMachine._setup_state_per_class
        if cls in cache:
            return cache[cls]
        state = super().setup_state()
        state = dataclasses.replace(
            state,
            rules=[_bridged(rule) for rule in state.rules],
            initializers=[_bridged(rule) for rule in state.initializers],
            invariants=[_bridged(inv) for inv in state.invariants],
        )
        cache[cls] = state
        return state

    # -- the loop --------------------------------------------------------------------------
    @property
    def nursery(self) -> trio.Nursery:
        """Lives for the example: background tasks started here persist across rules."""
        return self.runner.nursery

    @property
    def clock(self) -> trio.testing.MockClock:
        return self.runner.clock

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in the example's loop (from a synchronous rule)."""
        return self.runner.run(fn, *args, settle=self.settle)

    async def start(self, component: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await nursery.start(component, *args)`` in the example's nursery."""
        return await self.nursery.start(component, *args)

    async def cleanup(self) -> None:
        """Runs in the loop before the example's tasks are cancelled (default: nothing)."""

    def teardown(self) -> None:
        try:
            if not self.runner.closed:
                self.run(self.cleanup)
        finally:
            self.runner.close()


def _bridged(rule: Any) -> Any:
    """The same rule (or invariant) with its function bridged if it is ``async``."""
    bridged = _bridge(rule.function)
    return rule if bridged is rule.function else dataclasses.replace(rule, function=bridged)
