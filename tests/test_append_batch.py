"""`Journal.append_batch`: records of several kinds in one batch, each with a given time or the
time of the write (what an import needs to keep every timestamp)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from journal import InvalidRecordError, Journal


def test_given_times_are_kept_to_the_microsecond_and_fold_into_the_session_times(tmp_path: Path) -> None:
    with Journal(tmp_path / "s") as j:
        seqs = j.append_batch(
            "a",
            [
                ("meta", {"agent_id": "x"}, 1000.25),
                ("message", {"role": "user", "content": "hi"}, 1001.123456),
                ("message", {"role": "assistant", "content": "yo"}, None),
                ("meta", {}, 5000.5),
            ],
        )
        assert seqs == [1, 2, 3, 4]
    before = time.time()
    with Journal(tmp_path / "s") as j:  # read back from the file, not from memory
        records = list(j.read("a"))
        state = j.state("a")
    assert [r.ts for r in records][:2] == [1000.25, 1001.123456]
    assert abs(records[2].ts - before) < 600  # stamped at the write
    assert state is not None
    assert (state.created_at, state.updated_at) == (1000.25, 5000.5)
    assert state.metadata == {"agent_id": "x"}
    assert [m.data["content"] for m in state.messages] == ["hi", "yo"]


def test_a_clear_entry_empties_the_history_in_the_same_batch(tmp_path: Path) -> None:
    with Journal(tmp_path / "s") as j:
        j.append("a", {"role": "user", "content": "old"})
        j.append_batch("a", [("clear", {}, None), ("message", {"role": "user", "content": "new"}, 7.0)])
        state = j.state("a")
    assert state is not None and [m.data["content"] for m in state.messages] == ["new"]


@pytest.mark.parametrize(
    "entry",
    [
        ("message", {"role": "user", "content": "x"}, math.nan),
        ("message", {"role": "user", "content": "x"}, math.inf),
        ("message", {"role": "user", "content": "x"}, 1e13),  # after the year 9999
        ("message", {"role": "user", "content": "x"}, "2026-01-01"),
        ("message", {"role": "user", "content": "x"}, True),
        ("seal", {}, None),  # not a kind a caller may write
        ("message", {"role": 3, "content": "x"}, None),
    ],
)
def test_a_bad_entry_writes_nothing_of_the_batch(tmp_path: Path, entry: tuple[object, ...]) -> None:
    with Journal(tmp_path / "s") as j:
        good = ("message", {"role": "user", "content": "kept out"}, 1.0)
        with pytest.raises(InvalidRecordError):
            j.append_batch("a", [good, entry])  # type: ignore[list-item]
        assert not j.exists("a")


def test_an_entry_that_is_not_a_triple_is_a_type_error(tmp_path: Path) -> None:
    with Journal(tmp_path / "s") as j, pytest.raises(TypeError):
        j.append_batch("a", [("message", {"role": "user", "content": "x"})])  # type: ignore[list-item]
