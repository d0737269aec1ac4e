"""JournalSaver against SqliteSaver (file-backed), side by side in one run.

Usage: python tools/bench_langgraph.py [--steps 50] [--reps 3] [--dir DIR]

A 50-step chat thread: each step puts a checkpoint whose "messages" channel holds the whole
conversation so far (one ~300-character message more per step, as a StateGraph with
add_messages stores it), puts the step's writes, then reads the latest checkpoint back
(`get_tuple`, what a graph does before each run). Timed per operation kind; the first put
apart (for journal it creates the thread's session directory, fsyncs included); and a cold
read (a new saver on the same file or store, its first `get_tuple`). Both savers use the same serde
and fsync every put by default (journal "batch", SQLite's WAL with synchronous=FULL); the
"no fsync" rows use journal "none" against SQLite's synchronous=OFF. Runs alternate
(journal, SQLite, journal, ...) and each figure is the median of `--reps`; ratios are
SQLite's time over journal's (above 1: journal is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver

from journal.integrations.langgraph import JournalSaver

TEXT = "The parcel left the warehouse on Monday and should arrive within three working days. " * 4


def conversation(steps: int) -> list[list[Any]]:
    """The messages channel at each step."""
    messages: list[Any] = []
    out = []
    for step in range(steps):
        kind = HumanMessage if step % 2 == 0 else AIMessage
        messages = [*messages, kind(f"{step}: {TEXT}", id=f"m-{step}")]
        out.append(messages)
    return out


def run_thread(saver: BaseCheckpointSaver[Any], channels: list[list[Any]]) -> dict[str, float]:
    """Put, put_writes and get_tuple each step of one thread; seconds spent per kind."""
    spent = {"first put": 0.0, "put": 0.0, "put_writes": 0.0, "get_tuple": 0.0}
    latest: dict[str, Any] = {"configurable": {"thread_id": "bench", "checkpoint_ns": ""}}
    parent: dict[str, Any] = dict(latest)
    for step, messages in enumerate(channels):
        checkpoint = generate_checkpoint(
            channel_values={"messages": messages}, channel_versions={"messages": step + 1}
        )
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        began = time.perf_counter()
        stored = saver.put(parent, checkpoint, metadata, {"messages": step + 1})
        put_done = time.perf_counter()
        saver.put_writes(stored, [("messages", [messages[-1]])], f"task-{step}")
        writes_done = time.perf_counter()
        found = saver.get_tuple(latest)
        read_done = time.perf_counter()
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]
        spent["put" if step else "first put"] += put_done - began
        spent["put_writes"] += writes_done - put_done
        spent["get_tuple"] += read_done - writes_done
        parent = {"configurable": {**stored["configurable"]}}
    return spent


def cold_read(open_saver: Callable[[], BaseCheckpointSaver[Any]]) -> float:
    began = time.perf_counter()
    saver = open_saver()
    found = saver.get_tuple({"configurable": {"thread_id": "bench", "checkpoint_ns": ""}})
    spent = time.perf_counter() - began
    assert found is not None
    close = getattr(saver, "close", None) or getattr(saver.conn, "close", None)  # type: ignore[attr-defined]
    close()
    return spent


def journal_round(root: str, channels: list[list[Any]], durable: bool) -> dict[str, float]:
    mode = "batch" if durable else "none"
    saver = JournalSaver(root, durability=mode)
    spent = run_thread(saver, channels)
    saver.close()
    spent["cold get_tuple"] = cold_read(lambda: JournalSaver(root, durability=mode))
    return spent


def sqlite_round(path: str, channels: list[list[Any]], durable: bool) -> dict[str, float]:
    def connect() -> SqliteSaver:
        conn = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        return saver

    saver = connect()
    spent = run_thread(saver, channels)
    saver.conn.close()
    spent["cold get_tuple"] = cold_read(connect)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-langgraph-", dir=args.dir)
    try:
        compare(base, args.steps, args.reps)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def compare(base: str, steps: int, reps: int) -> None:
    """JournalSaver and SqliteSaver side by side, interleaved, with and without fsyncs (also
    `python tools/bench.py --only langgraph`)."""
    channels = conversation(steps)
    print(f"{steps}-step thread, median of {reps} interleaved runs, in {base}")
    for durable in (True, False):
        runs: dict[str, list[dict[str, float]]] = {"journal": [], "sqlite": []}
        for rep in range(reps):
            runs["journal"].append(journal_round(os.path.join(base, f"j-{durable}-{rep}"), channels, durable))
            runs["sqlite"].append(
                sqlite_round(os.path.join(base, f"s-{durable}-{rep}.sqlite"), channels, durable)
            )
        report("fsync per put" if durable else "no fsync", runs, steps)


def report(title: str, runs: dict[str, list[dict[str, float]]], steps: int) -> None:
    print(f"\n{title}: per operation, microseconds (first put: it creates the thread's session)")
    print(f"  {'operation':<16}{'JournalSaver':>14}{'SqliteSaver':>14}{'sqlite/journal':>16}")
    for kind in ("first put", "put", "put_writes", "get_tuple", "cold get_tuple"):
        per = {"first put": 1, "cold get_tuple": 1, "put": steps - 1}.get(kind, steps)
        mine = statistics.median(r[kind] for r in runs["journal"]) / per * 1e6
        theirs = statistics.median(r[kind] for r in runs["sqlite"]) / per * 1e6
        print(f"  {kind:<16}{mine:>14.0f}{theirs:>14.0f}{theirs / mine:>15.2f}x")
    mine = statistics.median(r["first put"] + r["put"] + r["get_tuple"] for r in runs["journal"])
    theirs = statistics.median(r["first put"] + r["put"] + r["get_tuple"] for r in runs["sqlite"])
    print(
        f"  put + get_tuple of the thread: {mine * 1e3:.1f} ms vs {theirs * 1e3:.1f} ms: {theirs / mine:.2f}x"
    )


if __name__ == "__main__":
    main()
