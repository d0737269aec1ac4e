"""Side by side: the cold history read and the OS-buffered append of this tree and of another.

Strategy: each measurement runs in a fresh process (a cold read is a new process reading a
compacted session), the trees and contenders interleaved over repetitions, medians of wall
and CPU time (`time.process_time`: the fairer figure when other work shares the 2 cores).
`--baseline DIR` names another checkout's root (e.g. `git worktree add /tmp/base HEAD`);
without it only this tree runs. praisonaiagents' `get_chat_history` (the `bench` extra) and
sqlite WAL NORMAL / the raw write loop are the yardsticks of issue #16.

    python tools/bench_hotpaths.py --baseline /tmp/base --reps 7
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

TOOLS = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(TOOLS)


def _child(args: list[str]) -> None:
    """In a fresh process: `read CODE KIND DIR` or `append CODE KIND COUNT DIR`, one JSON line."""
    op, code, kind = args[0], args[1], args[2]
    sys.path[:0] = [TOOLS, code]
    from benchkit.contenders import PraisonHandle, RawHandle, SqliteHandle, StoreHandle
    from benchkit.corpus import pool

    messages = pool()
    if kind in ("journal", "store"):
        import journal

        assert journal.__file__.startswith(code), journal.__file__  # the tree asked for
    if op == "build":
        handle: Any = PraisonHandle(args[3]) if kind == "praison" else StoreHandle(args[3], "none")
        handle.build("s", [messages[i % len(messages)] for i in range(int(args[4]))])
        handle.build("w", messages[:10])
        handle.close()  # the store compacts on close: a cold read reads messages.json
        return
    if op == "read":
        opener = (
            (lambda: PraisonHandle(args[3])) if kind == "praison" else (lambda: StoreHandle(args[3], "none"))
        )
        first = opener()
        assert first.read("w") == 10  # the code paths are loaded, the data is not
        handle = opener()
        cpu, wall = time.process_time(), time.perf_counter()
        count = handle.read("s")
        out = {
            "cold_ms": (time.perf_counter() - wall) * 1e3,
            "cold_cpu_ms": (time.process_time() - cpu) * 1e3,
        }
        wall = time.perf_counter()
        handle.read("s")
        out["warm_ms"] = (time.perf_counter() - wall) * 1e3
        handle.append("s", messages[count % len(messages)])
        wall = time.perf_counter()
        assert handle.read("s") == count + 1
        out["after_one_ms"] = (time.perf_counter() - wall) * 1e3
        print(json.dumps(out))
        return
    count, root = int(args[3]), args[4]
    if kind == "journal":
        from benchkit.contenders import JournalHandle

        handle = JournalHandle(root, "none")
    else:
        makers = {"store": lambda: StoreHandle(root, "none"), "sqlite": lambda: SqliteHandle(root, "NORMAL")}
        handle = makers.get(kind, lambda: RawHandle(root, False))()
    handle.append("s", messages[0])
    batch = [messages[i % len(messages)] for i in range(1, count + 1)]
    cpu, wall = time.process_time(), time.perf_counter()
    for message in batch:
        handle.append("s", message)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    handle.close()
    print(json.dumps({"us": wall / count * 1e6, "cpu_us": cpu / count * 1e6}))


def _run(args: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout)) if done.stdout.strip() else {}


def _medians(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="another checkout's root, measured side by side")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--history", type=int, default=10_000, help="messages of the read session")
    parser.add_argument("--appends", type=int, default=30_000)
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    trees = {"this": HERE} | ({"baseline": os.path.abspath(args.baseline)} if args.baseline else {})
    work = tempfile.mkdtemp(prefix="bench-hotpaths-")
    try:
        readers = [(f"store {t}", code, "store") for t, code in trees.items()]
        try:
            import praisonaiagents  # noqa: F401
        except ImportError:
            print("praisonaiagents not installed (the bench extra): read without it")
        else:
            readers.append(("praisonaiagents", HERE, "praison"))
        writers = [(f"{k} {t}", code, k) for t, code in trees.items() for k in ("journal", "store")]
        writers += [("sqlite WAL NORMAL", HERE, "sqlite"), ("raw write", HERE, "raw")]
        built: dict[str, str] = {}
        for name, code, kind in readers:
            built[name] = os.path.join(work, f"built-{len(built)}")
            _run(["build", code, kind, built[name], str(args.history)])
        reads: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in readers}
        appends: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in writers}
        for rep in range(args.reps):
            for name, code, kind in readers[rep % len(readers) :] + readers[: rep % len(readers)]:
                copy = os.path.join(work, "read")
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(built[name], copy)  # each read starts from the same files
                reads[name].append(_run(["read", code, kind, copy]))
            for name, code, kind in writers[rep % len(writers) :] + writers[: rep % len(writers)]:
                root = os.path.join(work, "append")
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root)
                appends[name].append(_run(["append", code, kind, str(args.appends), root]))
        _report(_medians(reads), _medians(appends))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _report(reads: dict[str, dict[str, float]], appends: dict[str, dict[str, float]]) -> None:
    yard = reads.get("praisonaiagents")
    print("| reader | cold ms | cold CPU ms | warm ms | after one ms | after one / cold | cold x praison |")
    print("|---|---|---|---|---|---|---|")
    for name, m in reads.items():
        ratio = f"{m['cold_cpu_ms'] / yard['cold_cpu_ms']:.3f}x (CPU)" if yard else "—"
        print(
            f"| {name} | {m['cold_ms']:.2f} | {m['cold_cpu_ms']:.2f} | {m['warm_ms']:.2f} |"
            f" {m['after_one_ms']:.2f} | {m['after_one_ms'] / m['cold_ms']:.3f}x | {ratio} |"
        )
    sqlite, raw = appends["sqlite WAL NORMAL"], appends["raw write"]
    print("\n| appender (none) | us/append | CPU us | x sqlite NORMAL | x raw write | CPU x raw write |")
    print("|---|---|---|---|---|---|")
    for name, m in appends.items():
        print(
            f"| {name} | {m['us']:.2f} | {m['cpu_us']:.2f} | {sqlite['us'] / m['us']:.2f}x |"
            f" {raw['us'] / m['us']:.3f}x | {raw['cpu_us'] / m['cpu_us']:.3f}x |"
        )


if __name__ == "__main__":
    sys.exit(main())
