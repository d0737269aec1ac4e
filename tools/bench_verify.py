"""Verify scan throughput (standalone: `python tools/bench_verify.py [--size MB] [--reps N]`).

Builds one session of `--size` MB of log from `bench_compaction`'s chat corpus, then times
`Journal.verify` on a fresh `Journal` each repetition (the page cache warm, as after the
first read): MB/s of log checked. Two cases: the live log (segments: checksums, numbering,
payloads parsed) and the same history compacted (archives decompressed and checked the same
way, messages.json parsed, views hashed); MB/s counts the log bytes in both. Also the
scan a session's first open does (`Journal.append` on a fresh `Journal`: checksums and
numbering only), for comparison. Medians of `--reps`, wall and CPU seconds (the process's:
less disturbed by other work on the machine); nothing is asserted (target: >= 200 MB/s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from bench_compaction import SID, build_session

from journal import Journal


def _log_bytes(root: str) -> int:
    with Journal(root) as j:
        log = os.path.join(j.session_path(SID), "log")
    return sum(os.path.getsize(os.path.join(log, name)) for name in os.listdir(log))


def _time_verify(root: str) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    with Journal(root) as j:
        report = j.verify(SID)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not report.ok:
        raise SystemExit(f"verify found problems: {report.problems[:3]}")
    return seconds, cpu


def _time_open(root: str) -> tuple[float, float]:
    copy = root + ".open"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with Journal(copy, durability="none") as j:
            j.append(SID, {"role": "user", "content": "one more"})  # opens: scans the log
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=128.0, help="session log size in MB (default 128)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions, medians (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as base:
        live = os.path.join(base, "live")
        build_session(live, args.size)
        mb = _log_bytes(live) / 1024 / 1024
        compacted = os.path.join(base, "compacted")
        shutil.copytree(live, compacted)
        with Journal(compacted, durability="none") as j:
            j.compact(SID)
        times: dict[str, list[tuple[float, float]]] = {
            "verify, live log": [],
            "verify, compacted": [],
            "first open": [],
        }
        for _ in range(args.reps):  # interleaved: each case sees the same machine
            times["verify, live log"].append(_time_verify(live))
            times["verify, compacted"].append(_time_verify(compacted))
            times["first open"].append(_time_open(live))
    print(f"{mb:.1f} MB of log, {args.reps} repetitions, medians (load average {os.getloadavg()[0]:.1f}):")
    for name, values in times.items():
        seconds = statistics.median(wall for wall, _ in values)
        cpu = statistics.median(cpu for _, cpu in values)  # less disturbed by a busy machine
        print(f"  {name:18s} {seconds:7.2f} s  {mb / seconds:7.1f} MB/s", end="")
        print(f"  {cpu:7.2f} CPU s  {mb / cpu:7.1f} MB per CPU second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
