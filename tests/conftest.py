"""Shared test configuration: hypothesis profiles, loopback servers and a test CA.

Profiles: ``ci`` (default, bounded so the suite stays fast) and ``heavy`` for runs by
hand: ``HYPOTHESIS_PROFILE=heavy pytest tests``.
"""

from __future__ import annotations

import os

import pytest
import trustme
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "heavy",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the TLS tests."""
    return trustme.CA()
