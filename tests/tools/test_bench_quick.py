"""`tools/bench.py --quick` keeps working: it runs every contender in a subprocess and writes its
tables and JSON. Nothing timed is asserted (timings belong to the benchmark, not to tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from benchkit.contenders import registry  # noqa: E402

SECTIONS = (
    "appends",
    "threads_one",
    "threads_many",
    "procs_one",
    "procs_many",
    "reads",
    "listing",
    "verify",
    "compaction",
)


def test_quick_run_writes_every_contender(tmp_path: Path) -> None:
    out, md, png = tmp_path / "bench.json", tmp_path / "bench.md", tmp_path / "appends.png"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench.py"),
            "--quick",
            "--dir",
            str(tmp_path),
            "--out",
            str(out),
            "--markdown",
            str(md),
            "--chart",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    names = [c.name for c in registry()]
    assert figures["contenders"] == names
    results = figures["results"]
    assert set(SECTIONS) <= set(results)
    measured = set().union(*(results[s] for s in SECTIONS))
    assert measured == set(names)  # every contender took part in at least one section
    for contender in registry():  # and in every section it supports
        for kind in ("append", "threads_one", "threads_many", "procs_one", "procs_many"):
            section = "appends" if kind == "append" else kind
            assert (contender.name in results[section]) == contender.can(kind), (contender.name, kind)
    for value in results["appends"].values():
        assert value["rate"] > 0 and value["rss_mb"] > 0
    text = md.read_text()
    assert text.startswith("`python tools/bench.py --quick")
    for name in names:
        assert f"| {name} |" in text
        assert name in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("tmp*"))  # the run cleans up after itself
