"""Benchmark of `Journal.search` (issue #13: scan >= 100 MB/s of stored messages), side by side
with the docs' "File-Based Search" recipe on the same store.

Usage: python tools/bench_search.py [--mb 150] [--reps 3] [--dir DIR]

Builds a store of about `--mb` MB of stored chat messages (records of 300-700 bytes; English
text with some quotes, newlines and non-ASCII words) in sessions of 200-1,000 messages: a third
compacted with their last half still in the live log, a third compacted whole, a third
compacted twice under a retention policy that pruned their first archive (that half is read
from messages.json). Then times, medians of `--reps` interleaved runs, warm page cache:

- search for a word in about 1 message in 10,000, as a literal (the prefiltered path) and as
  a regular expression (every line decoded); MB/s = bytes search scans (live segment bytes +
  archive bytes decompressed + the messages.json of pruned sessions) / seconds;
- the docs' recipe (`json.load` of every messages.json view, `re.search` on each content),
  after a compaction brought every view current; MB/s = messages.json bytes / seconds.

First on the store as built; then, after a compaction brought every view current (the
recipe reads only messages.json), search and the recipe interleaved on the same files. Every
case finds the same messages (checked). recipe/search = recipe seconds / search seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from journal import CompactionPolicy, Journal
from journal.log.archive_file import content_size
from journal.ops.scanning import session_files

RARE = "xylograph"  # planted in about 1 message in 10,000
RECIPE = "docs' recipe"
# name, store opened read-only (as the CLI's search), search options
CASES: tuple[tuple[str, bool, dict[str, Any]], ...] = (
    ("literal, read-only store", True, {}),
    ("literal, writable store", False, {}),
    ("regex, read-only store", True, {"regex": True}),
)
VOCABULARY = (
    "the a to of and in is it that for you with on as are be this was have or at not your from"
    " can but all we an they by which if do more will one has about what there so up out would"
    " data file session message agent model tool server request response query result config"
    " python function error value list user memory cache thread process stream format schema"
    " please should could make use need want check run update create delete read write change"
)
WORDS = VOCABULARY.split()
SPECIAL = ['"quoted"', "naïve", "café", "über", "日本語", "path\\to", "tab\there"]


def message(rng: random.Random, n: int) -> dict[str, Any]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(40, 110))]
    if rng.random() < 0.1:
        words.insert(rng.randint(0, len(words)), rng.choice(SPECIAL))
    if n % 10_007 == 0:
        words.insert(rng.randint(0, len(words)), RARE.capitalize())
    text = " ".join(words)
    if rng.random() < 0.2:
        text = text.replace(" the ", ".\n\nThe ", 1)
    role = "user" if n % 2 else "assistant"
    return {"role": role, "content": text, "metadata": {"model": "gpt-4o"} if role == "assistant" else {}}


def build(root: str, megabytes: float) -> int:
    """Write the store; return the number of messages."""
    rng, n, written, target = random.Random(13), 0, 0, megabytes * 1_000_000
    retention = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)
    with Journal(root, durability="none") as journal, Journal(root, compaction=retention) as pruning:
        session = 0
        while written < target:
            sid, count = f"s{session:05d}", rng.randint(200, 1000)
            base = 1_764_000_000 + session * 3600.0
            batch = [("message", message(rng, n + i), base + i) for i in range(count)]
            n += count
            half = count // 2
            journal.append_batch(sid, batch[:half])
            journal.compact(sid)
            journal.append_batch(sid, batch[half:])
            if session % 3 == 1:
                journal.compact(sid)
            elif session % 3 == 2:
                pruning.compact(sid)
            written += sum(len(json.dumps(m)) + 110 for _, m, _ in batch)
            session += 1
    return n


def scanned_bytes(journal: Journal) -> dict[str, int]:
    """What search reads: live segments, archives decompressed, pruned sessions' views."""
    out = {"live segments": 0, "archives (decompressed)": 0, "messages.json (pruned part)": 0}
    for sid in journal.sessions():
        files = session_files(journal.fs, journal.session_path(sid))
        assert files is not None
        out["live segments"] += sum(os.path.getsize(s.path) for s in files.segments)
        out["archives (decompressed)"] += sum(content_size(journal.fs, a.path) for a in files.archives)
        if files.manifest.pruned_through:
            out["messages.json (pruned part)"] += os.path.getsize(files.view.path)
    return out


def search_conversations(session_dir: str, query: str) -> list[dict[str, Any]]:
    """The docs' recipe, as published (role and date filters unused here)."""
    results = []
    query_pattern = re.compile(query, re.IGNORECASE)
    for session_id in os.listdir(session_dir):
        messages_file = os.path.join(session_dir, session_id, "messages.json")
        if not os.path.exists(messages_file):
            continue
        with open(messages_file) as f:
            data = json.load(f)
        for i, msg in enumerate(data.get("messages", [])):
            content = msg.get("content", "")
            if query_pattern.search(content):
                results.append({"session_id": session_id, "message_index": i, "role": msg.get("role")})
    return results


def _listed(journal: Journal, options: dict[str, Any]) -> list[Any]:
    return list(journal.search(RARE, **options))


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def measure(root: str, reps: int, cases: tuple[tuple[str, bool, dict[str, Any]], ...]) -> dict[str, Any]:
    """Median seconds of each case (and of the recipe, "docs' recipe", when it is a case
    name), their runs interleaved; the hits each found."""
    runs: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    found: dict[str, int] = {}
    with Journal(root, read_only=True) as reader, Journal(root, durability="none") as writer:
        for _ in range(reps):
            for name, read_only, options in cases:
                journal = reader if read_only else writer
                run = functools.partial(search_conversations, root, RARE)
                if name != RECIPE:
                    run = functools.partial(_listed, journal, options)
                seconds, hits = timed(run)
                runs[name].append(seconds)
                found[name] = len(hits)
    return {"seconds": {name: statistics.median(r) for name, r in runs.items()}, "hits": found}


def report(title: str, root: str, result: dict[str, Any], reps: int) -> None:
    with Journal(root, read_only=True) as journal:
        sizes = scanned_bytes(journal)
    total = sum(sizes.values())
    print(f"{title}: search scans {total / 1e6:.1f} MB (" + ", ".join(
        f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items()) + ")")  # fmt: skip
    hits = set(result["hits"].values())
    assert len(hits) == 1, result["hits"]
    print(f"  hits: {hits.pop()} (every case alike); medians of {reps}, runs interleaved:")
    seconds = result["seconds"]
    for name, took in seconds.items():
        if name == RECIPE:
            views = sum(os.path.getsize(os.path.join(root, d, "messages.json")) for d in os.listdir(root))
            rate = f"{views / 1e6 / took:6.0f} MB/s of {views / 1e6:.1f} MB messages.json"
        else:
            rate = f"{total / 1e6 / took:6.0f} MB/s"
        ratio = (
            f"  recipe/search {seconds[RECIPE] / took:4.1f}x" if RECIPE in seconds and name != RECIPE else ""
        )
        print(f"  {name:34s} {took:7.3f} s {rate}{ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=150.0, help="stored messages to write, MB (default 150)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the store (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # "retention removed 1 archives", once a pruned session
    base = tempfile.mkdtemp(dir=args.dir)
    root = os.path.join(base, "store")
    try:
        started = time.perf_counter()
        count = build(root, args.mb)
        print(f"built {count:,} messages in {time.perf_counter() - started:.0f} s under {root}")
        mixed = measure(root, args.reps, CASES)
        report("1. as built (live logs, archives, pruned snapshots)", root, mixed, args.reps)
        with Journal(root, durability="none") as journal:
            journal.compact_all()  # the recipe reads messages.json: every view current
        side_by_side = measure(root, args.reps, (CASES[0], CASES[2], (RECIPE, True, {})))
        report(
            "2. every session compacted, side by side with the docs' recipe", root, side_by_side, args.reps
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
