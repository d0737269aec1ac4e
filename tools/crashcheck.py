"""Run the crash-recovery state machines outside pytest, with a chosen budget, and summarize.

    python tools/crashcheck.py --examples 200 --steps 80 --seed 1
    python tools/crashcheck.py --machine compaction

The default budget (100 runs of at most 50 steps) is what the pytest `ci` profile runs: about
4,000 steps per machine, as the summary counts them (hypothesis ends many runs early).

Strategy: the state machines of tests/crash/test_crash_stateful.py (and test_crash_compaction.py)
count what they do in a module-level `STATS` counter; this runs them with
`run_state_machine_as_test` under explicit settings and prints those counts. A violation
raises, prints hypothesis's minimal failing sequence of steps, and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "crash"))
sys.path.insert(0, os.path.dirname(HERE))

from hypothesis import HealthCheck, seed, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

MODULES = {"append": "stateful", "compaction": "compaction", "adoption": "adoption"}


def load_machine(name: str) -> tuple[Any, Any]:
    """The state machine class and its module's STATS counter."""
    module = importlib.import_module(f"test_crash_{MODULES[name]}")
    return module.MACHINE, module.STATS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="state machine runs (default 100)")
    parser.add_argument("--steps", type=int, default=50, help="max steps per run (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--machine", choices=sorted(MODULES), default="append")
    args = parser.parse_args(argv)

    machine, stats = load_machine(args.machine)
    budget = settings(
        max_examples=args.examples,
        stateful_step_count=args.steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    if args.seed is None:  # chosen here, not by hypothesis, so the summary can say it
        args.seed = secrets.randbits(32)
    test = seed(args.seed)(machine)
    started = time.monotonic()
    failure: BaseException | None = None
    try:
        run_state_machine_as_test(test, settings=budget)
    except BaseException as exc:  # report it with the counts, then exit non-zero
        failure = exc
    elapsed = time.monotonic() - started

    print(f"machine:            {machine.__name__} (--seed {args.seed} replays this run)")
    print(f"runs:               {stats['runs']}")
    print(f"steps:              {stats['steps']}")
    print(f"crashes simulated:  {stats['crashes simulated']}")
    print(f"states checked:     {stats['states checked']}")
    print(f"violations:         {stats['violations']}")
    print(f"elapsed:            {elapsed:.1f} s")
    shown = {"runs", "steps", "crashes simulated", "states checked", "violations"}
    details = sorted((k, v) for k, v in stats.items() if k not in shown)
    print("detail:             " + ", ".join(f"{k}={v}" for k, v in details))
    if failure is not None:
        print(f"FAILED: {type(failure).__name__}: {failure}", file=sys.stderr)
        for number, error in enumerate(getattr(failure, "exceptions", [failure]), start=1):
            print(f"--- failure {number}: {type(error).__name__}: {error}", file=sys.stderr)
            print("".join(traceback.format_tb(error.__traceback__)[-4:]), file=sys.stderr)
            steps = [n for n in getattr(error, "__notes__", []) if "no_lock_held" not in n]
            print("\n".join(steps), file=sys.stderr)  # the run's steps, to replay it by hand
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
