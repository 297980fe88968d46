"""Limits of the test tools: a step that spins on checkpoints is a livelock."""

from __future__ import annotations

import pytest
import trio

from netkit.testing import StepTimeout, TrioRunner, _runner


def test_a_step_that_spins_on_checkpoints_is_reported_as_a_livelock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = TrioRunner()
    monkeypatch.setattr(_runner, "MAX_TICKS", 1000)

    spinning = True

    async def spin() -> None:
        while spinning:  # never blocks: mock time stands still, step_timeout never fires
            await trio.lowlevel.checkpoint()

    with pytest.raises(StepTimeout, match="livelock"):
        runner.run(spin)
    spinning = False  # the call is still running: let it end so that the loop can close
    runner.close()
