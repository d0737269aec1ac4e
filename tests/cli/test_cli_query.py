"""`journal search`, `journal stats` and `journal gc` through the real command line, on a store
whose messages carry known times."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli_helpers import one_error_line, run, run_all

from journal import Journal

DAY = 86400.0
NOW = time.time()


def make_dated_store(root: Path) -> None:
    """old: two messages 40 days ago (compacted: they live in the snapshot and the archive);
    new: three messages today; empty: metadata only."""
    with Journal(root, durability="none") as journal:
        journal.append_batch(
            "old",
            [
                ("message", {"role": "user", "content": "Where is my REFUND?"}, NOW - 40 * DAY),
                ("message", {"role": "assistant", "content": "Order 1234 is refunded."}, NOW - 40 * DAY + 60),
            ],
        )
        journal.compact("old")
        journal.append_batch(
            "new",
            [
                ("message", {"role": "user", "content": "refund again please"}, NOW - 120),
                ("message", {"role": "assistant", "content": "order 99 refunded"}, NOW - 60),
                ("message", {"role": "user", "content": "thanks"}, NOW),
            ],
        )
        journal.update_metadata("empty", {"title": "nothing yet"})


def test_search_finds_by_text_pattern_role_and_date_in_snapshots_and_live_logs(tmp_path: Path) -> None:
    make_dated_store(tmp_path / "sessions")
    calls = {
        "text": ["search", "refund", "--json"],
        "regex": ["search", r"order \d+", "--regex", "--json"],
        "role": ["search", "refund", "--role", "assistant", "--json"],
        "since": ["search", "refund", "--since", "7d", "--json"],
        "until": ["search", "refund", "--until", "30d", "--json"],
        "limit": ["search", "refund", "--limit", "1", "--json"],
        "session": ["search", "refund", "--session", "new", "--json"],
        "none": ["search", "no such words"],
        "plain": ["search", "REFUND?"],
    }
    done = dict(zip(calls, run_all(list(calls.values()), cwd=tmp_path), strict=True))
    hits = {
        name: [(hit["session_id"], hit["seq"]) for hit in map(json.loads, result.stdout.splitlines())]
        for name, result in done.items()
        if name not in ("none", "plain")
    }
    assert hits == {
        "text": [("new", 1), ("new", 2), ("old", 1), ("old", 2)],
        "regex": [("new", 2), ("old", 2)],
        "role": [("new", 2), ("old", 2)],
        "since": [("new", 1), ("new", 2)],
        "until": [("old", 1), ("old", 2)],
        "limit": [("new", 1)],
        "session": [("new", 1), ("new", 2)],
    }
    assert all(result.returncode == 0 and result.stderr == "" for result in done.values())
    assert done["none"].stdout == ""
    assert done["plain"].stdout.splitlines() == [done["plain"].stdout.splitlines()[0]]
    assert done["plain"].stdout.startswith("old  #1  ") and done["plain"].stdout.endswith(
        "user: Where is my REFUND?\n"
    )
    first = json.loads(done["text"].stdout.splitlines()[0])
    assert (
        first["role"] == "user" and first["preview"] == "refund again please" and first["time"].endswith("Z")
    )


def test_stats_counts_sessions_roles_days_and_words(tmp_path: Path) -> None:
    make_dated_store(tmp_path / "sessions")
    as_json, as_text = run_all([["stats", "--json"], ["stats"]], cwd=tmp_path)
    figures = json.loads(as_json.stdout)
    old_day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 40 * DAY))
    assert (figures["total_sessions"], figures["total_messages"]) == (3, 5)
    assert figures["messages_by_role"] == {"assistant": 2, "user": 3}
    assert figures["sessions_by_day"][old_day] == 1 and sum(figures["sessions_by_day"].values()) == 2
    assert as_text.returncode == 0 and as_text.stdout.splitlines()[1].split()[:2] == ["3", "5"]
    assert "user              3" in as_text.stdout and old_day in as_text.stdout


def test_gc_selects_by_age_and_emptiness_and_deletes_only_without_dry_run(tmp_path: Path) -> None:
    make_dated_store(tmp_path / "sessions")
    dry = run("gc", "--older-than", "30d", "--empty", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and [line.split(":")[0] for line in dry.stdout.splitlines()] == [
        "would delete empty",
        "would delete old",
        "would delete 2 session(s), 0 problem(s)",
    ]
    assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == ["empty", "new", "old"]
    hours = json.loads(run("gc", "--older-than", "1000h", "--json", cwd=tmp_path).stdout)
    assert hours == {"candidates": [], "deleted": [], "dry_run": False, "problems": []}
    real = json.loads(run("gc", "--older-than", "2592000s", "--json", cwd=tmp_path).stdout)
    assert real["deleted"] == ["old"] and real["candidates"][0][0] == "old"
    assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == ["empty", "new"]
    empty = run("gc", "--empty", cwd=tmp_path)
    assert empty.stdout.splitlines() == ["deleted empty: no messages", "deleted 1 session(s), 0 problem(s)"]
    assert one_error_line(run("gc", "--older-than", "30 days", cwd=tmp_path)).startswith(
        "journal: error: argument"
    )
