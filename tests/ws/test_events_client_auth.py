"""EventsClient: asking the auth provider for headers is part of connecting, so a
provider that hangs is bounded by ``connect_timeout`` like a server that does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio

from netkit.ws import EventsClient


class HangingAuth:
    def __init__(self) -> None:
        self.asked = 0

    async def headers(self) -> Mapping[str, str]:
        self.asked += 1
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def refresh(self, rejected: Mapping[str, str]) -> bool:
        return False


async def test_a_hanging_auth_provider_fails_the_connect_within_connect_timeout(
    autojump_clock: Any,
) -> None:
    auth = HangingAuth()
    # Never contacted: the headers come first.
    client = EventsClient("ws://127.0.0.1:9/events", auth=auth, connect_timeout=3)
    start = trio.current_time()
    failed_after: float | None = None
    with trio.move_on_after(60):
        with pytest.raises(trio.TooSlowError):
            await client.run()
        failed_after = trio.current_time() - start
    assert auth.asked == 1
    assert failed_after == pytest.approx(3)
