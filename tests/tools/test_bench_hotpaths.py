"""`tools/bench_hotpaths.py` keeps working: this tree against itself as the baseline, tiny sizes.
Nothing timed is asserted (timings belong to the benchmark, not to tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_side_by_side_run_prints_both_tables_with_every_contender() -> None:
    sizes = ["--reps", "1", "--history", "20", "--appends", "30"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_hotpaths.py"), "--baseline", str(ROOT), *sizes],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {"store this", "store baseline"} <= rows  # the readers
    assert {"journal this", "journal baseline", "sqlite WAL NORMAL", "raw write"} <= rows  # the appenders
