"""`Journal.gc` selects old or empty sessions, deletes only without `dry_run`, and deletes
exactly what it selected."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from pathlib import Path

import pytest

from journal import Journal, ReadOnlyError

NOW = time.time()
DAYS = 86400.0


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def make_store(journal: Journal) -> None:
    """old: last message 40 days ago (compacted since: a compaction is no activity);
    old-meta: metadata set 40 days ago, no message; fresh: a message now; cleared: its
    messages cleared 40 days ago; recent-old: created 40 days ago, active yesterday."""
    journal.append_batch("old", [("message", {"role": "user", "content": "hi"}, NOW - 40 * DAYS)])
    journal.compact("old")
    journal.append_batch("old-meta", [("meta", {"title": "t"}, NOW - 40 * DAYS)])
    journal.append("fresh", {"role": "user", "content": "hi"})
    journal.append_batch(
        "cleared",
        [("message", {"role": "user", "content": "hi"}, NOW - 41 * DAYS), ("clear", {}, NOW - 40 * DAYS)],
    )
    journal.append_batch(
        "recent-old",
        [
            ("message", {"role": "user", "content": "hi"}, NOW - 40 * DAYS),
            ("message", {"role": "user", "content": "again"}, NOW - 1 * DAYS),
        ],
    )


def test_a_dry_run_reports_the_candidates_and_deletes_nothing(journal: Journal, root: Path) -> None:
    make_store(journal)
    before = tree(root)
    done: list[tuple[int, int | None]] = []
    report = journal.gc(older_than=timedelta(days=30), progress=lambda n, total: done.append((n, total)))
    assert [sid for sid, _ in report.candidates] == ["cleared", "old", "old-meta"]
    assert report.candidates[1][1].startswith("last activity ")
    assert (report.deleted, report.problems, report.dry_run) == ([], [], True)
    assert done == [(n, 5) for n in range(1, 6)]
    assert tree(root) == before


def test_each_rule_alone_and_both_together(journal: Journal) -> None:
    make_store(journal)
    assert [sid for sid, _ in journal.gc(empty=True).candidates] == ["cleared", "old-meta"]
    assert [sid for sid, _ in journal.gc(older_than=2 * DAYS).candidates] == ["cleared", "old", "old-meta"]
    both = journal.gc(older_than=timedelta(days=2), empty=True)
    assert dict(both.candidates)["old-meta"] == dict(both.candidates)["cleared"]
    assert dict(both.candidates)["cleared"].endswith("; no messages")
    assert [sid for sid, _ in journal.gc(older_than=0.5 * DAYS).candidates] == [
        "cleared",
        "old",
        "old-meta",
        "recent-old",
    ]


def test_a_real_run_deletes_exactly_the_candidates(journal: Journal, root: Path) -> None:
    make_store(journal)
    kept = {sid: list(journal.read(sid)) for sid in ("fresh", "recent-old")}
    report = journal.gc(older_than=timedelta(days=30), empty=True, dry_run=False)
    assert report.deleted == [sid for sid, _ in report.candidates] == ["cleared", "old", "old-meta"]
    assert sorted(journal.sessions()) == ["fresh", "recent-old"]
    assert {sid: list(journal.read(sid)) for sid in kept} == kept
    assert sorted(p.name for p in root.iterdir()) == ["fresh", "recent-old"]
    assert journal.gc(older_than=timedelta(days=30), empty=True, dry_run=False).to_dict() == {
        "dry_run": False,
        "candidates": [],
        "deleted": [],
        "problems": [],
    }


def test_a_gc_without_a_rule_or_with_a_negative_age_is_refused(journal: Journal, root: Path) -> None:
    make_store(journal)
    before = tree(root)
    with pytest.raises(ValueError, match="older_than, empty"):
        journal.gc(dry_run=False)
    with pytest.raises(ValueError, match=">= 0"):
        journal.gc(older_than=-1, dry_run=False)
    with pytest.raises(TypeError):
        journal.gc(older_than="30d", dry_run=False)  # type: ignore[arg-type]
    assert tree(root) == before


def test_a_read_only_store_refuses_to_delete_and_still_reports(root: Path) -> None:
    with Journal(root, durability="none") as journal:
        make_store(journal)
    before = tree(root)
    with Journal(root, read_only=True) as reader:
        with pytest.raises(ReadOnlyError):
            reader.gc(empty=True, dry_run=False)
        report = reader.gc(empty=True)
    assert [sid for sid, _ in report.candidates] == ["cleared", "old-meta"]
    assert tree(root) == before
