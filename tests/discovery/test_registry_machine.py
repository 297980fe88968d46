"""The registry against a model: ``netkit.testing.RegistryMachine`` (dogfooded).

The machine (its rules and invariants are documented in ``netkit/testing/_registry_machine.py``)
keeps the registry's real expiry task running in one trio loop for the whole example, on
``MockClock(autojump_threshold=0)``; time only moves through ``advance``. The broken
registries that prove the machine has teeth are in ``tests/testing/test_machines_find_bugs.py``.
"""

from __future__ import annotations

from hypothesis import settings

from netkit.discovery import RegistryConfig
from netkit.testing import RegistryMachine


class ShortLogMachine(RegistryMachine):
    """A change log of 3 entries: resuming from an old revision needs a snapshot."""

    config = RegistryConfig(
        deregister_critical_after=4.0, self_preservation_threshold=None, change_log_size=3
    )


TestRegistryMachine = RegistryMachine.TestCase
TestShortLogMachine = ShortLogMachine.TestCase
TestRegistryMachine.settings = settings(settings.default, stateful_step_count=30)
