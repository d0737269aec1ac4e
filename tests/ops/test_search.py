"""`Journal.search` finds a message wherever the store keeps it (live log, archive, snapshot)
and exactly the messages a plain scan of the decoded records finds."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import CompactionPolicy, Journal, UnreadableSessionWarning
from journal.errors import InvalidQueryError
from journal.log import manifest
from journal.log.fs import OsFileSystem
from journal.log.record import EDIT, POP, Record, encode
from journal.ops import scanning
from journal.ops import search as search_module
from journal.ops import stats as stats_module
from journal.ops.history import session_reader
from journal.ops.scanning import texts
from journal.store.records import append_records

# Property tests build a store per example: in RAM when the host has it (fsyncs cost nothing).
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
WORD = "zebrafinch"  # in no generated text unless put there


def on_disk(session: Path) -> dict[str, bytes]:
    """The bytes of each file holding records: live segments, messages.json, and each
    archive decompressed."""
    found = {str(p.relative_to(session)): p.read_bytes() for p in sorted(session.glob("log/*.jsonl"))}
    if (session / "messages.json").exists():
        found["messages.json"] = (session / "messages.json").read_bytes()
    for archive in sorted(session.glob("archive/*.zst")):
        found[str(archive.relative_to(session))] = zstandard.ZstdDecompressor().decompress(
            archive.read_bytes()
        )
    return found


def holding(session: Path, needle: str) -> list[str]:
    return [name for name, data in on_disk(session).items() if needle.encode() in data]


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def hits(journal: Journal, query: str, **options: Any) -> list[tuple[str, int]]:
    return [(hit.session_id, hit.seq) for hit in journal.search(query, **options)]


def test_finds_a_message_in_the_live_log(journal: Journal, root: Path) -> None:
    journal.append("s", {"role": "user", "content": "hello"})
    journal.append("s", {"role": "user", "content": f"a {WORD.upper()} sings"})
    assert holding(root / "s", WORD.upper()) == ["log/00000000000000000001.jsonl"]
    [hit] = journal.search(WORD)
    assert (hit.session_id, hit.seq, hit.role, hit.preview) == ("s", 2, "user", f"a {WORD.upper()} sings")
    assert hit.timestamp == next(journal.read("s", 2)).ts


def test_finds_a_message_whose_only_copy_is_an_archive(journal: Journal, root: Path) -> None:
    journal.append("s", {"role": "assistant", "content": f"the {WORD} is small"})
    journal.clear("s")  # out of the current history: messages.json will not hold it
    journal.append("s", {"role": "user", "content": "next topic"})
    journal.compact("s")
    assert holding(root / "s", WORD) == ["archive/00000000000000000001.jsonl.zst"]
    assert [(h.seq, h.role, h.preview) for h in journal.search(WORD)] == [
        (1, "assistant", f"the {WORD} is small")
    ]


def test_finds_a_message_whose_only_copy_is_the_snapshot_after_retention(tmp_path: Path) -> None:
    policy = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)
    with Journal(tmp_path / "store", durability="none", compaction=policy) as journal:
        journal.append("s", {"role": "user", "content": f"one {WORD}"})
        ts = next(journal.read("s")).ts
        journal.compact("s")
        journal.append("s", {"role": "user", "content": "two"})
        journal.compact("s")  # retention removes the first archive
        assert holding(tmp_path / "store" / "s", WORD) == ["messages.json"]
        [hit] = journal.search(WORD)
    assert (hit.seq, hit.timestamp, hit.preview) == (1, ts, f"one {WORD}")


def test_each_message_is_found_once_wherever_it_has_copies(journal: Journal, root: Path) -> None:
    journal.append("s", {"role": "user", "content": f"{WORD} before"})
    journal.compact("s")  # in messages.json and in the archive now
    journal.append("s", {"role": "user", "content": f"{WORD} after"})
    assert sorted(holding(root / "s", WORD)) == [
        "archive/00000000000000000001.jsonl.zst",
        "log/00000000000000000003.jsonl",
        "messages.json",
    ]
    assert hits(journal, WORD) == [("s", 1), ("s", 3)]


def test_a_streamed_answer_is_matched_as_last_edited_and_a_dropped_one_not_at_all(
    journal: Journal, root: Path
) -> None:
    partial = {"role": "assistant", "content": "It is", "metadata": {"partial": True}}
    journal.append("s", {"role": "user", "content": "Weather?"})
    journal.append("s", partial)  # seq 2
    append_records(journal, "s", [(EDIT, {"of": 2, "append": f" a {WORD}"})])
    append_records(journal, "s", [(EDIT, {"of": 2, "append": " day.", "final": True})])
    journal.append("s", partial | {"content": f"{WORD} dropped"})  # seq 5
    append_records(journal, "s", [(EDIT, {"of": 5, "drop": True})])
    journal.append("s", partial | {"content": "never"})  # seq 7, never finalized
    append_records(journal, "s", [(EDIT, {"of": 7, "append": f" {WORD}"})])
    expected = [("s", 2, f"It is a {WORD} day."), ("s", 7, f"never {WORD}")]
    assert [(h.session_id, h.seq, h.preview) for h in journal.search(WORD)] == expected
    journal.clear("s")
    journal.compact("s")  # the edits now only in the archive
    assert holding(root / "s", " day.") == ["archive/00000000000000000001.jsonl.zst"]
    assert [(h.session_id, h.seq, h.preview) for h in journal.search(WORD)] == expected
    assert [(h.seq, h.preview) for h in journal.search("day.")] == [(2, f"It is a {WORD} day.")]


def test_a_popped_message_is_still_found_and_no_longer_counted(journal: Journal) -> None:
    journal.append("s", {"role": "user", "content": "keep"})
    journal.append("s", {"role": "assistant", "content": f"a {WORD} answer"})  # seq 2
    append_records(journal, "s", [(POP, {"of": 2})])
    assert journal.stats().total_messages == 1
    assert hits(journal, WORD) == [("s", 2)]  # its record is still stored
    journal.compact("s")
    assert hits(journal, WORD) == [("s", 2)] and journal.stats().total_messages == 1


def test_a_stream_in_the_pruned_snapshot_keeps_its_archived_edits_once(tmp_path: Path) -> None:
    policy = CompactionPolicy(keep_archives=1, merge_archive_bytes=0)
    with Journal(tmp_path / "store", durability="none", compaction=policy) as journal:
        journal.append("s", {"role": "assistant", "content": "It is", "metadata": {"partial": True}})
        journal.compact("s")
        append_records(journal, "s", [(EDIT, {"of": 1, "append": " sunny"})])  # seq 3
        journal.compact("s")  # the message now only in messages.json, its edit in an archive
        assert holding(tmp_path / "store" / "s", "It is") == ["messages.json"]
        assert [h.preview for h in journal.search("sunny")] == ["It is sunny"]
        append_records(journal, "s", [(EDIT, {"of": 1, "append": " today.", "final": True})])
        assert [h.preview for h in journal.search("sunny")] == ["It is sunny today."]
        state = journal.state("s")
        assert state is not None and state.messages[0].data["content"] == "It is sunny today."


def test_role_time_session_and_limit_filters(journal: Journal) -> None:
    day = datetime(2026, 11, 29, tzinfo=timezone.utc).timestamp()
    for sid in ("b", "a"):
        journal.append_batch(
            sid,
            [
                ("message", {"role": "user", "content": f"{WORD} 1"}, day - 60),
                ("message", {"role": "assistant", "content": f"{WORD} 2"}, day + 36000),
                ("message", {"role": "user", "content": f"{WORD} 3"}, day + 86400),
            ],
        )
    assert hits(journal, WORD) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert hits(journal, WORD, role="assistant") == [("a", 2), ("b", 2)]
    assert hits(journal, WORD, since="2026-11-29", until="2026-11-30") == [("a", 2), ("b", 2)]
    assert hits(journal, WORD, since="2026-11-29T10:00:00Z") == hits(journal, WORD, since=day + 36000)
    assert hits(journal, WORD, since=datetime(2026, 11, 30)) == [("a", 3), ("b", 3)]  # naive: UTC
    assert hits(journal, WORD, until="2026-11-29T12:00:00+02:00") == [("a", 1), ("b", 1)]
    assert hits(journal, WORD, sessions=["b", "nope"]) == [("b", 1), ("b", 2), ("b", 3)]
    assert hits(journal, WORD, limit=4) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert hits(journal, WORD, limit=0) == []


def test_limit_stops_reading(journal: Journal, root: Path) -> None:
    journal.append("a", {"role": "user", "content": WORD})
    journal.append_many("b", [{"role": "user", "content": WORD}, {"role": "user", "content": "x"}])
    segment = root / "b" / "log" / "00000000000000000001.jsonl"
    segment.write_bytes(segment.read_bytes().replace(b'"xxh3":"', b'"xxh3":"0', 1))  # a bad checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading "b" would warn: it is never read
        assert hits(journal, WORD, limit=1) == [("a", 1)]
    with pytest.warns(UnreadableSessionWarning, match="'b'"):
        assert hits(journal, WORD) == [("a", 1)]


def test_regex_and_case_insensitivity(journal: Journal) -> None:
    journal.append("s", {"role": "user", "content": "Machine Learning is fun"})
    journal.append("s", {"role": "user", "content": "machine-learning"})
    journal.append("s", {"role": "user", "content": "MACHINE LEARNING"})
    assert hits(journal, "machine learning") == [("s", 1), ("s", 3)]
    assert hits(journal, r"machine[ -]learning\b", regex=True) == [("s", 1), ("s", 2), ("s", 3)]
    assert hits(journal, "machine.learning") == []  # a literal: the dot is a dot


def test_an_invalid_regex_or_time_is_refused_before_anything_is_read(journal: Journal) -> None:
    journal.append("s", {"role": "user", "content": "x"})
    with pytest.raises(InvalidQueryError, match="regular expression"):
        journal.search("(unclosed", regex=True)  # not iterated: refused by the call itself
    for bad in ("yesterday", "2026-13-01", float("nan")):
        with pytest.raises(InvalidQueryError, match="since"):
            journal.search("x", since=bad)
    with pytest.raises(InvalidQueryError, match="until"):
        journal.search("x", until="29/11/2026")


def test_preview_is_the_text_around_the_match_like_the_docs_recipe(journal: Journal) -> None:
    text = "a" * 70 + WORD + "b" * 70
    journal.append("s", {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
    [hit] = journal.search(WORD)
    assert hit.preview == "..." + "a" * 50 + WORD + "b" * 50 + "..."
    assert hit.to_dict()["time"].endswith("Z") and hit.to_dict()["seq"] == 1


def test_a_torn_tail_or_a_batch_being_written_is_not_a_hit(journal: Journal, root: Path) -> None:
    journal.append("s", {"role": "user", "content": "kept"})
    segment = root / "s" / "log" / "00000000000000000001.jsonl"
    line = segment.read_bytes()
    torn = line.replace(b'"seq":1', b'"seq":2').replace(b"kept", WORD.encode())  # its checksum fails
    with open(segment, "ab") as out:
        out.write(torn + torn[:40])
    assert hits(journal, WORD) == [] and hits(journal, "kept") == [("s", 1)]
    first_of_two = encode(2, 1.0, "message", orjson.dumps({"role": "user", "content": WORD}), more=1)
    segment.write_bytes(line + first_of_two)  # a batch of two, its second record not written yet
    assert hits(journal, WORD) == [] and hits(journal, "kept") == [("s", 1)]
    segment.write_bytes(line + first_of_two + encode(3, 1.0, "message", b'{"content":"x"}'))
    assert hits(journal, WORD) == [("s", 2)]  # now the batch is whole


def test_a_read_only_store_is_searched_and_left_as_it_was(root: Path) -> None:
    with Journal(root, durability="none") as journal:
        journal.append("s", {"role": "user", "content": WORD})
        journal.compact("s")
        journal.append("s", {"role": "user", "content": WORD})
    before = tree(root)
    with Journal(root, read_only=True) as reader:
        assert hits(reader, WORD) == [("s", 1), ("s", 3)]
    assert tree(root) == before


COMPACTOR = """
import logging, os, sys, time
from journal import CompactionPolicy, Journal
logging.disable(logging.WARNING)  # "retention removed 1 archives", each time
policy = CompactionPolicy(keep_archives=2, merge_archive_bytes=0)
with Journal(sys.argv[1], durability="none", compaction=policy) as journal:
    print("ready", flush=True)
    for _ in range(80):  # a bounded store; or until the reader has done its rounds
        if os.path.exists(sys.argv[2]):
            break
        journal.append_many("s", [{"role": "user", "content": "filler"}] * 20)
        journal.compact("s")
"""


def filler_seqs(journal: Journal) -> set[int]:
    state = journal.state("s")
    assert state is not None
    return {m.seq for m in state.messages if m.data["content"] == "filler"}


def pruned(root: Path) -> bool:
    return manifest.load(OsFileSystem(), str(root / "s")).pruned_through > 30


def test_search_and_stats_while_another_process_compacts_and_prunes(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches: the reader lets go of the compaction lock often, so compactions publish
    # between its batches and it must start over without giving anything twice.
    monkeypatch.setattr(search_module, "BATCH", 3)
    monkeypatch.setattr(stats_module, "BATCH", 7)
    with Journal(root, durability="none") as journal:
        for n in range(30):
            journal.append("s", {"role": "user", "content": f"{WORD} {n}" if n % 3 == 0 else "plain"})
        expected = hits(journal, WORD)
    assert len(expected) == 10
    stop = root.parent / "stop"
    child = subprocess.Popen(
        [sys.executable, "-c", COMPACTOR, str(root), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with Journal(root, read_only=True) as reader, warnings.catch_warnings():
            warnings.simplefilter("error", UnreadableSessionWarning)
            rounds = 0
            # Three rounds at least, and on until retention has pruned (a fast reader could
            # finish three before the compactor's first prune): rounds run beside the prunes.
            while child.poll() is None and (rounds < 3 or not pruned(root)):
                assert hits(reader, WORD) == expected
                before = filler_seqs(reader)
                found = [seq for _, seq in hits(reader, "filler")]
                assert found == sorted(set(found)) and before <= set(found) <= filler_seqs(reader)
                least = len(reader.state("s").messages)  # type: ignore[union-attr]
                counted = reader.stats()
                most = len(reader.state("s").messages)  # type: ignore[union-attr]
                assert counted.problems == [] and least <= counted.total_messages <= most
                rounds += 1
    finally:
        stop.touch()
        child.wait(timeout=90)
    assert child.returncode == 0 and rounds >= 1  # at least one whole round ran beside it
    assert pruned(root)  # retention ran


def test_a_compaction_during_a_pass_restarts_it_without_giving_a_message_twice(tmp_path: Path) -> None:
    # Never compacted: no compaction lock to hold, so the compaction run from inside the pass
    # unlinks the segments the pass has yet to open.
    with Journal(tmp_path / "store", durability="none", segment_bytes=300) as journal:
        for n in range(12):  # each append past 300 bytes starts a segment
            journal.append("s", {"role": "user", "content": f"m{n}"})
        journal.append("s", {"role": "user", "content": "last"})
        assert len(list((tmp_path / "store" / "s" / "log").iterdir())) > 3
        reader = session_reader(journal, "s", history=True, prefilter=None)
        compacted = []

        def keep(record: Record) -> int:
            if not compacted:
                compacted.append(journal.compact("s").compacted)
            return record.seq

        seqs = []
        while (batch := reader.read_batch(keep, 4)) is not None:
            seqs += batch
        assert compacted == [True] and reader.restarts == 1
        assert seqs == [r.seq for r in journal.read("s") if r.kind == "message"]
        assert len(seqs) == 13


def test_the_non_ascii_letters_re_matches_to_ascii_ones_are_known() -> None:
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        matched = set(re.findall(letter, everything, re.IGNORECASE)) - {letter, letter.upper()}
        assert matched == set(scanning._NON_ASCII_TWINS.get(letter, "")), letter


# -- search(literal) is a plain scan of the decoded records --------------------------------------

# Characters JSON escapes, non-ASCII ones, and those IGNORECASE matches to an ASCII letter
# (dotted and dotless i, long s, the Kelvin sign).
ALPHABET = st.sampled_from(
    [*'abcXYZ ,."\\\n\t/\u00e9\u65e5\u0130\u0131\u017f\u212akK', "ab", "Ab", "\u2028", "\x00"]
)
TEXT = st.lists(ALPHABET, max_size=12).map("".join)
MESSAGE = st.builds(
    lambda role, text, parts: {"role": role, "content": [{"type": "text", "text": text}] if parts else text},
    st.sampled_from(["user", "assistant"]),
    TEXT,
    st.booleans(),
)
STEP = st.one_of(
    st.tuples(st.just("append"), st.sampled_from("pq"), MESSAGE),
    st.tuples(st.just("clear"), st.sampled_from("pq"), st.none()),
    st.tuples(st.just("compact"), st.sampled_from("pq"), st.none()),
)


def plain_scan(journal: Journal, query: str) -> list[tuple[str, int]]:
    """Every message `read` returns, and those retention pruned from it that the current
    history still holds, matched one by one."""
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    found = []
    for sid in sorted(journal.sessions()):
        pruned = manifest.load(journal.fs, journal.session_path(sid)).pruned_through
        state = journal.state(sid)
        assert state is not None
        kept = [m for m in state.messages if m.seq <= pruned]
        for record in kept + [r for r in journal.read(sid) if r.kind == "message"]:
            if any(pattern.search(text) for text in texts(record.data)):
                found.append((sid, record.seq))
    return found


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(STEP, max_size=14), query=TEXT, pick=st.integers(0, 1000))
def test_a_literal_search_finds_what_a_plain_scan_of_the_records_finds(
    steps: list[tuple[str, str, Any]], query: str, pick: int
) -> None:
    policy = CompactionPolicy(keep_archives=2, merge_archive_bytes=0)
    with (
        tempfile.TemporaryDirectory(dir=SCRATCH) as tmp,
        Journal(tmp, durability="none", compaction=policy) as journal,
    ):
        written = []
        for action, sid, message in steps:
            if action == "append":
                journal.append(sid, message)
                written += texts(message)
            elif action == "clear":
                journal.clear(sid)
            elif journal.exists(sid):
                journal.compact(sid)
        queries = {query}
        for n, text in enumerate(written[:8]):  # pieces of stored texts, as they are and case-swapped
            start = (pick + n) % (len(text) + 1)
            piece = text[start : start + 1 + (pick + n) % 6]
            queries |= {piece, piece.swapcase(), text.upper()}
        for one in sorted(queries):
            expected = plain_scan(journal, one)
            assert hits(journal, one) == expected, one
            assert hits(journal, re.escape(one), regex=True) == expected, one  # every line decoded
