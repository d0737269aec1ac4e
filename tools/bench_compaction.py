"""Benchmarks of the compactor (standalone: `python tools/bench_compaction.py [--size MB]`).

Measures, on a deterministic, realistic chat corpus generated here (system prompts, user and
assistant turns, tool calls with JSON arguments and JSON results):

1. compaction throughput, MB/s of log folded (target >= 100 MB/s; also per second of the
   compacting thread's CPU time, which a busy machine disturbs less; zstd runs on a thread of
   its own), and peak RSS of the compacting process (a child process, `resource.getrusage`;
   target <= 256 MB for 1 GB);
2. archive compression ratio at zstd level 3 (target >= 3x);
3. a `get_chat_history`-equivalent read (`Journal.state` on a fresh `Journal`) of a compacted
   10,000-message session, against `json.load` of the same messages as one JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from journal import Journal

SID = "bench"
_WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "it",
    "that",
    "for",
    "you",
    "this",
    "with",
    "on",
    "are",
    "be",
    "as",
    "can",
    "not",
    "or",
    "your",
    "have",
    "will",
    "file",
    "function",
    "error",
    "data",
    "value",
    "return",
    "list",
    "user",
    "model",
    "request",
    "response",
    "code",
    "python",
    "config",
    "server",
    "test",
    "output",
    "input",
    "string",
    "number",
    "table",
    "query",
    "result",
    "session",
    "message",
    "agent",
    "tool",
    "call",
    "json",
    "api",
    "key",
    "time",
    "date",
    "path",
    "directory",
    "line",
    "method",
    "class",
    "type",
    "example",
    "please",
    "should",
    "would",
    "could",
    "make",
    "use",
    "need",
    "want",
    "check",
    "run",
    "update",
    "create",
    "delete",
    "read",
    "write",
    "change",
    "because",
    "however",
    "therefore",
    "first",
    "then",
    "next",
    "finally",
    "also",
    "only",
    "just",
    "more",
    "most",
    "some",
    "any",
    "database",
    "index",
    "cache",
    "memory",
    "thread",
    "process",
    "lock",
    "queue",
    "batch",
    "stream",
    "format",
    "schema",
    "field",
]
_TOOLS = ["search_web", "read_file", "run_sql", "get_weather", "send_email", "list_directory"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 22))]
    words[0] = words[0].capitalize()
    if rng.random() < 0.2:
        words.insert(rng.randint(1, len(words)), f"`{rng.choice(_WORDS)}_{rng.randint(0, 999)}`")
    return " ".join(words) + rng.choice([".", ".", ".", "?", "!"])


def _paragraphs(rng: random.Random, low: int, high: int) -> str:
    count = rng.randint(low, high)
    return "\n\n".join(" ".join(_sentence(rng) for _ in range(rng.randint(1, 5))) for _ in range(count))


def _tool_call(rng: random.Random, turn: int) -> dict[str, Any]:
    name = rng.choice(_TOOLS)
    args = {
        "query": _sentence(rng),
        "limit": rng.randint(1, 50),
        "path": f"/srv/data/{rng.randint(0, 9999)}.json",
    }
    return {"id": f"call_{turn}_{rng.getrandbits(48):012x}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}  # fmt: skip


def _tool_result(rng: random.Random) -> str:
    rows = [{"id": rng.randint(1, 10**6), "title": _sentence(rng), "score": round(rng.random(), 4),
             "tags": rng.sample(_WORDS, 3)} for _ in range(rng.randint(1, 6))]  # fmt: skip
    return json.dumps({"ok": True, "count": len(rows), "results": rows})


def corpus(seed: int = 7) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of chat messages (one conversation after another)."""
    rng = random.Random(seed)
    turn = 0
    while True:
        yield {"role": "system", "content": _paragraphs(rng, 1, 3), "metadata": {"agent": "bench"}}
        for _ in range(rng.randint(3, 12)):
            turn += 1
            yield {"role": "user", "content": _paragraphs(rng, 1, 2), "metadata": {"source": "web"}}
            if rng.random() < 0.4:
                call = _tool_call(rng, turn)
                yield {"role": "assistant", "content": None, "tool_calls": [call], "metadata": {}}
                yield {
                    "role": "tool",
                    "content": _tool_result(rng),
                    "tool_call_id": call["id"],
                    "metadata": {},
                }
            meta = {"model": "gpt-4o", "token_count": rng.randint(20, 900)}
            yield {"role": "assistant", "content": _paragraphs(rng, 1, 4), "metadata": meta}


def build_session(root: str, size_mb: float) -> int:
    """Append corpus messages until the session's log holds `size_mb` MB; return the count."""
    target = int(size_mb * 1024 * 1024)
    stream = corpus()
    count = 0
    with Journal(root, durability="none") as j:
        log = os.path.join(j.session_path(SID), "log")
        written = 0
        while written < target:
            batch = [next(stream) for _ in range(500)]
            j.append_many(SID, batch)
            count += len(batch)
            written = sum(os.path.getsize(os.path.join(log, n)) for n in os.listdir(log))
    return count


_CHILD = """
import json, resource, sys, time
from journal import Journal
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with Journal(sys.argv[1], durability="none") as j:
    start, cpu = time.perf_counter(), time.thread_time()
    r = j.compact(sys.argv[2])
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu": cpu, "folded": r.folded_bytes, "archive": r.archive_bytes,
                  "snapshot": r.snapshot_bytes, "messages": r.messages, "peak_kb": peak, "base_kb": base}))
"""


def bench_compaction(size_mb: float) -> dict[str, float]:
    """Throughput, compression ratio and peak RSS of compacting a `size_mb` MB session."""
    with tempfile.TemporaryDirectory() as root:
        build_session(root, size_mb)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, root, SID], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
    mb = r["folded"] / 1024 / 1024
    return {
        "log_mb": mb,
        "seconds": r["seconds"],
        "mb_per_s": mb / r["seconds"],
        "cpu_mb_per_s": mb / r["cpu"],  # the compacting thread's CPU time: less disturbed by load
        "compression_ratio": r["folded"] / r["archive"],
        "peak_rss_mb": r["peak_kb"] / 1024,
        "baseline_rss_mb": r["base_kb"] / 1024,
        "messages_json_mb": r["snapshot"] / 1024 / 1024,
    }


def bench_history_read(messages: int = 10_000, repeat: int = 7) -> dict[str, float]:
    """`Journal.state` of a compacted session on a fresh Journal vs `json.load` of one file."""
    with tempfile.TemporaryDirectory() as root:
        stream = corpus(seed=11)
        batch = [next(stream) for _ in range(messages)]
        with Journal(root, durability="none") as j:
            j.append_many(SID, batch)
            j.compact(SID)
        single = os.path.join(root, "single.json")
        with open(single, "w") as handle:
            json.dump({"messages": batch, "total_messages": len(batch)}, handle, indent=2)
        journal_times, json_times = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            with Journal(root) as fresh:
                state = fresh.state(SID)
            journal_times.append(time.perf_counter() - start)
            assert state is not None and len(state.messages) == messages
            start = time.perf_counter()
            with open(single) as handle:
                loaded = json.load(handle)
            json_times.append(time.perf_counter() - start)
            assert len(loaded["messages"]) == messages
    journal_s, json_s = statistics.median(journal_times), statistics.median(json_times)
    return {"journal_state_ms": journal_s * 1000, "json_load_ms": json_s * 1000, "ratio": journal_s / json_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=200.0, help="session log size in MB (default 200)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages for the history read")
    args = parser.parse_args(argv)
    c = bench_compaction(args.size)
    print(
        f"compaction: {c['log_mb']:.1f} MB of log folded in {c['seconds']:.2f} s = {c['mb_per_s']:.1f} MB/s"
        f" ({c['cpu_mb_per_s']:.1f} MB/s of the compacting thread's CPU time; load average"
        f" {os.getloadavg()[0]:.1f})"
    )
    print(f"archive compression ratio (zstd level 3): {c['compression_ratio']:.2f}x (target >= 3x)")
    print(f"peak RSS while compacting: {c['peak_rss_mb']:.1f} MB (baseline {c['baseline_rss_mb']:.1f} MB;"
          f" target <= 256 MB for 1 GB)")  # fmt: skip
    print(f"messages.json: {c['messages_json_mb']:.1f} MB")
    h = bench_history_read(args.messages)
    print(f"history read of {args.messages} messages: Journal.state {h['journal_state_ms']:.1f} ms,"
          f" json.load {h['json_load_ms']:.1f} ms, ratio {h['ratio']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
