"""Hypothesis settings profiles for the crash-recovery tests.

Strategy: the crash suites take their settings from `crash_settings()`, so they get the same
budget whether or not some other conftest registered a profile of the same name. The profile
is chosen by the environment variable JOURNAL_HYPOTHESIS_PROFILE ("ci" by default, "thorough"
for a local soak), or by `--hypothesis-profile=<name>` when this module is loaded as a pytest
plugin early enough for that option (`python -m pytest -p tests.conftest_crash
--hypothesis-profile=thorough tests/test_crash_stateful.py`): pytest loads the profile before
it imports test modules, so the profile must be registered by then.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

CRASH_PROFILES = {
    # Bounded for CI on a 2-core machine: at least 2,000 state-machine steps in total.
    "ci": settings(max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=_QUIET),
    # A local soak: `JOURNAL_HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_crash_*.py`.
    "thorough": settings(
        max_examples=2000, stateful_step_count=120, deadline=None, suppress_health_check=_QUIET
    ),
}

for _name, _profile in CRASH_PROFILES.items():
    try:
        settings.get_profile(_name)
    except Exception:  # not registered yet: make `--hypothesis-profile=<name>` work
        settings.register_profile(_name, _profile)


def crash_profile_name() -> str:
    """The chosen profile: the environment variable, else a crash profile loaded by pytest."""
    name = os.environ.get("JOURNAL_HYPOTHESIS_PROFILE")
    if name is None:
        current = settings.get_current_profile_name()
        name = current if current in CRASH_PROFILES else "ci"
    if name not in CRASH_PROFILES:
        raise ValueError(f"JOURNAL_HYPOTHESIS_PROFILE must be one of {sorted(CRASH_PROFILES)}")
    return name


def crash_settings() -> settings:
    return CRASH_PROFILES[crash_profile_name()]
