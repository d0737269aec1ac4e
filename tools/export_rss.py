"""Peak memory of `Journal.export_archive` and `import_archive` against the store's size
(standalone: `python tools/export_rss.py [--size MB] [--sessions N] [--largest MB]`).

Builds a store of N sessions of chat messages (about 800 bytes each, one session made
`--largest` MB so the bound's "largest session" term shows), then runs each step in a child
process that reports its own peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`):

1. baseline: `import journal`, open the store, list its sessions;
2. export to .json.zst with the default `Journal` (its cache of folded states holds up to
   `max_cached_messages` = 250,000 messages, as for any read);
3. the same export with `max_cached_messages=1000`: what the export itself holds;
4. import of that file into a new store.

The claim checked: peak RSS grows with the largest session and the cache bound, not with the
store (double `--size` with the same `--largest`: the figures of steps 3 and 4 stay put).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from journal import Journal

_WORDS = ["the", "a", "to", "of", "and", "in", "is", "it", "that", "for", "you", "this", "with"]
_WORDS += ["on", "are", "be", "as", "can", "not", "or", "file", "error", "data", "value", "return"]
_CHILD = r"""
import json, resource, sys, time
from journal import Journal
step, root, target, cache = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
if step == "baseline":
    with Journal(root, read_only=True) as j:
        count = len(list(j.sessions()))
elif step == "export":
    with Journal(root, read_only=True, max_cached_messages=cache) as j:
        count = j.export_archive(target).messages
else:
    with Journal(root, durability="none", max_cached_messages=cache) as j:
        count = j.import_archive(target).messages
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({"rss": rss, "seconds": seconds, "count": count}))
"""


def text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def build(root: str, size_mb: int, sessions: int, largest_mb: int) -> None:
    """`sessions` sessions totalling about `size_mb` MB of messages, the first `largest_mb`."""
    rng = random.Random(13)
    per_message = 800
    rest = max(size_mb - largest_mb, 0) * 1_000_000 // max(sessions - 1, 1) // per_message
    counts = [largest_mb * 1_000_000 // per_message] + [rest] * (sessions - 1)
    ts = 1_700_000_000.0
    with Journal(root, durability="none") as j:
        for index, count in enumerate(counts):
            session_id = f"session-{index:05d}"
            j.append_batch(session_id, [("meta", {"agent_id": "bench", "n": index}, ts)])
            for first in range(0, count, 2000):
                batch = []
                for n in range(first, min(first + 2000, count)):
                    ts += 0.001
                    role = "user" if n % 2 == 0 else "assistant"
                    batch.append(("message", {"role": role, "content": text(rng, per_message - 60)}, ts))
                j.append_batch(session_id, batch)


def tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def largest_session_bytes(root: str) -> int:
    return max(tree_bytes(os.path.join(root, name)) for name in os.listdir(root) if not name.startswith("."))


def run(step: str, root: str, target: str, cache: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, step, root, target, str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=300, help="store size in MB of messages (default 300)")
    parser.add_argument("--sessions", type=int, default=400, help="number of sessions (default 400)")
    parser.add_argument("--largest", type=int, default=20, help="MB of messages in the largest session")
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir, removed)")
    args = parser.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="journal-export-rss-")
    root, target = os.path.join(work, "store"), os.path.join(work, "export.json.zst")
    try:
        started = time.perf_counter()
        build(root, args.size, args.sessions, args.largest)
        print(f"built {args.sessions} sessions in {time.perf_counter() - started:.0f} s")
        store, largest = tree_bytes(root), largest_session_bytes(root)
        mb = 1 << 20
        print(f"store on disk       {store / mb:8.0f} MiB   largest session {largest / mb:.0f} MiB")
        base = run("baseline", root, target, 250_000)
        print(f"baseline (list)     {base['rss'] / mb:8.0f} MiB peak RSS")
        for label, cache in (("default cache", 250_000), ("cache of 1000", 1000)):
            if os.path.exists(target):
                os.unlink(target)
            out = run("export", root, target, cache)
            speed = store / mb / out["seconds"]
            print(f"export, {label}  {out['rss'] / mb:8.0f} MiB peak RSS   {speed:.0f} MiB/s of store")
        print(f"export file         {os.path.getsize(target) / mb:8.0f} MiB (.json.zst)")
        back = run("import", os.path.join(work, "copy"), target, 1000)
        speed = store / mb / back["seconds"]
        print(f"import, cache 1000  {back['rss'] / mb:8.0f} MiB peak RSS   {speed:.0f} MiB/s of store")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
