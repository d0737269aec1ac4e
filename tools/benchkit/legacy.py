"""Strategy: the earlier sections of tools/bench.py kept reachable (`--only history`,
`--only langgraph`): get_chat_history against `json.load` of the docs' JSON file (issue #4),
and JournalSaver beside SqliteSaver. The peer comparisons of issue #16 replaced the rest
(appends, latency, listing), with the same figures among theirs.
"""

from __future__ import annotations

import calendar
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def history_read(base: str, messages: int, reps: int) -> dict[str, float]:
    """Median ms of get_chat_history cold, warm, and of json.load of an equivalent file in
    the documented layout, and of the same file without its timestamps."""
    sys.path.insert(0, TOOLS)
    from bench_compaction import corpus

    from journal import DefaultSessionStore

    root = tempfile.mkdtemp(dir=base)
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
    keys = ("cold_ms", "warm_ms", "json_load_ms", "json_load_bare_ms")
    return {key: statistics.median(t) * 1000 for key, t in zip(keys, times, strict=True)}


def show_history(figures: dict[str, float]) -> None:
    cold, warm, load, bare = (figures[k] for k in ("cold_ms", "warm_ms", "json_load_ms", "json_load_bare_ms"))
    print(f"get_chat_history, compacted messages: cold {cold:.1f} ms ({cold / load:.2f}x),")
    print(
        f"  warm {warm:.1f} ms ({warm / load:.2f}x) vs json.load of the documented messages file"
        f" {load:.1f} ms"
        " (target <= 1x);"
    )
    print(f"  the same file without timestamps {bare:.1f} ms: cold {cold / bare:.2f}x")


def langgraph(base: str, reps: int) -> None:
    """`put` + `get_tuple` of a 50-step thread: JournalSaver beside SqliteSaver (the `langgraph`
    extra, and langgraph-checkpoint-sqlite, which the `test` extra installs)."""
    try:
        sys.path.insert(0, TOOLS)
        import bench_langgraph
    except ImportError as exc:
        print(f"langgraph: not run ({exc}); pip install 'journal[test]'")
        return
    bench_langgraph.compare(os.path.join(base, "langgraph"), 50, reps)
