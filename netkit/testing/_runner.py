"""``TrioRunner``: one trio loop that lives across many synchronous calls, without threads.

Theory of operation
-------------------
A hypothesis ``RuleBasedStateMachine`` calls its rules synchronously, one after another,
but the system under test (a server, its connections, a registry's expiry task) must keep
running *between* rules. Two bridges were used in netkit's tests before this module:

* a trio loop on a thread of its own, each rule sent over with ``trio.from_thread.run``
  -- background tasks persist, but the loop runs (and an autojump clock jumps) while the
  test thread is busy between rules, so timing depends on the host;
* one ``trio.run`` per rule on a shared ``MockClock``, state kept outside -- deterministic,
  but nothing can outlive a rule: every server and connection is rebuilt at each step.

``TrioRunner`` uses trio's *guest mode* instead (``trio.lowlevel.start_guest_run``): trio
asks its host to run callbacks "soon", and the host here is a plain ``deque`` that
:meth:`TrioRunner.run` drains only while a call is in progress. Between calls nothing is
drained, so the loop is *frozen*: no task runs and the clock does not move, yet every
task (server, connections, heartbeats) is still there for the next call.

Two details make this exact:

* The clock must be ``MockClock(autojump_threshold=0)``. Guest mode only waits for I/O
  on a helper thread when it has nothing to do for a while; with this clock trio never
  has a positive timeout (it jumps the clock instead), so no thread is ever started
  (the runner checks, and refuses any other clock).
* Between calls a *dispatcher* task sits in ``wait_all_tasks_blocked()``. trio serves
  that wait before it would autojump, so when the next call resumes the loop, the
  dispatcher wakes first and starts the call's coroutine -- the clock cannot jump ahead
  of the call in the gap. While a call runs, the dispatcher is busy with it and the clock
  autojumps normally.

A call is ``await fn()``, then (by default) ``wait_all_tasks_blocked()`` so that the
system has reacted to it; each call is bounded by ``step_timeout`` mock seconds, so a
call that waits for something that never comes fails with :class:`StepTimeout` at once
instead of hanging. A crash of a background task ends the loop and is raised by the
next call (or by :meth:`TrioRunner.close`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import trio
import trio.testing

T = TypeVar("T")

#: Callbacks a single call may run before it counts as a livelock (a task that spins
#: on checkpoints forever); far above what any real step takes.
MAX_TICKS = 2_000_000


class StepTimeout(AssertionError):
    """A call did not finish within its ``step_timeout`` (mock seconds): it hung."""


class LoopCrashed(AssertionError):
    """The trio loop ended while calls were still expected (a background task failed)."""


class TrioRunner:
    """A trio loop driven step by step from synchronous code (see the module docstring).

    ``runner.run(async_fn, *args)`` runs one coroutine to completion in the loop and
    returns its result; tasks started in ``runner.nursery`` keep running across calls.
    ``close()`` cancels them and ends the loop. Not thread-safe; one runner per thread
    at a time, and not from inside another ``trio.run``.
    """

    def __init__(
        self,
        clock: trio.testing.MockClock | None = None,
        *,
        step_timeout: float = 3600.0,
    ) -> None:
        self.clock = clock or trio.testing.MockClock(autojump_threshold=0)
        if self.clock.autojump_threshold != 0 or self.clock.rate != 0:
            raise ValueError("TrioRunner needs MockClock(autojump_threshold=0) with rate 0")
        self.step_timeout = step_timeout
        self._callbacks: collections.deque[Callable[[], object]] = collections.deque()
        self._calls: collections.deque[
            tuple[Callable[[], Awaitable[Any]], list[outcome.Outcome[Any]], bool]
        ] = collections.deque()
        self._closing = False
        self._done: outcome.Outcome[None] | None = None
        self._nursery: trio.Nursery | None = None
        self._thread = threading.get_ident()
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=self._soon_threadsafe,
            run_sync_soon_not_threadsafe=self._callbacks.append,
            done_callback=self._finished,
            clock=self.clock,
        )
        self.run(trio.lowlevel.checkpoint)

    # -- what tests use ------------------------------------------------------------------
    @property
    def nursery(self) -> trio.Nursery:
        """A nursery that lives until :meth:`close`: start background tasks here."""
        assert self._nursery is not None
        return self._nursery

    @property
    def closed(self) -> bool:
        return self._done is not None

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, settle: bool = True) -> T:
        """Run ``await fn(*args)`` in the loop and return its result (or raise its error).

        With ``settle`` (the default) the call returns only once every task is blocked
        again, i.e. the system has reacted to what ``fn`` did, without time passing.
        """
        if self._done is not None:
            raise LoopCrashed("the trio loop has ended") from _error_of(self._done)
        box: list[outcome.Outcome[T]] = []
        self._calls.append((lambda: fn(*args), box, settle))
        self._pump(lambda: bool(box))
        if box and isinstance(box[0], outcome.Error) and isinstance(box[0].error, trio.Cancelled):
            self._pump(lambda: False)  # cancelled from outside the call: the loop is ending
        if not box or (self._done is not None and _error_of(self._done) is not None):
            raise LoopCrashed("the trio loop ended during the call") from _error_of(self._done)
        return box[0].unwrap()

    def close(self) -> None:
        """Cancel every task and end the loop; raises a background task's failure."""
        if self._done is None:
            self._closing = True
            self._pump(lambda: False)
        assert self._done is not None
        self._done.unwrap()

    # -- the loop ----------------------------------------------------------------------
    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while not self._closing:
                # Parked here between calls: trio wakes this before any autojump.
                await trio.testing.wait_all_tasks_blocked()
                while self._calls and not self._closing:
                    fn, box, settle = self._calls.popleft()
                    result = await outcome.acapture(self._bounded, fn)
                    if settle:
                        await trio.testing.wait_all_tasks_blocked()
                    box.append(result)
            nursery.cancel_scope.cancel()

    async def _bounded(self, fn: Callable[[], Awaitable[T]]) -> T:
        with trio.move_on_after(self.step_timeout) as scope:
            return await fn()
        assert scope.cancelled_caught
        raise StepTimeout(f"the step did not finish within {self.step_timeout} mock seconds")

    def _soon_threadsafe(self, callback: Callable[[], object]) -> None:
        if threading.get_ident() != self._thread:  # pragma: no cover - guarded by the clock
            raise RuntimeError("guest run used its I/O thread: the clock is not autojumping")
        self._callbacks.append(callback)

    def _finished(self, result: outcome.Outcome[None]) -> None:
        self._done = result

    def _pump(self, until: Callable[[], bool]) -> None:
        ticks = 0
        while not until() and self._done is None:
            if not self._callbacks:  # pragma: no cover - trio always schedules a tick
                raise LoopCrashed("the trio loop stopped scheduling itself")
            self._callbacks.popleft()()
            ticks += 1
            if ticks > MAX_TICKS:
                raise StepTimeout(f"livelock: {MAX_TICKS} scheduler ticks without finishing")


def _error_of(done: outcome.Outcome[None] | None) -> BaseException | None:
    return done.error if isinstance(done, outcome.Error) else None
