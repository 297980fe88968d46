"""TrioRunner and TrioStateMachine: frozen between steps, tasks persist, no threads."""

from __future__ import annotations

import threading

import pytest
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from netkit.testing import LoopCrashed, StepTimeout, TrioRunner, TrioStateMachine


def test_background_tasks_persist_and_time_is_frozen_between_steps() -> None:
    runner = TrioRunner()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await trio.sleep(1)
            ticks.append(trio.current_time())

    async def start() -> None:
        runner.nursery.start_soon(ticker)

    threads = threading.active_count()
    runner.run(start)
    assert runner.run(trio.sleep, 3.5) is None
    assert ticks == [1.0, 2.0, 3.0]
    assert runner.clock.current_time() == 3.5  # nothing jumped while we were away
    runner.run(trio.lowlevel.checkpoint)
    assert runner.clock.current_time() == 3.5 and ticks == [1.0, 2.0, 3.0]
    assert threading.active_count() == threads  # guest mode never used its I/O thread
    runner.close()


def test_a_step_that_waits_forever_times_out_in_mock_time() -> None:
    runner = TrioRunner(step_timeout=5.0)
    with pytest.raises(StepTimeout):
        runner.run(trio.sleep_forever)
    assert runner.clock.current_time() == 5.0
    runner.close()


def test_a_crashed_background_task_is_reported() -> None:
    runner = TrioRunner()

    async def crash() -> None:
        await trio.sleep(1)
        raise ValueError("boom")

    async def start() -> None:
        runner.nursery.start_soon(crash)

    runner.run(start)
    with pytest.raises(LoopCrashed):
        runner.run(trio.sleep, 2)
    with pytest.raises(BaseExceptionGroup):
        runner.close()


def test_only_an_autojump_mock_clock_is_accepted() -> None:
    with pytest.raises(ValueError, match="autojump_threshold=0"):
        TrioRunner(trio.testing.MockClock(autojump_threshold=1.0))


class Ticks(TrioStateMachine):
    """A ticker started once keeps time exactly with the clock across async rules."""

    @initialize()
    async def boot(self) -> None:
        self.ticks: list[float] = []

        async def ticker() -> None:
            while True:
                await trio.sleep(1)
                self.ticks.append(trio.current_time())

        self.nursery.start_soon(ticker)

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0]))
    async def wait(self, dt: float) -> None:
        before = trio.current_time()
        await trio.sleep(dt)
        assert trio.current_time() == before + dt

    @rule()
    def sync_rule_calls_into_the_loop(self) -> None:
        assert self.run(trio.lowlevel.checkpoint) is None

    @invariant()
    async def ticks_match_the_clock(self) -> None:
        assert len(self.ticks) == int(trio.current_time())


TestTicks = Ticks.TestCase
TestTicks.settings = settings(settings.default, stateful_step_count=20)


def test_printed_steps_replay_by_hand() -> None:
    """Bridged rules are plain methods: a printed failure can be replayed as code."""
    state = Ticks()
    state.boot()
    state.wait(dt=2.0)
    state.ticks_match_the_clock()
    assert state.ticks == [1.0, 2.0]
    state.teardown()
