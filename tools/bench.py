"""Append benchmarks for journal, each measured side by side with its baseline in one run.

Usage: python tools/bench.py [--quick] [--dir DIR] [--reps N]
                           [--only appends|history|latency|listing|langgraph]

Every figure is a median over interleaved repetitions (journal, baseline, journal, ...) so the
noise of a shared 2-core machine hits both sides alike; the ratios are what to compare.
Targets (issue #2): none >= 0.2x the raw loop and >= 80,000 appends/s; always >= 0.8x a raw
write+fdatasync loop; batch with 8 threads >= 4x always with 1 thread; latency of the last 100
appends of a 100,000-record session <= 1.3x the first 100. And (issue #4) get_chat_history of
a compacted 10,000-message session against json.load of the same messages as the docs' JSON
store writes them (one indented file, each message with its timestamp), cold (a new store, as
after a restart) and warm (the same store again, as an agent does each turn).
And (issue #11) DefaultSessionStore.list_sessions(limit=50) and list_sessions() of 10,000
sessions of 10 messages against praisonaiagents 1.7.17's list_sessions of the same data
(targets >= 10x and >= 2x faster); skipped with a note if praisonaiagents is not installed.
tools/bench_compaction.py measures the compactor itself.
"""

from __future__ import annotations

import argparse
import calendar
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import xxhash

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from journal import DefaultSessionStore, Journal

MESSAGE = {
    "role": "assistant",
    "content": "Sure - here is a short answer to your question about file formats. " * 2,
    "metadata": {"model": "gpt-4", "token_count": 42},
}


def _fresh(base: str) -> str:
    return tempfile.mkdtemp(dir=base)


def journal_rate(base: str, mode: str, count: int) -> float:
    root = _fresh(base)
    with Journal(root, durability=mode) as journal:
        journal.append("s", MESSAGE)
        started = time.perf_counter()
        for _ in range(count):
            journal.append("s", MESSAGE)
        elapsed = time.perf_counter() - started
    shutil.rmtree(root)
    return count / elapsed


def raw_rate(base: str, sync: bool, count: int) -> float:
    """orjson + xxh3 + os.write of comparable lines to an open file: no lock, no checks."""
    root = _fresh(base)
    fd = os.open(os.path.join(root, "raw.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    started = time.perf_counter()
    for seq in range(count):
        os.write(fd, _raw_line(seq))
        if sync:
            os.fdatasync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    shutil.rmtree(root)
    return count / elapsed


def batch_threads_rate(base: str, threads: int, per_thread: int) -> float:
    root = _fresh(base)
    with Journal(root, durability="batch") as journal:
        journal.append("s", MESSAGE)

        def work() -> None:
            for _ in range(per_thread):
                journal.append("s", MESSAGE)

        rate = _threads_rate(threads, per_thread, work)
    shutil.rmtree(root)
    return rate


def _raw_line(seq: int) -> bytes:
    body = b'"seq":%d,"data":%s}' % (seq, orjson.dumps(MESSAGE))
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


class _Waiter:
    __slots__ = ("gate", "lead", "line")

    def __init__(self, line: bytes) -> None:
        self.line, self.lead = line, False
        self.gate = threading.Lock()
        self.gate.acquire()


def raw_group_commit_rate(base: str, threads: int, per_thread: int) -> float:
    """The ceiling of thread group commit here: the flat combining and gather of journal's
    `batch` and nothing else (no file lock, no seq, no checks, no error paths)."""
    fd = os.open(os.path.join(_fresh(base), "raw.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    guard = threading.Lock()
    queue: list[_Waiter] = []
    state = {"leading": False, "awaited": 0, "last": 0, "sync": 0.0}

    def append(line: bytes) -> None:
        me = _Waiter(line)
        with guard:
            queue.append(me)
            lead, state["leading"] = not state["leading"], True
            if len(queue) == state["awaited"]:
                state["awaited"] = 0
                queue[0].gate.release()
        if not lead:
            me.gate.acquire()
            if not me.lead:
                return
        with guard:
            gather = len(queue) < state["last"]
            state["awaited"] = state["last"] if gather else 0
        if gather:
            me.gate.acquire(timeout=min(state["sync"] / 2, 0.001))
        with guard:
            served = queue[:]
            queue.clear()
            state["last"], state["awaited"] = len(served), 0
        os.write(fd, b"".join(waiter.line for waiter in served))
        started = time.perf_counter()
        os.fdatasync(fd)
        state["sync"] = time.perf_counter() - started
        with guard:
            heir = queue[0] if queue else None
            state["leading"] = heir is not None
        if heir is not None:
            heir.lead = True
            heir.gate.release()
        for waiter in served:
            if waiter is not me:
                waiter.gate.release()

    def work() -> None:
        for seq in range(per_thread):
            append(_raw_line(seq))

    rate = _threads_rate(threads, per_thread, work)
    os.close(fd)
    return rate


def _threads_rate(threads: int, per_thread: int, work: Callable[[], None]) -> float:
    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * per_thread / (time.perf_counter() - started)


def _process_appender(root: str, count: int, start: Any, ends: Any) -> None:
    with Journal(root, durability="batch") as journal:
        journal.append("warm-up", MESSAGE)
        start.wait()
        for _ in range(count):
            journal.append("s", MESSAGE)
        ends.put(time.monotonic())  # before closing: interpreter exit is not append time


def batch_processes_rate(base: str, processes: int, per_process: int) -> float:
    """`batch` appends/s of separate processes on one session (each fsyncs on its own)."""
    root = _fresh(base)
    ctx = multiprocessing.get_context("spawn")
    start, ends = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_process_appender, args=(root, per_process, start, ends)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let every process import and open the store before the clock starts
    started = time.monotonic()
    start.set()
    last = max(ends.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join()
    shutil.rmtree(root)
    return processes * per_process / (last - started)


def latency_growth(base: str, records: int) -> tuple[float, float]:
    """Median latency (us) of the first 100 and the last 100 appends of a `records` session."""
    root = _fresh(base)
    latencies = []
    with Journal(root, durability="none") as journal:
        for _ in range(records):
            started = time.perf_counter()
            journal.append("s", MESSAGE)
            latencies.append(time.perf_counter() - started)
    shutil.rmtree(root)
    first = statistics.median(latencies[:100]) * 1e6
    last = statistics.median(latencies[-100:]) * 1e6
    return first, last


def documented_file(path: str, batch: list[dict[str, Any]], timestamps: bool) -> None:
    """The messages file of the docs' JSON store: each message with its "timestamp" (one per
    3 s, as ISO-8601 UTC with milliseconds), indented, with "total_messages" and
    "last_updated". Without `timestamps`, the messages alone (the baseline of earlier runs)."""
    start = calendar.timegm((2024, 1, 15, 10, 30, 15, 0, 0, 0))
    stamps = [time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + 3 * i)) for i in range(len(batch))]
    if timestamps:
        messages = [
            {"role": m["role"], "content": m["content"], "timestamp": stamp, **m}
            for m, stamp in zip(batch, stamps, strict=True)
        ]
        document = {"messages": messages, "total_messages": len(batch), "last_updated": stamps[-1]}
    else:
        document = {"messages": batch, "total_messages": len(batch)}
    with open(path, "w") as handle:
        json.dump(document, handle, indent=2)


def history_read(base: str, messages: int, reps: int) -> tuple[float, float, float, float]:
    """Median ms of get_chat_history cold, warm, and of json.load of an equivalent file in
    the documented layout, and of the same file without its timestamps."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_compaction import corpus

    root = _fresh(base)
    stream = corpus(seed=11)
    batch = [next(stream) for _ in range(messages)]
    with DefaultSessionStore(root, durability="none") as store:
        store.set_chat_history("s", batch)  # close() compacts: messages.json is current
    single, bare = os.path.join(base, "single.json"), os.path.join(base, "bare.json")
    documented_file(single, batch, timestamps=True)
    documented_file(bare, batch, timestamps=False)

    def cold() -> float:
        with DefaultSessionStore(root) as fresh:
            started = time.perf_counter()
            assert len(fresh.get_chat_history("s")) == messages
            return time.perf_counter() - started

    warm_store = DefaultSessionStore(root)
    warm_store.get_chat_history("s")

    def warm() -> float:
        started = time.perf_counter()
        assert len(warm_store.get_chat_history("s")) == messages
        return time.perf_counter() - started

    def load(path: str) -> float:
        started = time.perf_counter()
        with open(path) as handle:
            assert len(json.load(handle)["messages"]) == messages
        return time.perf_counter() - started

    times: tuple[list[float], ...] = ([], [], [], [])
    for _ in range(reps):
        for sink, run in zip(times, (cold, warm, lambda: load(single), lambda: load(bare)), strict=True):
            sink.append(run())
    warm_store.journal.close()
    return tuple(statistics.median(t) * 1000 for t in times)  # type: ignore[return-value]


def build_listing_stores(base: str, sessions: int) -> tuple[Any, Any] | None:
    """`sessions` sessions of 10 messages (the same texts) in journal and in praisonaiagents'
    JSON store (retention "keep_all"); None if praisonaiagents is not importable."""
    try:
        from praisonaiagents.session.store import DefaultSessionStore as PraisonStore
    except ImportError:
        return None
    history = [
        {"role": ("user", "assistant")[i % 2], "content": f"{MESSAGE['content']} ({i})"} for i in range(10)
    ]
    theirs = PraisonStore(session_dir=os.path.join(base, "praison"), retention="keep_all")
    ours = DefaultSessionStore(os.path.join(base, "journal"), durability="none")
    for n in range(sessions):
        theirs.set_chat_history(f"session-{n:05d}", history)
        ours.set_chat_history(f"session-{n:05d}", history)
    ours.close()  # the views of every session written are current, as a program leaves them
    return ours, theirs


def listing(base: str, reps: int, sessions: int) -> None:
    """list_sessions(limit=50) and list_sessions() of journal and praisonaiagents 1.7.17."""
    stores = build_listing_stores(base, sessions)
    if stores is None:
        print("listing: skipped, praisonaiagents is not importable (pip install praisonaiagents==1.7.17)")
        return
    ours, theirs = stores
    # The first listing after the writes reads every session and writes the listing index
    # (FORMAT.md, "Listing index"); the repetitions below use it, as later listings do.
    started = time.perf_counter()
    ours.list_sessions()
    first = time.perf_counter() - started
    print(
        f"first list_sessions(limit=50) after the writes (reads all, builds the index): {first * 1000:.1f} ms"
    )
    for label, limit, target in (("limit=50", 50, 10), ("all", sessions, 2)):
        args = {} if limit == 50 else {"limit": None}

        def ours_run(args: dict[str, Any] = args, limit: int = limit) -> float:
            started = time.perf_counter()
            assert len(ours.list_sessions(**args)) == limit
            return time.perf_counter() - started

        def theirs_run(limit: int = limit) -> float:
            started = time.perf_counter()
            assert len(theirs.list_sessions(limit=limit)) == limit
            return time.perf_counter() - started

        mine, base_time = side_by_side(reps, ours_run, theirs_run)
        print(
            f"list_sessions({label}) of {sessions:,} sessions x 10 messages: journal {mine * 1000:.1f} ms"
            f" vs praisonaiagents {base_time * 1000:.1f} ms: {base_time / mine:.1f}x faster"
            f" (target >= {target}x)"
        )
    ours.journal.close()


def side_by_side(reps: int, ours: Callable[[], float], base: Callable[[], float]) -> tuple[float, float]:
    mine, theirs = [], []
    for _ in range(reps):
        mine.append(ours())
        theirs.append(base())
    return statistics.median(mine), statistics.median(theirs)


SECTIONS = ("appends", "history", "latency", "listing", "langgraph")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 7, quick 3)")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 7)
    sections = args.only or SECTIONS
    base = tempfile.mkdtemp(dir=args.dir)
    print(f"journal benchmarks ({', '.join(sections)}), {reps} interleaved repetitions, dir {base}")
    try:
        if "appends" in sections:
            appends(base, reps, args.quick)
        if "history" in sections:
            cold, warm, load, bare = history_read(base, 10_000, reps)
            print(f"get_chat_history, 10,000 compacted messages: cold {cold:.1f} ms ({cold / load:.2f}x),")
            print(
                f"  warm {warm:.1f} ms ({warm / load:.2f}x) vs json.load of the documented messages"
                f" file {load:.1f} ms (target <= 1x);"
            )
            print(f"  the same file without timestamps {bare:.1f} ms: cold {cold / bare:.2f}x")
        if "latency" in sections:
            records = 20_000 if args.quick else 100_000
            first, last = latency_growth(base, records)
            print(f"latency of one append ('none'): first 100 median {first:.1f} us,")
            print(
                f"  last 100 of {records:,} median {last:.1f} us: ratio {last / first:.2f}x (target <= 1.3x)"
            )
        if "listing" in sections:
            listing(base, reps, 2_000 if args.quick else 10_000)
        if "langgraph" in sections:
            langgraph(base, 1 if args.quick else 3)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def langgraph(base: str, reps: int) -> None:
    """`put` + `get_tuple` of a 50-step thread: JournalSaver beside SqliteSaver (the `langgraph`
    extra, and langgraph-checkpoint-sqlite, which the `test` extra installs)."""
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_langgraph
    except ImportError as exc:
        print(f"langgraph: not run ({exc}); pip install 'journal[test]'")
        return
    bench_langgraph.compare(os.path.join(base, "langgraph"), 50, reps)


def appends(base: str, reps: int, quick: bool) -> None:
    """The append rates of each durability mode, each against its baseline."""
    n_none, n_sync = (20_000, 200) if quick else (100_000, 500)
    ours, raw = side_by_side(
        reps, lambda: journal_rate(base, "none", n_none), lambda: raw_rate(base, False, n_none)
    )
    show("none", ours, "raw orjson+xxh3+write loop", raw, "target >= 0.2x and >= 80,000/s")
    ours, raw = side_by_side(
        reps, lambda: journal_rate(base, "always", n_sync), lambda: raw_rate(base, True, n_sync)
    )
    show("always", ours, "raw write+fdatasync loop", raw, "target >= 0.8x")
    ours, one = side_by_side(
        reps,
        lambda: batch_threads_rate(base, 8, n_sync // 4),
        lambda: journal_rate(base, "always", n_sync),
    )
    show("batch, 8 threads", ours, "always, 1 thread", one, "target >= 4x")
    ceiling, raw = side_by_side(
        reps, lambda: raw_group_commit_rate(base, 8, n_sync // 4), lambda: raw_rate(base, True, n_sync)
    )
    show("raw group commit, 8 threads", ceiling, "raw write+fdatasync loop", raw, "the ceiling: no target")
    ours, one = side_by_side(
        3,
        lambda: batch_processes_rate(base, 8, n_sync // 4),
        lambda: journal_rate(base, "always", n_sync),
    )
    show("batch, 8 processes", ours, "always, 1 thread", one, "no target; for comparison")


def show(label: str, ours: float, base_label: str, base: float, target: str) -> None:
    print(
        f"{label}: {ours:,.0f} appends/s vs {base_label} {base:,.0f}/s: ratio {ours / base:.2f}x ({target})"
    )


if __name__ == "__main__":
    main()
