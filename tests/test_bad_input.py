"""Bad input gets a clear error and writes nothing (journal/native.py, journal/record.py)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _core_helpers import contents, message, snapshot

from journal import (
    InvalidRecordError,
    InvalidSessionIdError,
    Journal,
    JournalError,
    RecordTooLargeError,
    StoreRootError,
)

SID = "chat"
MAX = 1000

# (case, the call, the error, what its message must contain)
BAD_CALLS: list[tuple[str, Callable[[Journal], Any], type[Exception], str]] = [
    (
        "a set nested in the payload",
        lambda j: j.append(SID, {"role": "user", "content": "x", "meta": {"tags": {"a", "b"}}}),
        InvalidRecordError,
        "['meta']['tags']",
    ),
    (
        "a datetime nested in a list",
        lambda j: j.append(SID, {"content": "x", "metadata": {"when": [datetime.datetime.now()]}}),
        InvalidRecordError,
        "['metadata']['when'][0]",
    ),
    ("bytes", lambda j: j.append(SID, {"content": "x", "blob": b"\x00"}), InvalidRecordError, "['blob']"),
    (
        "a non-string key",
        lambda j: j.append(SID, {"content": "x", "m": {1: "a"}}),
        InvalidRecordError,
        "['m']",
    ),
    ("a non-string role", lambda j: j.append(SID, {"role": 1, "content": "x"}), InvalidRecordError, "role"),
    ("a dict as content", lambda j: j.append(SID, {"content": {"text": "x"}}), InvalidRecordError, "content"),
    ("an int as content", lambda j: j.append(SID, {"content": 3}), InvalidRecordError, "content"),
    (
        "a lone surrogate in content",
        lambda j: j.append(SID, {"role": "user", "content": "bad \ud800 text"}),
        InvalidRecordError,
        "['content']",
    ),
    (
        "a lone surrogate in a key",
        lambda j: j.append(SID, {"content": "x", "meta": {"bad\udfff": 1}}),
        InvalidRecordError,
        "['meta']['bad\\udfff']: key is not valid UTF-8",
    ),
    (
        "NaN",
        lambda j: j.append(SID, {"content": "x", "score": float("nan")}),
        InvalidRecordError,
        "['score']",
    ),
    (
        "Infinity deep inside",
        lambda j: j.append(SID, {"content": [{"type": "text", "p": -float("inf")}]}),
        InvalidRecordError,
        "['content'][0]['p']",
    ),
    ("an integer over 64 bits", lambda j: j.append(SID, {"n": 2**64}), InvalidRecordError, "['n']"),
    (
        "a record over max_record_bytes",
        lambda j: j.append(SID, message("x" * MAX)),
        RecordTooLargeError,
        "1000",
    ),
    (
        "one bad message in a batch",
        lambda j: j.append_many(SID, [message("fine"), {"content": "x", "s": {1}}, message("fine")]),
        InvalidRecordError,
        "['s']",
    ),
    (
        "one bad message in a replacement",
        lambda j: j.replace_messages(SID, [message("fine"), {"role": None}]),
        InvalidRecordError,
        "role",
    ),
    (
        "bad metadata",
        lambda j: j.update_metadata(SID, {"tags": {"a"}}),
        InvalidRecordError,
        "['tags']",
    ),
    ("an empty session id", lambda j: j.append("", message("x")), InvalidSessionIdError, "empty"),
    ("an over-long session id", lambda j: j.append("x" * 241, message("x")), InvalidSessionIdError, "long"),
    (
        "a session id with a lone surrogate",
        lambda j: j.append("\ud800", message("x")),
        InvalidSessionIdError,
        "surrogate",
    ),
]


def journal_with_history(root: Path) -> Journal:
    journal = Journal(root, durability="none", max_record_bytes=MAX)
    journal.append(SID, message("first"))
    journal.update_metadata(SID, {"title": "kept"})
    return journal


@pytest.mark.parametrize(("case", "call", "error", "says"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_written(
    root: Path, case: str, call: Callable[[Journal], Any], error: type[Exception], says: str
) -> None:
    with journal_with_history(root) as journal:
        before = snapshot(root)
        with pytest.raises(error) as caught:
            call(journal)
        assert isinstance(caught.value, JournalError)
        assert says in str(caught.value)
        assert snapshot(root) == before
        assert contents(journal.read(SID)) == ["first", None]
        assert journal.append(SID, message("still appendable")) == 3
    with Journal(root) as reopened:
        assert contents(reopened.read(SID)) == ["first", None, "still appendable"]


# (case, the call, the error) for arguments of the wrong type: plain TypeError / ValueError
WRONG_TYPES: list[tuple[str, Callable[[Journal], Any], type[Exception]]] = [
    ("a list as the message", lambda j: j.append(SID, [message("x")]), TypeError),  # type: ignore[arg-type]
    ("a string as the message", lambda j: j.append(SID, "hello"), TypeError),  # type: ignore[arg-type]
    ("None as the message", lambda j: j.append(SID, None), TypeError),  # type: ignore[arg-type]
    ("a non-dict in a batch", lambda j: j.append_many(SID, [message("x"), "y"]), TypeError),  # type: ignore[list-item]
    ("a list as metadata", lambda j: j.update_metadata(SID, ["x"]), TypeError),  # type: ignore[arg-type]
    ("an int as session id", lambda j: j.append(7, message("x")), TypeError),  # type: ignore[arg-type]
    ("bytes as session id", lambda j: j.append(b"chat", message("x")), TypeError),  # type: ignore[arg-type]
    ("an unknown durability", lambda j: j.append(SID, message("x"), durability="sometimes"), ValueError),
    ("durability for a batch", lambda j: j.append_many(SID, [message("x")], durability="ALWAYS"), ValueError),
]


@pytest.mark.parametrize(("case", "call", "error"), WRONG_TYPES, ids=[c[0] for c in WRONG_TYPES])
def test_arguments_of_the_wrong_type_raise_type_or_value_error_and_write_nothing(
    root: Path, case: str, call: Callable[[Journal], Any], error: type[Exception]
) -> None:
    with journal_with_history(root) as journal:
        before = snapshot(root)
        with pytest.raises(error):
            call(journal)
        assert snapshot(root) == before
        assert journal.append(SID, message("still appendable")) == 3


@pytest.mark.parametrize("durability", ["", "fsync", "Always", None])
def test_a_bad_durability_string_is_a_value_error(root: Path, durability: Any) -> None:
    with pytest.raises(ValueError):
        Journal(root, durability=durability)


def test_a_store_root_that_is_a_file_is_a_store_root_error(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_bytes(b"not a directory")
    with pytest.raises(StoreRootError) as caught:
        Journal(path)
    assert isinstance(caught.value, JournalError)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == b"not a directory"


def test_a_store_root_under_a_file_is_a_store_root_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StoreRootError):
        Journal(tmp_path / "a-file" / "store")


def test_a_session_id_error_is_also_a_value_error(root: Path) -> None:
    with Journal(root) as journal, pytest.raises(ValueError):
        journal.append("", message("x"))
    assert list(root.iterdir()) == []


def test_reading_an_invalid_session_id_raises_too(root: Path) -> None:
    with Journal(root) as journal:
        with pytest.raises(InvalidSessionIdError):
            list(journal.read(""))
        with pytest.raises(TypeError):
            list(journal.read(None))  # type: ignore[arg-type]
