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
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Generic, TypeVar

import trio
import trio.testing
from hypothesis.stateful import (
    INITIALIZE_RULE_MARKER,
    INVARIANT_MARKER,
    PRECONDITIONS_MARKER,
    RULE_MARKER,
    RuleBasedStateMachine,
)

from ._runner import TrioRunner

T = TypeVar("T")

_MARKERS = (RULE_MARKER, INITIALIZE_RULE_MARKER, INVARIANT_MARKER)
#: Other hypothesis attributes a decorated function carries (kept on the bridge).
_CARRIED = (PRECONDITIONS_MARKER,)


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Bridge the class's ``async`` rules, invariants and initializers.

        Each is replaced by a synchronous method carrying the same hypothesis marker, so
        hypothesis runs it like any rule, and a printed failure (``state.rule(...)``)
        can be replayed by calling the methods by hand.
        """
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            for marker in _MARKERS:
                spec = getattr(value, marker, None)
                if spec is None or not inspect.iscoroutinefunction(spec.function):
                    continue
                bridged = _bridge(spec.function)
                setattr(bridged, marker, dataclasses.replace(spec, function=bridged))
                for extra in _CARRIED:
                    if hasattr(value, extra):
                        setattr(bridged, extra, getattr(value, extra))
                setattr(cls, name, bridged)

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

    async def hold(self, manager: AbstractAsyncContextManager[T]) -> Held[T]:
        """Enter ``manager`` in a background task and keep it open across rules.

        Returns a :class:`Held` whose ``value`` is what ``async with`` gave and whose
        ``close()`` leaves the block normally (its ``__aexit__`` runs un-cancelled).
        Anything still held when the example ends is cancelled with the rest.
        """
        held: Held[T] = Held()

        async def keep(task_status: trio.TaskStatus[None]) -> None:
            try:
                async with manager as value:
                    held.value = value
                    task_status.started()
                    await held._release.wait()
            finally:
                held._closed.set()

        await self.nursery.start(keep)
        return held

    async def cleanup(self) -> None:
        """Runs in the loop before the example's tasks are cancelled (default: nothing)."""

    def teardown(self) -> None:
        try:
            if not self.runner.closed:
                self.run(self.cleanup)
        finally:
            self.runner.close()


class Held(Generic[T]):
    """An async context manager kept open by :meth:`TrioStateMachine.hold`."""

    value: T

    def __init__(self) -> None:
        self._release = trio.Event()
        self._closed = trio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self) -> None:
        """Leave the ``async with`` block and wait until its exit has run."""
        self._release.set()
        await self._closed.wait()
