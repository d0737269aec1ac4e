"""Strategy: every measurement runs in a fresh process (`python -m benchkit.child JSON`), one
contender at a time, so its peak RSS (`ru_maxrss`) is its own and no contender inherits
another's caches or imports; the parent interleaves these processes over repetitions.

The process prints one JSON object on its last line of stdout.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
from typing import Any

from benchkit.contenders import Contender, by_name
from benchkit.corpus import pool

MESSAGES = pool()
START_METHOD = "spawn"  # --quick runs inline and forks: no interpreter start per process


def _msg(i: int) -> dict[str, Any]:
    return MESSAGES[i % len(MESSAGES)]


def _curve(latencies: list[float]) -> list[tuple[int, float]]:
    """(session length, median us of the 100 appends ending there) at ~log-spaced points."""
    points, at = [], 100
    while at <= len(latencies):
        points.append((at, statistics.median(latencies[at - 100 : at]) * 1e6))
        at = max(at + 100, int(at * 1.25) // 100 * 100)
    if points and points[-1][0] != len(latencies) and len(latencies) >= 100:
        points.append((len(latencies), statistics.median(latencies[-100:]) * 1e6))
    return points


def op_append(c: Contender, root: str, count: int) -> dict[str, Any]:
    """Append `count` messages to one session, timing each."""
    handle = c.opener(root)
    handle.append("warm-up", _msg(0))
    clock = time.perf_counter
    latencies = []
    started = clock()
    for i in range(count):
        t = clock()
        handle.append("s", _msg(i))
        latencies.append(clock() - t)
    elapsed = clock() - started
    handle.close()
    window = min(100, count)
    return {
        "rate": count / elapsed,
        "count": count,
        "first_us": statistics.median(latencies[:window]) * 1e6,
        "last_us": statistics.median(latencies[-window:]) * 1e6,
        "curve": _curve(latencies),
    }


def _worker_appends(handle: Any, sid: str, count: int, offset: int) -> None:
    for i in range(count):
        handle.append(sid, _msg(offset + i))


def _proc_worker(name: str, root: str, sid: str, count: int, offset: int, start: Any, ends: Any) -> None:
    handle = by_name(name).opener(root)
    # Warmed up on the session it measures: a long-running agent process has opened it and
    # synced its directories long before; a 1,600-append window must not time eight first opens.
    handle.append(sid, _msg(offset))
    ends.put(None)  # ready: imported, opened, written once
    if not start.wait(600):
        return
    _worker_appends(handle, sid, count, offset)
    ends.put(time.monotonic())  # before closing: interpreter exit is not append time
    handle.close()


def op_multi(c: Contender, root: str, kind: str, workers: int, per_worker: int) -> dict[str, Any]:
    """`workers` threads or processes appending `per_worker` each, to one session or one each."""
    many = kind.endswith("_many")
    sids = [f"s{w}" if many else "s" for w in range(workers)]
    if kind.startswith("procs"):
        # Created once here, so the workers only open it: eight processes creating one sqlite
        # database (and switching it to WAL) at once can fail with "database is locked".
        c.opener(root).close()
        ctx = multiprocessing.get_context(START_METHOD)
        start, ends = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(
                target=_proc_worker,
                args=(c.name, root, sid, per_worker, w * per_worker, start, ends),
                daemon=True,  # a worker that failed must not keep the benchmark waiting at exit
            )
            for w, sid in enumerate(sids)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:  # every process imports and opens its store before the clock starts
            assert ends.get(timeout=300) is None
        started = time.monotonic()
        start.set()
        last = max(ends.get(timeout=600) for _ in procs)
        for proc in procs:
            proc.join()
        return {"rate": workers * per_worker / (last - started)}
    shared = None if c.per_thread else c.opener(root)
    handles = [shared or c.opener(root) for _ in sids]
    for handle, sid in zip(handles, sids, strict=True):
        handle.append(sid, _msg(0))  # warmed up on the session it measures, as the processes
    threads = [
        threading.Thread(target=_worker_appends, args=(h, sid, per_worker, w * per_worker))
        for w, (h, sid) in enumerate(zip(handles, sids, strict=True))
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for handle in {id(h): h for h in handles}.values():
        handle.close()
    return {"rate": workers * per_worker / elapsed}


def op_build_read(c: Contender, root: str, count: int) -> dict[str, Any]:
    handle = c.opener(root)
    handle.build("s", [_msg(i) for i in range(count)])
    handle.build("w", [_msg(i) for i in range(10)])
    if hasattr(handle, "journal") and c.name.startswith("journal"):
        handle.journal.compact("s")  # as DefaultSessionStore.close() leaves it
    handle.close()
    return {}


def op_read(c: Contender, root: str, count: int) -> dict[str, Any]:
    """Cold (a new handle, as after a restart), warm (the same again), after one new message."""
    first = c.opener(root)
    assert first.read("w") == 10  # the code paths are loaded; the data is not
    clock = time.perf_counter
    handle = c.opener(root)
    t = clock()
    got = handle.read("s")
    cold = clock() - t
    assert got >= count, (got, count)
    t = clock()
    handle.read("s")
    warm = clock() - t
    handle.append("s", _msg(count))
    t = clock()
    handle.read("s")
    after_one = clock() - t
    handle.close()
    first.close()
    return {"cold_ms": cold * 1e3, "warm_ms": warm * 1e3, "after_one_ms": after_one * 1e3}


def op_build_listing(c: Contender, root: str, sessions: int) -> dict[str, Any]:
    handle = c.opener(root)
    started = time.perf_counter()
    for n in range(sessions):
        handle.build(f"session-{n:05d}", [_msg(n * 10 + i) for i in range(10)])
    create = time.perf_counter() - started
    first = None
    if hasattr(handle, "list50"):
        handle.close()  # the views are current, as a program leaves them
        handle = c.opener(root)
        t = time.perf_counter()
        handle.list50()
        first = (time.perf_counter() - t) * 1e3
    handle.close()
    return {"create_s": create, "first_list_ms": first}


def op_list(c: Contender, root: str, sessions: int) -> dict[str, Any]:
    handle = c.opener(root)
    out: dict[str, Any] = {}
    for label, call in (("list50_ms", "list50"), ("list_all_ms", "list_all")):
        if hasattr(handle, call):
            t = time.perf_counter()
            got = getattr(handle, call)()
            out[label] = (time.perf_counter() - t) * 1e3
            assert got == (min(50, sessions) if call == "list50" else sessions), (call, got)
    handle.close()
    return out


def op_build_scan(c: Contender, root: str, size_mb: float) -> dict[str, Any]:
    """A session of `size_mb` MB of log (journal), or the same messages in one SQLite table."""
    handle = c.opener(root)
    target, written, i = int(size_mb * 1024 * 1024), 0, 0
    while written < target:
        batch = [_msg(i + k) | {"n": i + k} for k in range(500)]  # distinct lines, as a real log
        handle.build("s", batch)
        written += sum(len(json.dumps(m)) for m in batch) + 60 * len(batch)
        i += len(batch)
    handle.close()
    return {"messages": i}


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def op_verify(c: Contender, root: str) -> dict[str, Any]:
    handle = c.opener(root)
    size = _tree_bytes(root)
    t = time.perf_counter()
    if hasattr(handle, "journal"):
        assert handle.journal.verify("s").ok
    else:
        handle.verify()
    seconds = time.perf_counter() - t
    handle.close()
    return {"mb": size / 2**20, "seconds": seconds, "mb_s": size / 2**20 / seconds}


def op_compact(c: Contender, root: str) -> dict[str, Any]:
    handle = c.opener(root)
    t = time.perf_counter()
    result = handle.journal.compact("s")
    seconds = time.perf_counter() - t
    handle.close()
    mb = result.folded_bytes / 2**20
    return {"mb": mb, "seconds": seconds, "mb_s": mb / seconds}


OPS = {
    "append": op_append,
    "multi": op_multi,
    "build_read": op_build_read,
    "read": op_read,
    "build_listing": op_build_listing,
    "list": op_list,
    "build_scan": op_build_scan,
    "verify": op_verify,
    "compact": op_compact,
}


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (its "op", "contender" and arguments); its figures and peak RSS."""
    contender = by_name(job.pop("contender"))
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, Any] = OPS[job.pop("op")](contender, **job)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["base_rss_mb"] = base_kb / 1024
    return out


def main() -> None:
    print(json.dumps(measure(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
