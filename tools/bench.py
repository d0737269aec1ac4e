"""journal against the stores users would pick instead, side by side in one run (issue #16).

Usage: python tools/bench.py [--quick] [--reps N] [--only SECTION ...] [--out FILE.json]
                             [--markdown FILE.md] [--chart FILE.png] [--dir DIR]

Contenders (tools/benchkit/contenders.py): journal's native API and its DefaultSessionStore in
each durability mode; praisonaiagents' DefaultSessionStore (retention="keep_all"); LangChain's
FileChatMessageHistory; the OpenAI Agents SDK's SQLiteSession on a file; sqlite3 WAL with
synchronous NORMAL and FULL, one committed INSERT a message; the physical limits (a raw write
loop, write + fdatasync per record, fdatasync into a preallocated file, and for 8 threads the
raw group-commit ceiling). The peers come with `pip install 'journal[bench]'`.

Sections: appends (one session, per-append latency: first/last 100), concurrency (8 threads /
8 processes on one session and on 8 sessions), reads (a 10,000-message history cold, warm,
after one new message), listing (10,000 sessions x 10 messages: create, list 50, list all),
scan (verify MB/s, compaction MB/s), and the earlier history (against the docs' JSON file)
and langgraph sections. Every measurement is a fresh process (peak RSS = ru_maxrss), every
contender once per repetition in rotated order; figures are medians, compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchkit import legacy, report
from benchkit.corpus import pool, sizes
from benchkit.runner import Runner, Sizes

SECTIONS = ("appends", "concurrency", "reads", "listing", "scan", "history", "langgraph")
QUICK_SECTIONS = ("appends", "concurrency", "reads", "listing", "scan")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition (a smoke run)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3, quick 1)")
    parser.add_argument("--out", help="write every figure as JSON here")
    parser.add_argument("--markdown", help="write the BENCHMARKS.md tables (with the command) here")
    parser.add_argument("--chart", help="write the append-latency chart here (PNG, needs matplotlib)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, base: str) -> dict[str, Any]:
    reps = args.reps or (1 if args.quick else 3)
    plan = Sizes.quick() if args.quick else Sizes()
    sections = args.only or (QUICK_SECTIONS if args.quick else SECTIONS)
    runner = Runner(
        base, plan, reps, log=lambda line: print(line, file=sys.stderr, flush=True), inline=args.quick
    )
    extra: dict[str, Any] = {}
    for section in sections:
        print(f"section {section} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        if section == "history":
            extra["history"] = legacy.history_read(base, plan.history, max(reps, 3))
            legacy.show_history(extra["history"])
        elif section == "langgraph":
            legacy.langgraph(base, reps)
        else:
            getattr(runner, section)()
        print(f"section {section}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return {
        "reps": reps,
        "sizes": vars(plan),
        "sections": list(sections),
        "results": runner.results,
        "contenders": [c.name for c in runner.contenders],
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python tools/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    base = tempfile.mkdtemp(dir=args.dir)
    started = time.monotonic()
    smallest, largest, mean = sizes(pool())
    try:
        out = run(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    seconds = time.monotonic() - started
    load = os.getloadavg()
    out["meta"] = {
        "command": command,
        "seconds": seconds,
        "loadavg": load,
        "python": sys.version.split()[0],
        "message_bytes": {"min": smallest, "max": largest, "mean": mean},
        "summary": f"{out['reps']} interleaved repetitions, medians; {seconds:.0f} s; load average"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; messages {smallest}-{largest}"
        f" bytes, mean {mean:.0f}",
    }
    names = out["contenders"]
    text = report.markdown(
        out["results"], names, command, out["meta"], out["sizes"]["workers"], out["sizes"]["sessions"]
    )
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(out, handle, indent=1)
    if args.chart and "appends" in out["results"]:
        report.chart(out["results"], args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
