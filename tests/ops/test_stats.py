"""`Journal.stats` gives the docs' conversation analytics of the current histories, in one
pass that a session it cannot read does not stop."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _unprivileged import run_unprivileged
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import Journal, RecoveryWarning
from journal.log.record import EDIT, POP, Record
from journal.ops.history import session_reader
from journal.ops.scanning import texts
from journal.store.records import append_records

# Property tests build a store per example: in RAM when the host has it (fsyncs cost nothing).
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
DAY = datetime(2026, 11, 29, tzinfo=timezone.utc).timestamp()


def analyze_json_conversations(session_dir: str) -> dict[str, Any]:
    """The docs' "Conversation Analytics" recipe, as published (its error printing left out)."""
    analytics: dict[str, Any] = {
        "total_sessions": 0,
        "total_messages": 0,
        "messages_by_role": Counter(),
        "sessions_by_day": defaultdict(int),
        "average_session_length": 0,
        "top_words": Counter(),
        "session_durations": [],
    }
    for session_id in os.listdir(session_dir):
        session_path = os.path.join(session_dir, session_id)
        if not os.path.isdir(session_path):
            continue
        messages_file = os.path.join(session_path, "messages.json")
        if not os.path.exists(messages_file):
            continue
        with open(messages_file) as f:
            data = json.load(f)
        messages = data.get("messages", [])
        analytics["total_sessions"] += 1
        analytics["total_messages"] += len(messages)
        if messages:
            first_message = messages[0]
            if "timestamp" in first_message:
                day = first_message["timestamp"][:10]
                analytics["sessions_by_day"][day] += 1
            if len(messages) > 1:
                start_time = datetime.fromisoformat(first_message["timestamp"].replace("Z", "+00:00"))
                end_time = datetime.fromisoformat(messages[-1]["timestamp"].replace("Z", "+00:00"))
                analytics["session_durations"].append((end_time - start_time).total_seconds())
        for message in messages:
            role = message.get("role", "unknown")
            analytics["messages_by_role"][role] += 1
            content = message.get("content", "").lower()
            analytics["top_words"].update(content.split())
    if analytics["total_sessions"] > 0:
        analytics["average_session_length"] = analytics["total_messages"] / analytics["total_sessions"]
    if analytics["session_durations"]:
        durations = analytics["session_durations"]
        analytics["average_duration_minutes"] = sum(durations) / len(durations) / 60
    return analytics


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def small_store(journal: Journal) -> None:
    """a: 3 messages over 5 minutes; b: 2 a day later, compacted between them; c: cleared,
    then 1; d: metadata only."""
    journal.append_batch(
        "a",
        [
            ("message", {"role": "user", "content": "Hello world"}, DAY),
            ("message", {"role": "assistant", "content": "hello there, World"}, DAY + 120),
            ("message", {"role": "user", "content": "bye"}, DAY + 300),
        ],
    )
    journal.append_batch("b", [("message", {"role": "user", "content": "world peace"}, DAY + 86400)])
    journal.compact("b")
    journal.append_batch("b", [("message", {"role": "assistant", "content": "peace"}, DAY + 86460)])
    journal.append_batch(
        "c",
        [
            ("message", {"role": "user", "content": "gone gone gone"}, DAY),
            ("clear", {}, DAY + 10),
            (
                "message",
                {"role": "tool", "content": [{"type": "text", "text": "only this"}]},
                DAY + 2 * 86400,
            ),
        ],
    )
    journal.update_metadata("d", {"title": "nothing said"})


def test_stats_of_a_small_store_computed_by_hand(journal: Journal) -> None:
    small_store(journal)
    done: list[tuple[int, int | None]] = []
    result = journal.stats(progress=lambda n, total: done.append((n, total)))
    assert result.total_sessions == 4
    assert result.total_messages == 6
    assert result.messages_by_role == {"user": 3, "assistant": 2, "tool": 1}
    assert result.sessions_by_day == {"2026-11-29": 1, "2026-11-30": 1, "2026-12-01": 1}
    assert result.average_session_length == 1.5
    assert result.average_duration_minutes == (300 + 60) / 2 / 60
    # "there," is a word of its own, as str.split() makes it; ties in alphabetical order
    assert result.top_words == [
        ("world", 3),
        ("hello", 2),
        ("peace", 2),
        ("bye", 1),
        ("only", 1),
        ("there,", 1),
        ("this", 1),
    ]
    assert result.problems == []
    assert done == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert journal.stats(sessions=["a", "c"]).total_messages == 4
    assert json.loads(json.dumps(result.to_dict()))["top_words"][0] == ["world", 3]


def test_stats_match_the_docs_recipe_on_the_compacted_views(journal: Journal, root: Path) -> None:
    # The recipe calls .lower() on content: only string contents here.
    journal.append_batch("cleared", [("message", {"role": "user", "content": "old words"}, DAY)])
    journal.clear("cleared")
    journal.append_batch("cleared", [("message", {"role": "user", "content": "new words"}, DAY + 5)])
    journal.append_batch("split", [("message", {"role": "user", "content": "first half"}, DAY + 7)])
    journal.compact("split")
    journal.append_batch("split", [("message", {"role": "assistant", "content": "second half"}, DAY + 9)])
    for n in range(12):
        sid = f"s{n}"
        for k in range(n % 5):
            role = ("user", "assistant", "system")[k % 3]
            journal.append_batch(
                sid, [("message", {"role": role, "content": f"w{k} w{n} x"}, DAY + n * 3600 + k)]
            )
        journal.update_metadata(sid, {"n": n})
    journal.compact_all()  # the recipe reads messages.json: bring every view current
    ours, recipe = journal.stats(), analyze_json_conversations(str(root))
    assert ours.total_sessions == recipe["total_sessions"] == 14
    assert ours.total_messages == recipe["total_messages"]
    assert ours.messages_by_role == dict(recipe["messages_by_role"])
    assert ours.average_session_length == recipe["average_session_length"]
    assert ours.sessions_by_day == dict(recipe["sessions_by_day"])
    assert ours.average_duration_minutes == pytest.approx(recipe["average_duration_minutes"], abs=1e-4)
    assert {word: recipe["top_words"][word] for word, _ in ours.top_words} == dict(ours.top_words)
    assert sorted(dict(recipe["top_words"].most_common(10)).values()) == sorted(dict(ours.top_words).values())


def test_a_damaged_session_is_reported_and_the_others_counted(journal: Journal, root: Path) -> None:
    small_store(journal)
    segment = root / "a" / "log" / "00000000000000000001.jsonl"
    segment.write_bytes(segment.read_bytes().replace(b"Hello world", b"Hello World"))  # checksum fails
    result = journal.stats()
    assert [sid for sid, _ in result.problems] == ["a"]
    assert "checksum" in result.problems[0][1]
    assert (result.total_sessions, result.total_messages) == (3, 3)


def test_a_session_without_permission_is_reported_and_the_others_counted(root: Path) -> None:
    with Journal(root, durability="none") as journal:
        small_store(journal)
    os.chmod(root / "b", 0)  # run unprivileged below: root would read it anyway
    try:
        out = run_unprivileged(
            """
            import json, sys, warnings
            from journal import Journal
            warnings.simplefilter("ignore")  # the listing warns of "b" too
            with Journal(sys.argv[1], read_only=True) as journal:
                print(json.dumps(journal.stats().to_dict()))
            """,
            str(root),
        )
    finally:
        os.chmod(root / "b", 0o700)
    assert [sid for sid, _ in out["problems"]] == ["b"]  # type: ignore[attr-defined]
    assert "Permission denied" in out["problems"][0][1]  # type: ignore[index]
    assert (out["total_sessions"], out["total_messages"]) == (3, 4)


def test_a_read_only_store_is_counted_and_left_as_it_was(root: Path) -> None:
    with Journal(root, durability="none") as journal:
        small_store(journal)
        expected = journal.stats()
    before = tree(root)
    with Journal(root, read_only=True) as reader:
        assert reader.stats() == expected
    assert tree(root) == before


def test_a_view_edited_by_hand_is_counted_from_the_log(journal: Journal, root: Path) -> None:
    small_store(journal)
    journal.compact("a")
    view = root / "a" / "messages.json"
    edited = json.loads(view.read_text())
    edited["messages"] = edited["messages"][:1]  # a message deleted by hand
    view.write_text(json.dumps(edited, indent=2))
    with pytest.warns(RecoveryWarning, match="rebuilt from the archives"):
        result = journal.stats(sessions=["a"])
    assert (result.total_messages, result.problems) == (3, [])


def test_a_named_session_that_does_not_exist_is_a_problem(journal: Journal) -> None:
    small_store(journal)
    result = journal.stats(sessions=["a", "zz"])
    assert [sid for sid, _ in result.problems] == ["zz"]
    assert result.total_sessions == 1


def test_a_compaction_during_a_pass_starts_the_session_over(tmp_path: Path) -> None:
    with Journal(tmp_path / "store", durability="none", segment_bytes=300) as journal:
        for n in range(12):  # each append past 300 bytes starts a segment
            journal.append("s", {"role": "user", "content": f"m{n}"})
        journal.clear("s")
        journal.append("s", {"role": "user", "content": "last"})
        reader = session_reader(journal, "s", history=False, prefilter=None)
        compacted = []

        def keep(record: Record) -> int:
            if not compacted:
                compacted.append(journal.compact("s").compacted)
            return record.seq  # CLEARED: 0

        seqs = []
        while (batch := reader.read_batch(keep, 4)) is not None:
            seqs += batch
        last = [r.seq for r in journal.read("s") if r.kind == "message"][-1]
    assert compacted == [True] and reader.restarts == 1
    # Started over (0), then the snapshot holds only what followed the clear.
    assert seqs.count(0) == 1 and seqs[seqs.index(0) :] == [0, last]


# -- the streaming pass counts what `Journal.state` holds ---------------------------------------

TEXT = st.lists(st.sampled_from(["a", "B", "c", " ", "\n", "é", "a b"]), max_size=6).map("".join)
STEP = st.one_of(
    st.tuples(st.just("message"), st.sampled_from("pq"), TEXT),
    st.tuples(st.just("partial"), st.sampled_from("pq"), TEXT),
    st.tuples(
        st.just("edit"), st.sampled_from("pq"), st.sampled_from(["append", "final", "drop", "content"])
    ),
    st.tuples(st.just("clear"), st.sampled_from("pq"), st.none()),
    st.tuples(st.just("pop"), st.sampled_from("pq"), st.none()),
    st.tuples(st.just("compact"), st.sampled_from("pq"), st.none()),
)


def counted_from_states(journal: Journal) -> tuple[int, Counter[str], Counter[str], list[float]]:
    messages, roles, words, durations = 0, Counter[str](), Counter[str](), []
    for sid in journal.sessions():
        state = journal.state(sid)
        assert state is not None
        messages += len(state.messages)
        roles.update(m.data.get("role", "unknown") for m in state.messages)
        for m in state.messages:
            for text in texts(m.data):
                words.update(text.lower().split())
        if len(state.messages) > 1:
            durations.append(state.messages[-1].ts - state.messages[0].ts)
    return messages, roles, words, durations


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(STEP, max_size=16))
def test_stats_count_what_the_folded_states_hold(steps: list[tuple[str, str, Any]]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp, Journal(tmp, durability="none") as journal:
        for action, sid, arg in steps:
            if action in ("message", "partial"):
                meta = {"partial": True} if action == "partial" else {}
                journal.append(sid, {"role": "assistant", "content": arg, "metadata": meta})
            elif action == "edit":
                last = [r for r in journal.read(sid) if r.kind == "message"][-1:]
                of = last[0].seq if last else 1
                edit = (
                    {"append": " x"}
                    if arg == "append"
                    else {"content": "y z"}
                    if arg == "content"
                    else {arg: True}
                )
                append_records(journal, sid, [(EDIT, {"of": of, **edit})])
            elif action == "clear":
                journal.clear(sid)
            elif action == "pop":  # the last message, as a writer that read the state pops it
                state = journal.state(sid)
                of = state.messages[-1].seq if state is not None and state.messages else 1
                append_records(journal, sid, [(POP, {"of": of})])
            elif journal.exists(sid):
                journal.compact(sid)
        messages, roles, words, durations = counted_from_states(journal)
        result = journal.stats()
    assert result.total_messages == messages
    assert result.messages_by_role == dict(roles)
    assert dict(result.top_words) == dict(sorted(words.items(), key=lambda w: (-w[1], w[0]))[:10])
    expected = sum(durations) / len(durations) / 60 if durations else None
    assert result.average_duration_minutes == expected
