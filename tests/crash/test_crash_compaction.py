"""Crash tests for compaction: the append state machine, plus compacting, and power cuts at
every point of a compaction.

Strategy: `JournalCompactionMachine` inherits every rule and invariant of
`JournalCrashMachine` (tests/test_crash_stateful.py) and adds `compact` and
`power_cut_mid_compaction`. Compaction must not change the history `read` returns, nor the
state, so the model is unchanged by it; a power cut after any number of file system calls
into a compaction, followed by recovery, must leave every acknowledged record in place, in
order, exactly once, whether the compaction is then finished or discarded. Each run draws a
small `merge_archive_bytes`, so compactions both extend the newest archive (rewriting it
under its own name) and start new ones, and power cuts land in both.
"""

from __future__ import annotations

import random

import hypothesis.strategies as st
import orjson
from conftest_crash import crash_settings
from hypothesis.stateful import initialize, rule
from simdisk import PowerCut
from test_crash_stateful import ROOT, SESSION, STATS, JournalCrashMachine, check

from journal import CompactionPolicy, CorruptionError, Journal
from journal.log.record import SEAL


class JournalCompactionMachine(JournalCrashMachine):
    """Everything `JournalCrashMachine` does, with compactions and crashes inside them."""

    merge_bytes = 4 * 1024 * 1024

    @initialize(merge_bytes=st.sampled_from([0, 400, 1500, 4 * 1024 * 1024]))
    def choose_merging(self, merge_bytes: int) -> None:
        self.merge_bytes = merge_bytes
        STATS[f"merge_archive_bytes {merge_bytes}"] += 1
        if self.journal is not None:  # `setup` ran first: open it again with this policy
            self.journal.close()
            self.journal = self.open_journal()

    def open_journal(self) -> Journal:
        policy = CompactionPolicy(merge_archive_bytes=self.merge_bytes)
        return Journal(
            ROOT, durability=self.mode, segment_bytes=self.segment_bytes, fs=self.disk, compaction=policy
        )

    def archived(self) -> list[str]:
        try:
            raw = self.disk.read_bytes(f"{ROOT}/{SESSION}/compaction.json")
        except FileNotFoundError:
            return []
        return list(orjson.loads(raw)["archived"])

    @rule()
    def compact(self) -> None:
        self.step("compact")
        if self.poisoned:
            return  # compaction reopens the session from disk: that is a recovery of its own
        before, archived = self.history(), self.archived()
        result = self.j.compact(SESSION)
        STATS["compactions"] += int(result.compacted)
        now = self.archived()
        if result.compacted and archived and now[: len(archived)] == archived:
            STATS["archives extended" if len(now) == len(archived) else "archives added"] += 1
        after = self.history()
        check(after == before, f"compaction changed the history: {before} -> {after}")
        check(len(now) <= len(result.folded_segments) + len(archived), "more archives than segments")
        self.check_disk("none")

    def history(self) -> list[tuple[int, str, object]]:
        """Every record but seals (compaction seals the active segment: one more seal)."""
        return [(r.seq, r.kind, r.data) for r in self.read_all(self.j) if r.kind != SEAL]

    @rule(calls=st.integers(0, 80), seed=st.integers(0, 2**32 - 1))
    def power_cut_mid_compaction(self, calls: int, seed: int) -> None:
        """Power off `calls` file system calls into a compaction; recovery finishes or
        discards it, and the history is what it was."""
        self.step("power_cut_mid_compaction")
        self.disk.cut_power_after(calls)
        try:
            self.j.compact(SESSION)
            STATS["compactions"] += 1
        except PowerCut:
            STATS["compactions cut"] += 1
        except CorruptionError as exc:
            check(False, f"compaction reported corruption in an undamaged session: {exc}")
        self.disk.crash(random.Random(seed))
        STATS["crashes simulated"] += 1
        self.recover("power")


JournalCompactionMachine.TestCase.settings = crash_settings()
TestJournalCompactionCrash = JournalCompactionMachine.TestCase
MACHINE = JournalCompactionMachine  # what `tools/crashcheck.py --machine compaction` runs
