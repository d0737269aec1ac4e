"""Compaction folds pop records (FORMAT.md "Pop records"): messages.json holds the history
without the popped messages, even when a pop reaches back into lines already written (flushed
to the file, or copied from the previous snapshot)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal import Journal, Record
from journal.compaction import folding, messages_file
from journal.log.snapshot import message_records
from journal.log.state import fold

SID = "s"


def view_messages(j: Journal) -> list[Record]:
    view = json.loads((Path(j.session_path(SID)) / "messages.json").read_bytes())
    assert view["total_messages"] == len(view["messages"])
    return message_records(view["messages"])


def assert_view_is_the_fold(j: Journal) -> None:
    """messages.json (just compacted) holds exactly the messages a replay of the log folds to."""
    assert view_messages(j) == fold(j.read(SID)).messages


def last_seq(j: Journal) -> int:
    state = j.state(SID)
    return state.messages[-1].seq if state is not None and state.messages else 1


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("pop"), st.booleans()),  # True: the last message; False: a stale seq
        st.tuples(st.just("partial"), st.integers(0, 2)),  # a streamed turn, 0-2 edits
        st.tuples(st.just("clear"), st.just(0)),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, segment_bytes=st.sampled_from([400, 1 << 20]), flush=st.sampled_from([1, 90, 1 << 20]))
def test_any_history_with_pops_compacts_to_the_fold_of_its_log(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ops: list[tuple[str, Any]],
    segment_bytes: int,
    flush: int,
) -> None:
    monkeypatch.setattr(messages_file, "_FLUSH_BYTES", flush)  # small: pops reach into flushed lines
    root = tmp_path / f"store-{time.monotonic_ns()}"
    with Journal(root, durability="none", segment_bytes=segment_bytes) as j:
        n = 0
        for op, arg in ops:
            if op == "append":
                j.append_many(SID, [{"role": "user", "content": f"m{n + i} " * (n % 5)} for i in range(arg)])
                n += arg
            elif op == "pop":
                j.append_batch(SID, [("pop", {"of": last_seq(j) if arg else 1}, None)])
            elif op == "partial":
                first = j.append(SID, {"role": "assistant", "content": "p", "metadata": {"partial": True}})
                for i in range(arg):
                    edit = {"of": first, "append": str(i), **({"final": True} if i == 1 else {})}
                    j._append(SID, [("edit", folding.orjson.dumps(edit), None)], None)
            elif op == "clear":
                j.clear(SID)
            elif j.exists(SID):
                j.compact(SID)
                assert_view_is_the_fold(j)
        if not j.exists(SID):
            return
        j.compact(SID)
        assert_view_is_the_fold(j)
        final = fold(j.read(SID))
    with Journal(root) as fresh:
        assert fresh.state(SID) == final
        assert fresh.verify(SID).ok


def test_pops_past_the_flush_size_and_into_the_previous_snapshot(tmp_path: Path) -> None:
    """Real sizes: 3 MiB of messages (three flushes), compacted; then pops that take back lines
    written by the previous compaction, all but the first message."""
    big = "x" * 20_000
    with Journal(tmp_path, durability="none") as j:
        seqs = j.append_many(SID, [{"role": "user", "content": f"{i} {big}"} for i in range(150)])
        j.compact(SID)
        for seq in reversed(seqs[1:]):
            j.append_batch(SID, [("pop", {"of": seq}, None)])
        j.compact(SID)
        assert [m.seq for m in view_messages(j)] == [seqs[0]]
        j.append(SID, {"role": "user", "content": "after"})
        j.append_batch(SID, [("pop", {"of": seqs[0]}, None)])  # not the last: changes nothing
        j.compact(SID)
        assert [m.data["content"][:5] for m in view_messages(j)] == [f"0 {big[:3]}", "after"]
        assert_view_is_the_fold(j)


def test_an_edit_after_a_pop_reaches_the_partial_message_below_as_the_live_fold_does(tmp_path: Path) -> None:
    with Journal(tmp_path, durability="none") as j:
        partial = j.append(SID, {"role": "assistant", "content": "It", "metadata": {"partial": True}})
        j.compact(SID)  # the partial message is a written line of the previous snapshot
        other = j.append(SID, {"role": "user", "content": "interjection"})
        j.append_batch(SID, [("pop", {"of": other}, None)])
        j._append(SID, [("edit", b'{"of":%d,"append":" works.","final":true}' % partial, None)], None)
        state = j.state(SID)
        assert state is not None and [m.data["content"] for m in state.messages] == ["It works."]
        j.compact(SID)
        assert [m.data for m in view_messages(j)] == [
            {"role": "assistant", "content": "It works.", "metadata": {}}
        ]
