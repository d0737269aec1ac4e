"""Strategy: run each section's measurements as child processes (benchkit.child), every
contender once per repetition, the order rotated each repetition so drift on a shared machine
falls on all alike; keep every run and report medians.

Results: {section: {contender: {metric: median, "runs": [...]}}}; a contender that lacks an
operation has no entry (the tables show "—").
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from benchkit.contenders import SESSIONS, Contender, registry

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Sizes:
    """How much each section asks; --quick is small enough for a test."""

    cheap: int = 100_000
    durable: int = 1_000
    quadratic: int = 500
    workers: int = 8
    per_worker: int = 200
    per_worker_quadratic: int = 25
    history: int = 10_000
    sessions: int = 10_000
    scan_mb: float = 128.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            cheap=1_000,
            durable=50,
            quadratic=20,
            workers=2,
            per_worker=10,
            per_worker_quadratic=5,
            history=200,
            sessions=50,
            scan_mb=1.0,
        )

    def appends(self, c: Contender) -> int:
        return self.quadratic if c.quadratic else self.cheap if c.cheap else self.durable


def run_child(job: dict[str, Any], inline: bool = False) -> dict[str, Any]:
    """One measurement in a fresh process; its JSON answer. `inline` (--quick): in this
    process, so a smoke run costs no interpreter start per measurement (its RSS is then the
    whole run's, not the contender's)."""
    if inline:
        from benchkit import child

        child.START_METHOD = "fork"
        return json.loads(json.dumps(child.measure(dict(job))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [TOOLS, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-m", "benchkit.child", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{job['op']} {job['contender']} failed:\n{done.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if r.get(key) is not None]
            out[key] = statistics.median(values) if values else None
        elif value is None:
            out[key] = None
    return out


class Runner:
    """Holds the base directory, sizes, repetitions and the results as they come."""

    def __init__(self, base: str, sizes: Sizes, reps: int, log: Any = print, inline: bool = False) -> None:
        self.base, self.sizes, self.reps, self.log, self.inline = base, sizes, reps, log, inline
        self.contenders = registry()
        self.results: dict[str, dict[str, dict[str, Any]]] = {}

    def _dir(self) -> str:
        return tempfile.mkdtemp(dir=self.base)

    def _interleave(self, section: str, jobs: dict[str, dict[str, Any]], fresh_dir: bool = True) -> None:
        """Run every job `reps` times, rotating the order; store medians under `section`."""
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in jobs}
        keys = list(jobs)
        for rep in range(self.reps):
            shift = rep % max(1, len(keys))
            for key in keys[shift:] + keys[:shift]:
                job = dict(jobs[key])
                if fresh_dir:
                    job["root"] = self._dir()
                runs[key].append(run_child(job, self.inline))
                if fresh_dir:
                    shutil.rmtree(job["root"], ignore_errors=True)
            self.log(f"  {section}: repetition {rep + 1}/{self.reps} done")
        self.results[section] = {key: _medians(value) for key, value in runs.items()}

    def appends(self) -> None:
        jobs = {
            c.name: {"op": "append", "contender": c.name, "count": self.sizes.appends(c)}
            for c in self.contenders
            if c.can("append")
        }
        self._interleave("appends", jobs)

    def concurrency(self) -> None:
        s = self.sizes
        for kind in SESSIONS:
            jobs = {}
            for c in self.contenders:
                if c.can(kind):
                    per = s.per_worker_quadratic if c.quadratic else s.per_worker
                    jobs[c.name] = {
                        "op": "multi",
                        "contender": c.name,
                        "kind": kind,
                        "workers": s.workers,
                        "per_worker": per,
                    }
            self._interleave(kind, jobs)

    def _built(self, build_op: str, contenders: list[Contender], **args: Any) -> dict[str, dict[str, Any]]:
        """Build each contender's data once (in its own dir); the jobs that read it."""
        jobs = {}
        for c in contenders:
            root = self._dir()
            answer = run_child({"op": build_op, "contender": c.name, "root": root, **args}, self.inline)
            jobs[c.name] = {"contender": c.name, "root": root, "built": answer}
        return jobs

    def reads(self) -> None:
        chosen = [
            c
            for c in self.contenders
            if c.can("read")
            and c.name
            not in ("journal batch", "journal always", "store batch", "store always", "sqlite WAL FULL")
        ]
        jobs = self._built("build_read", chosen, count=self.sizes.history)
        for job in jobs.values():
            job.update(op="read", count=self.sizes.history)
            job.pop("built")
        self._interleave("reads", jobs, fresh_dir=False)

    def listing(self) -> None:
        chosen = [
            c
            for c in self.contenders
            if c.can("listing")
            and c.name in ("journal none", "store none", "praisonaiagents", "sqlite WAL NORMAL")
        ]
        jobs = self._built("build_listing", chosen, sessions=self.sizes.sessions)
        built = {}
        for name, job in jobs.items():
            built[name] = job.pop("built")
            job.update(op="list", sessions=self.sizes.sessions)
        self._interleave("listing", jobs, fresh_dir=False)
        for name, answer in built.items():
            self.results["listing"][name].update(
                create_s=answer["create_s"],
                first_list_ms=answer["first_list_ms"],
                create_rss_mb=answer["rss_mb"],
            )

    def scan(self) -> None:
        names = ("journal none", "sqlite WAL NORMAL")
        chosen = [c for c in self.contenders if c.name in names]
        jobs = self._built("build_scan", chosen, size_mb=self.sizes.scan_mb)
        for job in jobs.values():
            job.pop("built")
            job["op"] = "verify"
        self._interleave("verify", jobs, fresh_dir=False)
        root = jobs["journal none"]["root"]
        self.results["compaction"] = {
            "journal none": run_child(
                {"op": "compact", "contender": "journal none", "root": root}, self.inline
            )
        }
