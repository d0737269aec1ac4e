"""Hypothesis settings and the seed for the crash-recovery state machines.

Strategy: the crash suites take their settings from `crash_settings()`, so they get the same
budget whether or not some other conftest registered a profile of the same name. The profile
is chosen by the environment variable JOURNAL_HYPOTHESIS_PROFILE ("ci" by default, "thorough"
for a local soak), or by `--hypothesis-profile=<name>`: pyproject's addopts load this module
as a plugin (`-p conftest_crash`), so the profiles exist before pytest reads that option.

Every run explores new examples: hypothesis' own `ci` profile (chosen by `CI=true`)
derandomizes, which would replay the same examples on every CI run, so the crash settings set
`derandomize=False` explicitly and `seeded()` seeds the machines with a fresh `CRASH_SEED` per
run. The seed is printed in pytest's header and before each state machine test (pytest shows
a failed test's output), and `JOURNAL_CRASH_SEED=<seed>` replays a run.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

CRASH_PROFILES = {
    # Bounded for CI on a 2-core machine (see CRASH-SAFETY.md for the steps this runs).
    "ci": settings(
        max_examples=100,
        stateful_step_count=50,
        deadline=None,
        derandomize=False,
        suppress_health_check=_QUIET,
    ),
    # A local soak: `JOURNAL_HYPOTHESIS_PROFILE=thorough python -m pytest tests/crash`.
    "thorough": settings(
        max_examples=2000,
        stateful_step_count=120,
        deadline=None,
        derandomize=False,
        suppress_health_check=_QUIET,
    ),
}

for _name, _profile in CRASH_PROFILES.items():
    try:
        settings.get_profile(_name)
    except Exception:  # not registered yet: make `--hypothesis-profile=<name>` work
        settings.register_profile(_name, _profile)

CRASH_SEED = int(os.environ.get("JOURNAL_CRASH_SEED") or secrets.randbits(32))
REPLAY = f"crash state machines: seed {CRASH_SEED} (replay with JOURNAL_CRASH_SEED={CRASH_SEED})"

Machine = TypeVar("Machine")


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


def seeded(machine: Machine) -> Machine:
    """Seed a state machine class (and its subclasses) with this run's `CRASH_SEED`, and make
    its test case print the seed first, so a failure shows how to replay it."""
    seed(CRASH_SEED)(machine)
    case: Any = machine.TestCase  # type: ignore[attr-defined]
    run = case.runTest

    def run_test(self: Any) -> None:
        print(REPLAY)
        run(self)

    run_test.is_hypothesis_test = True  # type: ignore[attr-defined]
    run_test._hypothesis_state_machine_class = machine  # type: ignore[attr-defined]
    case.runTest = run_test
    return machine


def pytest_report_header() -> str:
    return REPLAY
