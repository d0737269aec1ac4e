"""DefaultSessionStore (journal/session_store.py): PraisonAI's JSON store API over a Journal."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _core_helpers import FaultyFileSystem

from journal import (
    DefaultSessionStore,
    DurabilityError,
    InvalidRecordError,
    InvalidSessionIdError,
    SessionData,
    SessionMessage,
)
from journal.log.fs import OsFileSystem
from journal.log.record import CLEAR, MESSAGE

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DefaultSessionStore(session_dir=str(tmp_path / "sessions")) as s:
        yield s


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


class CountingBytesFileSystem(OsFileSystem):
    """The real OS, counting the bytes passed to append() and returned by pread()."""

    def __init__(self) -> None:
        super().__init__()
        self.appended = 0
        self.read = 0

    def append(self, fd: int, data: bytes) -> None:
        self.appended += len(data)
        super().append(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        data = super().pread(fd, size, offset)
        self.read += len(data)
        return data


def append_from_process(session_dir: str, worker: int, count: int) -> None:
    """A process appending "w<worker>-<i>" messages; module level so spawn can start it."""
    with DefaultSessionStore(session_dir=session_dir) as store:
        for i in range(count):
            store.add_message("shared", "user", f"w{worker}-{i}")
            store.add_message(f"own-{worker}", "assistant", f"w{worker}-{i}")


# -- the message record -----------------------------------------------------------------------


def test_add_message_returns_true_and_history_has_role_and_content(store: DefaultSessionStore) -> None:
    assert store.add_message("s", "user", "Hello") is True
    assert store.add_user_message("s", "Question?") is True
    assert store.add_assistant_message("s", "Answer.", metadata={"model": "gpt-4"}) is True
    assert store.get_chat_history("s") == [
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": "Answer."},
    ]


def test_each_message_is_one_record_with_role_content_metadata_and_tool_fields_only_when_set(
    store: DefaultSessionStore,
) -> None:
    store.add_message("s", "user", "hi")
    store.add_message("s", "assistant", "", metadata={"k": 1}, tool_calls=[TOOL_CALL])
    store.add_message("s", "tool", "2", tool_call_id="call_1")
    records = list(store.journal.read("s"))
    assert [r.kind for r in records] == [MESSAGE] * 3
    assert [r.data for r in records] == [
        {"role": "user", "content": "hi", "metadata": {}},
        {"role": "assistant", "content": "", "metadata": {"k": 1}, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "2", "metadata": {}, "tool_call_id": "call_1"},
    ]


def test_message_timestamp_is_the_record_ts(store: DefaultSessionStore) -> None:
    store.add_message("s", "user", "hi")
    (record,) = store.journal.read("s")
    (message,) = store.get_session("s").messages
    assert message.timestamp == record.ts
    assert isinstance(message.timestamp, float)


def test_text_turn_to_dict_has_exactly_role_content_timestamp_metadata(store: DefaultSessionStore) -> None:
    store.add_message("s", "user", "hi", metadata={"source": "web"})
    (message,) = store.get_session("s").messages
    assert set(message.to_dict()) == {"role", "content", "timestamp", "metadata"}
    assert message.to_dict()["metadata"] == {"source": "web"}
    assert message.to_llm_message() == {"role": "user", "content": "hi"}
    assert SessionMessage.from_dict(message.to_dict()) == message


def test_unicode_and_emoji_content_and_ids_round_trip(store: DefaultSessionStore, tmp_path: Path) -> None:
    text = "Grüße 👋🏽 — 你好, مرحبا, \u0000 nul and \U0001f9e0"
    store.add_message("café-☕", "user", text, metadata={"ключ": "значение 🔑"})
    again = DefaultSessionStore(session_dir=str(tmp_path / "sessions"))
    assert again.get_chat_history("café-☕") == [{"role": "user", "content": text}]
    assert again.get_session("café-☕").messages[0].metadata == {"ключ": "значение 🔑"}
    assert [row["session_id"] for row in again.list_sessions()] == ["café-☕"]


# -- tool calls and windowing ------------------------------------------------------------------


def test_tool_call_and_tool_result_round_trip(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "what is 1+1?")
    store.add_message("s", "assistant", None, tool_calls=[TOOL_CALL])
    store.add_message("s", "tool", "2", tool_call_id="call_1")
    store.add_assistant_message("s", "It is 2.")
    assert store.get_chat_history("s") == [
        {"role": "user", "content": "what is 1+1?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "2", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 2."},
    ]
    session = store.get_session("s")
    assert session.messages[1].tool_calls == [TOOL_CALL]
    assert session.messages[2].tool_call_id == "call_1"
    assert session.messages[1].to_dict()["tool_calls"] == [TOOL_CALL]


def test_window_never_starts_on_an_orphan_tool_result(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "q")
    store.add_message("s", "assistant", None, tool_calls=[TOOL_CALL, {**TOOL_CALL, "id": "call_2"}])
    store.add_message("s", "tool", "r1", tool_call_id="call_1")
    store.add_message("s", "tool", "r2", tool_call_id="call_2")
    store.add_assistant_message("s", "done")
    # The last 3 would open on tool result r1, whose assistant call was cut off.
    assert store.get_chat_history("s", max_messages=3) == [{"role": "assistant", "content": "done"}]
    assert store.get_session("s").get_chat_history(max_messages=3) == [
        {"role": "assistant", "content": "done"}
    ]
    assert [m["role"] for m in store.get_chat_history("s", max_messages=4)] == [
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]


def test_windowing_is_only_on_read_the_full_history_is_kept(store: DefaultSessionStore) -> None:
    for i in range(150):
        store.add_user_message("s", f"m{i}")
    assert [m["content"] for m in store.get_chat_history("s", max_messages=2)] == ["m148", "m149"]
    assert len(store.get_chat_history("s")) == 150
    assert len(store.get_chat_history("s", max_messages=0)) == 150
    assert len(store.get_session("s").messages) == 150


# -- session ids and reads that create nothing ---------------------------------------------


def test_session_ids_are_kept_exactly_so_similar_ids_are_different_sessions(
    store: DefaultSessionStore,
) -> None:
    store.add_user_message("a/b", "slash")
    store.add_user_message("a_b", "underscore")
    assert store.get_chat_history("a/b") == [{"role": "user", "content": "slash"}]
    assert store.get_chat_history("a_b") == [{"role": "user", "content": "underscore"}]
    assert sorted(row["session_id"] for row in store.list_sessions()) == ["a/b", "a_b"]
    assert store.get_session("a/b").session_id == "a/b"


def test_reads_of_an_unknown_session_create_nothing_on_disk(
    store: DefaultSessionStore, tmp_path: Path
) -> None:
    store.add_user_message("known", "hi")
    before = files_under(tmp_path)
    session = store.get_session("unknown")
    assert (session.session_id, session.messages, session.metadata) == ("unknown", [], {})
    assert session.agent_name is None
    assert store.get_chat_history("unknown") == []
    assert store.session_exists("unknown") is False
    assert [row["session_id"] for row in store.list_sessions()] == ["known"]
    assert files_under(tmp_path) == before


def test_empty_session_id_is_refused_and_nothing_is_written(
    store: DefaultSessionStore, tmp_path: Path
) -> None:
    before = files_under(tmp_path)
    with pytest.raises(InvalidSessionIdError):
        store.add_user_message("", "hi")
    with pytest.raises(InvalidSessionIdError):
        store.update_session_metadata("", topic="x")
    with pytest.raises(InvalidSessionIdError):
        store.get_session("")
    assert files_under(tmp_path) == before


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"role": 5}, "role"),
        ({"role": None}, "role"),
        ({"content": 123}, "content"),
        ({"content": {"text": "x"}}, "content"),
        ({"metadata": "not a dict"}, "metadata"),
        ({"metadata": {"when": object()}}, "'when'"),
        ({"metadata": {"score": float("nan")}}, "'score'"),
        ({"tool_calls": "call_1"}, "tool_calls"),
        ({"tool_call_id": 7}, "tool_call_id"),
    ],
)
def test_bad_message_input_raises_invalid_record_error_naming_it_and_writes_nothing(
    store: DefaultSessionStore, kwargs: dict[str, Any], named: str
) -> None:
    store.add_user_message("s", "before")
    args: dict[str, Any] = {"role": "user", "content": "x", **kwargs}
    with pytest.raises(InvalidRecordError, match=named):
        store.add_message("s", **args)
    store.add_user_message("s", "after")  # the session stays usable
    assert [m["content"] for m in store.get_chat_history("s")] == ["before", "after"]


def test_unserializable_session_metadata_is_refused_naming_the_key(store: DefaultSessionStore) -> None:
    with pytest.raises(InvalidRecordError, match="'started'"):
        store.update_session_metadata("s", topic="ok", started=datetime.now())
    assert store.session_exists("s") is False


def test_write_that_cannot_be_made_durable_raises_instead_of_returning_false(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    store = DefaultSessionStore(session_dir=str(tmp_path), fs=fs)
    store.add_user_message("s", "durable")
    fs.fail_sync = True
    with pytest.raises(DurabilityError):
        store.add_user_message("s", "not durable")
    fs.fail_sync = False
    store.journal.reopen("s")
    assert store.add_user_message("s", "later") is True


# -- session info ------------------------------------------------------------------------------


def test_agent_info_and_metadata_fields_land_on_session_data(store: DefaultSessionStore) -> None:
    assert store.set_agent_info("s", agent_name="FileBot", user_id="user123") is True
    assert store.update_session_metadata("s", agent_id="bot-1", topic="help", version=2) is True
    store.update_session_metadata("s", topic=None, version=3)  # None is ignored, as in the JSON store
    store.set_agent_info("s", user_id="user456")  # agent_name left as it was
    session = store.get_session("s")
    assert (session.agent_name, session.user_id, session.agent_id) == ("FileBot", "user456", "bot-1")
    assert session.metadata == {"topic": "help", "version": 3}
    assert session.messages == []


def test_session_data_round_trips_and_its_dict_dumps_as_json(store: DefaultSessionStore) -> None:
    store.set_agent_info("s", agent_name="FileBot")
    store.add_user_message("s", "hi", metadata={"source": "web"})
    session = store.get_session("s")
    assert SessionData.from_dict(session.to_dict()) == session
    assert session.created_at.endswith("Z") and session.created_at <= session.updated_at
    dumped = json.loads(json.dumps(session.__dict__, default=str))
    assert dumped["session_id"] == "s" and dumped["agent_name"] == "FileBot"
    assert json.loads(json.dumps(session.to_dict()))["messages"][0]["content"] == "hi"


def test_clear_session_is_a_logged_event_that_empties_history_and_keeps_info(
    store: DefaultSessionStore, tmp_path: Path
) -> None:
    store.set_agent_info("s", agent_name="FileBot")
    store.add_user_message("s", "old")
    assert store.clear_session("s") is True
    store.add_user_message("s", "new")
    assert [r.kind for r in store.journal.read("s")][-2:] == [CLEAR, MESSAGE]
    reopened = DefaultSessionStore(session_dir=str(tmp_path / "sessions"))
    assert reopened.get_chat_history("s") == [{"role": "user", "content": "new"}]
    assert reopened.get_session("s").agent_name == "FileBot"


def test_set_chat_history_replaces_every_message(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "old")
    new = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "r", "tool_call_id": "call_1", "metadata": {"ms": 3}},
    ]
    assert store.set_chat_history("s", new) is True
    assert store.get_chat_history("s") == [{k: v for k, v in m.items() if k != "metadata"} for m in new]
    assert store.get_session("s").messages[2].metadata == {"ms": 3}


def test_set_chat_history_with_one_bad_message_changes_nothing(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "old")
    with pytest.raises(InvalidRecordError, match=r"messages\[1\]"):
        store.set_chat_history("s", [{"role": "user", "content": "ok"}, "not a dict"])  # type: ignore[list-item]
    with pytest.raises(InvalidRecordError, match="role"):
        store.set_chat_history("s", [{"role": "user", "content": "ok"}, {"role": 1, "content": "x"}])
    assert store.get_chat_history("s") == [{"role": "user", "content": "old"}]


def test_delete_session_removes_its_directory_entirely(store: DefaultSessionStore) -> None:
    store.add_user_message("s", "hi")
    path = Path(store.journal.session_path("s"))
    assert (path / "lock").exists()
    assert store.delete_session("s") is True
    assert not path.exists()
    assert os.listdir(store.session_dir) == []
    assert store.session_exists("s") is False
    assert store.get_chat_history("s") == []
    assert store.delete_session("s") is True  # already gone: still no such session


# -- listing -------------------------------------------------------------------------------------


def test_list_sessions_is_newest_first_with_documented_keys_and_honours_limit(
    store: DefaultSessionStore,
) -> None:
    for session_id in ("first", "second", "third"):
        store.add_user_message(session_id, "hi")
    store.add_user_message("first", "again")  # now the most recently updated
    store.set_agent_info("second", agent_name="FileBot")
    rows = store.list_sessions()
    assert [row["session_id"] for row in rows] == ["second", "first", "third"]
    first = rows[1]
    assert {
        "session_id",
        "path",
        "created_at",
        "updated_at",
        "modified",
        "message_count",
        "agent_name",
    } <= set(first)
    assert first["path"] == store.journal.session_path("first") and os.path.isdir(first["path"])
    assert isinstance(first["modified"], datetime)
    assert first["message_count"] == 2 and rows[0]["agent_name"] == "FileBot"
    assert [row["session_id"] for row in store.list_sessions(limit=2)] == ["second", "first"]


# -- sharing a directory ---------------------------------------------------------------------


def test_two_stores_on_one_directory_see_each_others_writes_immediately(tmp_path: Path) -> None:
    a = DefaultSessionStore(session_dir=str(tmp_path))
    b = DefaultSessionStore(session_dir=str(tmp_path))
    a.add_user_message("s", "from a")
    assert b.get_chat_history("s") == [{"role": "user", "content": "from a"}]
    b.add_assistant_message("s", "from b")
    b.update_session_metadata("s", topic="shared")
    assert [m["content"] for m in a.get_chat_history("s")] == ["from a", "from b"]
    assert a.get_session("s").metadata == {"topic": "shared"}
    b.clear_session("s")
    assert a.get_chat_history("s") == []
    a.delete_session("s")
    assert b.session_exists("s") is False and b.get_chat_history("s") == []
    b.add_user_message("s", "reborn")
    assert a.get_chat_history("s") == [{"role": "user", "content": "reborn"}]


def test_threads_writing_through_two_stores_lose_nothing(tmp_path: Path) -> None:
    stores = [DefaultSessionStore(session_dir=str(tmp_path)) for _ in range(2)]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(40):
                stores[worker % 2].add_message("shared", "user", f"w{worker}-{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    contents = [m["content"] for m in stores[0].get_chat_history("shared")]
    assert sorted(contents) == sorted(f"w{w}-{i}" for w in range(8) for i in range(40))
    for w in range(8):  # each writer's messages stay in its order
        assert [c for c in contents if c.startswith(f"w{w}-")] == [f"w{w}-{i}" for i in range(40)]


def test_processes_writing_one_directory_lose_nothing(tmp_path: Path) -> None:
    workers, count = 4, 40
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.starmap(append_from_process, [(str(tmp_path), w, count) for w in range(workers)])
    store = DefaultSessionStore(session_dir=str(tmp_path))
    contents = [m["content"] for m in store.get_chat_history("shared")]
    assert sorted(contents) == sorted(f"w{w}-{i}" for w in range(workers) for i in range(count))
    for w in range(workers):
        assert [c for c in contents if c.startswith(f"w{w}-")] == [f"w{w}-{i}" for i in range(count)]
        assert len(store.get_chat_history(f"own-{w}")) == count


# -- cost does not grow with the session ---------------------------------------------------------


def test_per_append_bytes_stay_flat_over_10000_messages(tmp_path: Path) -> None:
    fs = CountingBytesFileSystem()
    store = DefaultSessionStore(session_dir=str(tmp_path), durability="none", fs=fs)
    written: dict[int, int] = {}
    for n in range(1, 10_001):
        before = fs.appended
        store.add_message("long", "user", f"message {n:05d}", metadata={"n": n % 10})
        written[n] = fs.appended - before
    # One record line each; only the sequence number's digits grow (2 -> 5).
    assert 0 < written[10] <= written[10_000] <= written[10] + 4
    assert written[10_000] < 200
    assert len(store.get_chat_history("long")) == 10_000


def test_reading_after_an_append_parses_only_the_new_bytes(tmp_path: Path) -> None:
    fs = CountingBytesFileSystem()
    store = DefaultSessionStore(session_dir=str(tmp_path), durability="none", fs=fs)
    store.journal.append_many(
        "s", [{"role": "user", "content": f"m{i}", "metadata": {}} for i in range(2000)]
    )
    assert len(store.get_chat_history("s")) == 2000
    before_append = fs.appended
    store.add_user_message("s", "one more")
    record_bytes = fs.appended - before_append
    before_read = fs.read
    assert store.get_chat_history("s", max_messages=1) == [{"role": "user", "content": "one more"}]
    assert fs.read - before_read == record_bytes


# -- construction and closing ------------------------------------------------------------------


def test_default_session_dir_is_sessions_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = DefaultSessionStore()
    store.add_user_message("s", "hi")
    assert store.session_dir == "./sessions"
    assert (tmp_path / "sessions" / "s").is_dir()


def test_journal_options_are_passed_through_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        DefaultSessionStore(session_dir=str(tmp_path), durability="sometimes")
    store = DefaultSessionStore(session_dir=str(tmp_path), durability="always", lock_timeout=5.0)
    assert store.journal.options.durability == "always"
    assert store.journal.options.lock_timeout == 5.0


def test_store_is_usable_after_close_and_as_a_context_manager(tmp_path: Path) -> None:
    with DefaultSessionStore(session_dir=str(tmp_path)) as store:
        store.add_user_message("s", "one")
    store.add_user_message("s", "two")
    store.close()
    assert [m["content"] for m in DefaultSessionStore(session_dir=str(tmp_path)).get_chat_history("s")] == [
        "one",
        "two",
    ]
