"""h2's ``Settings`` with small storage: the difference is most of an idle connection.

h2 keeps every setting as a ``collections.deque`` of values (the current one first, the
ones still waiting for an ACK after it). A deque costs about 760 bytes even with one
item, and a connection holds two ``Settings`` of five to seven entries each: some 9 KiB
of an idle HTTP/2 connection's memory went to deques that almost always hold one
number. Small lists hold the same queue in about 70 bytes; the queue never grows past
a few entries (one per SETTINGS frame awaiting its ACK), so ``pop(0)`` costs nothing.

The behaviour is h2's own: only the storage differs, which a property test checks
against h2's class (tests/http/test_h2_settings.py).
"""

from __future__ import annotations

from typing import Any

import h2.exceptions
import h2.settings
from h2.settings import ChangedSetting, SettingCodes


class CompactSettings(h2.settings.Settings):
    def __init__(
        self, client: bool = True, initial_values: dict[SettingCodes, int] | None = None
    ) -> None:
        super().__init__(client=client, initial_values=initial_values)
        self._settings: dict[Any, Any] = {k: list(v) for k, v in self._settings.items()}

    def __setitem__(self, key: SettingCodes | int, value: int) -> None:
        placeholder = key not in self._settings
        if placeholder:
            # h2 would create a deque here; a list takes its place ([None]: no current
            # value until the ACK, as in h2).
            self._settings[key] = [None]
        try:
            super().__setitem__(key, value)
        except h2.exceptions.InvalidSettingsValueError:
            if placeholder:
                del self._settings[key]
            raise

    def acknowledge(self) -> dict[SettingCodes | int, ChangedSetting]:
        changed: dict[SettingCodes | int, ChangedSetting] = {}
        for key, values in self._settings.items():
            if len(values) > 1:
                old = values.pop(0)
                changed[key] = ChangedSetting(key, old, values[0])
        return changed
