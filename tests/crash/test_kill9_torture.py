"""kill -9 torture: many appenders in every durability mode, and a compactor, all killed at
random over and over; every acknowledged record survives, in order, exactly once.

Strategy: WORKERS child processes append to two shared sessions, one durability mode each
(`always`, `batch`, `none`: a process kill is not a power loss, so even `none` must keep what
it acknowledged), some appends as 3-record `append_many` batches; one more child compacts both
sessions in a loop. Each child prints what was acknowledged, flushed, after the call returned.
The parent SIGKILLs a random child every few tens of milliseconds and starts a replacement
that recovers whatever the dead one left (torn tails, half-done compactions), until KILLS
kills. Then: every acknowledged record is there exactly once, each worker's records are in
the order it wrote them, every batch is whole or absent, sequence numbers are gapless, and
`verify` finds nothing.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from journal import Journal, RecoveryWarning
from journal.log.record import MESSAGE

KILLS = 150
SESSIONS = ["alpha", "beta"]
MODES = ["always", "batch", "none", "always", "batch", "none"]

APPENDER = """
import itertools, sys
from journal import Journal

root, mode, worker = sys.argv[1], sys.argv[2], sys.argv[3]
journal = Journal(root, durability=mode, segment_bytes=4096)
for n in itertools.count():
    sid = ("alpha", "beta")[n % 2]
    tag = f"{worker}:{n}"
    if n % 4 == 3:
        journal.append_many(sid, [{"content": tag, "part": k, "of": 3} for k in range(3)])
    else:
        journal.append(sid, {"role": "user", "content": tag, "part": 0, "of": 1})
    print(sid, tag, flush=True)
"""

COMPACTOR = """
import sys, time
from journal import Journal

journal = Journal(sys.argv[1], segment_bytes=4096)
while True:
    for sid in ("alpha", "beta"):
        if journal.exists(sid):
            journal.compact(sid)
    time.sleep(0.005)
"""


class Child:
    """A running child and a thread collecting the acknowledgements it prints."""

    def __init__(self, source: str, args: list[str], acked: set[tuple[str, str]]) -> None:
        # stderr to a file: a pipe nobody drains could fill with RecoveryWarnings and stall it
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        self.process = subprocess.Popen(
            [sys.executable, "-c", source, *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.reader = threading.Thread(target=self._collect, args=(acked,), daemon=True)
        self.reader.start()

    def _collect(self, acked: set[tuple[str, str]]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.endswith("\n"):  # a line cut short by the kill was not fully printed
                sid, tag = line.split()
                acked.add((sid, tag))

    def kill(self) -> str:
        """SIGKILL; return stderr if the child had died by itself before (a crash to report)."""
        died = self.process.poll() is not None
        self.process.send_signal(signal.SIGKILL)
        self.reader.join()  # the only reader of stdout: it stops at the end of the pipe
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        return err if died else ""


def check_store(root: Path, acked: set[tuple[str, str]]) -> int:
    """Every acknowledged record once, per-worker order, whole batches; return records seen."""
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        journal = Journal(root)
        for sid in SESSIONS:
            records = list(journal.read(sid))
            assert [r.seq for r in records] == list(range(1, len(records) + 1)), "gap in seq numbers"
            messages = [r.data for r in records if r.kind == MESSAGE]
            seen += len(messages)
            parts = Counter((m["content"], m["part"]) for m in messages)
            assert max(parts.values(), default=1) == 1, "a record is there twice"
            sizes: dict[str, int] = defaultdict(int)
            last: dict[str, int] = {}
            for m in messages:
                sizes[m["content"]] += 1
                worker, n = m["content"].split(":")
                assert int(n) >= last.get(worker, -1), f"{sid}: worker {worker} out of order"
                last[worker] = int(n)
            wholes = {m["content"]: m["of"] for m in messages}
            assert all(sizes[tag] == of for tag, of in wholes.items()), "a batch is not whole"
            missing = {tag for s, tag in acked if s == sid} - set(wholes)
            assert not missing, f"{sid}: acknowledged records lost: {sorted(missing)[:5]}"
            assert journal.verify(sid).ok
        journal.close()
    return seen


def test_kill9_of_appenders_in_every_mode_and_a_compactor_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    Journal(root).close()
    rng = random.Random(9)
    acked: set[tuple[str, str]] = set()
    generation = Counter[int]()

    def start(slot: int) -> Child:
        generation[slot] += 1
        if slot == len(MODES):
            return Child(COMPACTOR, [str(root)], acked)
        worker = f"w{slot}g{generation[slot]}"
        return Child(APPENDER, [str(root), MODES[slot], worker], acked)

    children: dict[int, Child] = {slot: start(slot) for slot in range(len(MODES) + 1)}
    crashed: list[str] = []
    kills = 0
    started = time.monotonic()
    try:
        while kills < KILLS:
            time.sleep(rng.uniform(0.005, 0.06))
            # The compactor (last slot) is killed a third as often, so it finishes some runs.
            slot = rng.choices(range(len(children)), weights=[3] * len(MODES) + [1])[0]
            error = children[slot].kill()
            if error:
                crashed.append(error)
            kills += 1
            children[slot] = start(slot)
    finally:
        for child in children.values():
            error = child.kill()
            if error:
                crashed.append(error)
    elapsed = time.monotonic() - started
    assert not crashed, f"a child died by itself:\n{crashed[0]}"
    seen = check_store(root, acked)
    archives = sum(len(list((root / sid / "archive").glob("*.zst"))) for sid in SESSIONS)
    print(
        f"kill -9 torture: {kills} kills in {elapsed:.1f} s, {len(acked)} acknowledged,"
        f" {seen} records, {archives} compacted segments"
    )
    assert acked, "nothing was acknowledged: the children never got going"
    assert archives, "the compactor never compacted anything"


def test_check_store_notices_a_lost_record(tmp_path: Path) -> None:
    """The checker itself: an acknowledged record that is not there fails it."""
    root = tmp_path / "store"
    with Journal(root) as journal:
        for sid in SESSIONS:
            journal.append(sid, {"content": "w0:0", "part": 0, "of": 1})
    acked: set[tuple[str, str]] = {("alpha", "w0:0"), ("beta", "w0:0"), ("beta", "w0:1")}
    try:
        check_store(root, acked)
    except AssertionError as exc:
        assert "lost" in str(exc)
    else:
        raise AssertionError("check_store missed a lost record")
