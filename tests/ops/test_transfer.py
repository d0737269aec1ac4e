"""Export and import of whole conversations (`Journal.export_archive` / `import_archive`),
through real stores on real files: the file written, what a bad file does (nothing), the
docs' recipe's archive, conflicts, progress, and reading in bounded memory."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from journal import DefaultSessionStore, Journal, UnreadableSessionWarning, UnsafePathError
from journal.errors import (
    ExportError,
    InvalidArchiveError,
    ReadOnlyError,
    UnknownSessionError,
    UnsupportedFormatError,
)
from journal.ops.archive_json import OPEN, read_members
from journal.ops.transfer import session_document

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def fill(root: Path) -> None:
    """Two sessions with every kind of field, at given times."""
    with Journal(root, durability="none") as j:
        j.append_batch(
            "chat/1",
            [
                ("meta", {"agent_id": "a1", "user_id": "u", "topic": "billing"}, 1_700_000_000.25),
                (
                    "message",
                    {"role": "user", "content": "héllo", "metadata": {"k": [1, 2.5]}},
                    1_700_000_001.5,
                ),
                ("message", {"role": "assistant", "content": None, "tool_calls": [CALL]}, 1_700_000_002.0),
                (
                    "message",
                    {"role": "tool", "content": "42", "tool_call_id": "call_1"},
                    1_700_000_003.123456,
                ),
                ("meta", {}, 1_700_000_099.0),
            ],
        )
        j.append_batch("s2", [("message", {"role": "user", "content": [{"type": "text", "text": "x"}]}, 5.0)])


def documents(root: Path) -> dict[str, Any]:
    with Journal(root, durability="none") as j:
        return {session_id: session_document(j, session_id) for session_id in j.sessions()}


def listing(root: Path) -> list[str]:
    return sorted(os.listdir(root))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    fill(tmp_path / "store")
    return tmp_path / "store"


# -- the file written -----------------------------------------------------------------------------


def test_the_archive_is_the_docs_format_with_full_messages(store: Path, tmp_path: Path) -> None:
    with Journal(store) as j:
        report = j.export_archive(tmp_path / "a.json")
    body = json.loads((tmp_path / "a.json").read_text())
    assert (report.sessions, report.messages, report.bytes) == (2, 4, (tmp_path / "a.json").stat().st_size)
    assert body["total_sessions"] == 2 and datetime.fromisoformat(body["export_timestamp"].rstrip("Z"))
    chat = body["conversations"]["chat/1"]
    assert chat["session_metadata"] == {
        "session_id": "chat/1",
        "created_at": 1_700_000_000.25,
        "updated_at": 1_700_000_099.0,
        "metadata": {"agent_id": "a1", "user_id": "u", "topic": "billing"},
    }
    assert chat["message_count"] == 3
    assert chat["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [CALL],
        "timestamp": 1_700_000_002.0,
    }
    assert chat["messages"][2]["timestamp"] == 1_700_000_003.123456
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("format", ["archive", "portable"])
def test_a_zst_export_is_the_same_json_compressed_and_imports_exactly(
    store: Path, tmp_path: Path, format: str
) -> None:
    with Journal(store) as j:
        j.export_archive(tmp_path / "a.json", format=format)
        j.export_archive(tmp_path / "a.json.zst", format=format)
    raw = (tmp_path / "a.json.zst").read_bytes()
    plain = json.loads(zstandard.ZstdDecompressor().stream_reader(raw).read())
    assert raw.startswith(b"\x28\xb5\x2f\xfd")
    assert {**plain, "export_timestamp": 0} == {
        **json.loads((tmp_path / "a.json").read_text()),
        "export_timestamp": 0,
    }
    with Journal(tmp_path / "copy") as j:
        report = j.import_archive(tmp_path / "a.json.zst")
    assert (report.imported, report.messages) == (2, 4)
    assert documents(tmp_path / "copy") == documents(store)


def test_the_portable_export_is_praisonai_s_shape_and_its_store_imports_it(
    store: Path, tmp_path: Path
) -> None:
    with Journal(store) as j:
        j.export_archive(tmp_path / "p.json", format="portable")
    payload = json.loads((tmp_path / "p.json").read_text())
    assert payload["version"] == 1 and [s["session_id"] for s in payload["sessions"]] == ["chat/1", "s2"]
    first = payload["sessions"][0]
    assert (first["agent_id"], first["user_id"], first["metadata"]) == ("a1", "u", {"topic": "billing"})
    assert first["created_at"] == "2023-11-14T22:13:20.250000Z"
    with DefaultSessionStore(session_dir=str(tmp_path / "theirs"), durability="none") as other:
        assert other.import_sessions(payload, reset_live_fields=False).imported == 2
        session = other.get_session("chat/1")
        assert [m.content for m in session.messages] == ["héllo", None, "42"]
        assert (session.agent_id, session.user_id, session.metadata) == ("a1", "u", {"topic": "billing"})


def test_session_document_depends_on_nothing_but_the_conversation(store: Path, tmp_path: Path) -> None:
    with Journal(store) as j:
        j.export_archive(tmp_path / "a.json")
    with Journal(tmp_path / "elsewhere" / "deeper") as j:
        j.import_archive(tmp_path / "a.json")
        copy = session_document(j, "chat/1")
        with pytest.raises(UnknownSessionError):
            session_document(j, "nobody")
    with Journal(store) as j:
        original = session_document(j, "chat/1")
    assert json.dumps(copy, sort_keys=True) == json.dumps(original, sort_keys=True)
    assert str(tmp_path) not in json.dumps(original)


def test_progress_is_called_once_per_session_with_the_total(store: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    with Journal(store) as j:
        j.export_archive(tmp_path / "a.json", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    with Journal(tmp_path / "copy") as j:
        j.import_archive(tmp_path / "a.json", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_export_of_chosen_sessions_and_of_an_unknown_one(store: Path, tmp_path: Path) -> None:
    with Journal(store) as j:
        assert j.export_archive(tmp_path / "one.json", ["s2"]).sessions == 1
        with pytest.raises(UnknownSessionError):
            j.export_archive(tmp_path / "none.json", ["s2", "nobody"])
    assert list(json.loads((tmp_path / "one.json").read_text())["conversations"]) == ["s2"]
    assert listing(tmp_path) == ["one.json", "store"]  # no file, no temp file


def test_export_never_writes_over_a_file_or_through_a_link(store: Path, tmp_path: Path) -> None:
    (tmp_path / "taken.json").write_text("mine")
    (tmp_path / "link.json").symlink_to(tmp_path / "elsewhere.json")  # dangling: not to be created
    with Journal(store) as j:
        for name in ("taken.json", "link.json", "missing/a.json", "store/a.json"):
            with pytest.raises(ExportError, match=r"exists|no such directory|inside the store"):
                j.export_archive(tmp_path / name)
    assert (tmp_path / "taken.json").read_text() == "mine"
    assert not (tmp_path / "elsewhere.json").exists()
    assert listing(tmp_path) == ["link.json", "store", "taken.json"]
    assert "a.json" not in listing(store)


def test_a_session_that_cannot_be_read_is_left_out_with_a_warning(store: Path, tmp_path: Path) -> None:
    with Journal(store) as j:
        j.append_many("bad", [{"role": "user", "content": f"m{i}"} for i in range(3)])
    segment = next((store / "bad" / "log").iterdir())
    lines = segment.read_bytes().split(b"\n")
    segment.write_bytes(b"\n".join([lines[0], b"garbage" + lines[1][7:], *lines[2:]]))  # damage, then valid
    with Journal(store) as j, pytest.warns(UnreadableSessionWarning, match="bad"):
        report = j.export_archive(tmp_path / "a.json")
    assert (report.sessions, report.skipped) == (2, ("bad",))
    body = json.loads((tmp_path / "a.json").read_text())
    assert sorted(body["conversations"]) == ["chat/1", "s2"] and body["total_sessions"] == 3


def test_a_read_only_store_exports_but_refuses_an_import(store: Path, tmp_path: Path) -> None:
    with Journal(store, read_only=True) as j:
        assert j.export_archive(tmp_path / "a.json").sessions == 2
        with pytest.raises(ReadOnlyError):
            j.import_archive(tmp_path / "a.json")


# -- what a bad file does: an error, and nothing written ------------------------------------------

GOOD = {"session_metadata": {"created_at": 1.0}, "messages": [{"role": "user", "content": "x"}]}
NOT_EXPORTS = {
    "garbage": b"\x00\x01 not json at all",
    "empty": b"",
    "an array": b'[{"conversations": {}}]',
    "an object without conversations": b'{"export_timestamp": "2024-01-01", "sessions_by_day": {}}',
    "conversations not an object": b'{"conversations": [1, 2]}',
    "a conversation not an object": b'{"conversations": {"a": 3}}',
    "messages not an array": b'{"conversations": {"a": {"messages": {"role": "user"}}}}',
    "a message not an object": b'{"conversations": {"a": {"messages": ["hi"]}}}',
    "a role of a number": b'{"conversations": {"a": {"messages": [{"role": 1, "content": "x"}]}}}',
    "content of a number": b'{"conversations": {"a": {"messages": [{"role": "user", "content": 7}]}}}',
    "a timestamp that is no time": b'{"conversations": {"a": {"messages": [{"timestamp": "soon"}]}}}',
    "a time after 9999": b'{"conversations": {"a": {"session_metadata": {"created_at": 1e13}}}}',
    "a wrong message_count": b'{"conversations": {"a": {"messages": [], "message_count": 2}}}',
    "metadata not an object": b'{"conversations": {"a": {"session_metadata": {"metadata": [1]}}}}',
    "a NaN": b'{"conversations": {"a": {"messages": [{"role": "u", "content": "x", "n": NaN}]}}}',
    "an id that names no session": b'{"conversations": {"": {"messages": []}}}',
    "a session twice": b'{"conversations": {"a": {"messages": []}, "a": {"messages": []}}}',
    "a bad one after a good one": b'{"conversations": {"good": %s, "bad": {"messages": [5]}}}'
    % json.dumps(GOOD).encode(),
    "text after the object": b'{"conversations": {"good": %s}} {}' % json.dumps(GOOD).encode(),
    "cut short": b'{"conversations": {"good": %s, "b' % json.dumps(GOOD).encode(),
    "both formats": b'{"version": 1, "sessions": [], "conversations": {}}',
    "sessions without a version": b'{"sessions": [{"session_id": "a", "messages": []}]}',
    "a portable session without an id": b'{"version": 1, "sessions": [{"messages": []}]}',
    "a zstd frame cut short": zstandard.ZstdCompressor(write_checksum=True).compress(
        b'{"conversations": {"a": %s}}' % json.dumps(GOOD).encode()
    )[:-4],  # all of the text, not the frame's end: a file cut short is never taken as whole
    "zstd of garbage": zstandard.ZstdCompressor().compress(b"garbage"),
    "not UTF-8": b'{"conversations": {"a": {"messages": [{"role": "\xff"}]}}}',
    "a lone surrogate": b'{"conversations": {"a": {"messages": [{"role": "user", "content": "\\ud800"}]}}}',
    "an integer past 64 bits": b'{"conversations": {"a": {"session_metadata": {"metadata": {"n": %d}}}}}'
    % 2**70,
}


@pytest.mark.parametrize("name", sorted(NOT_EXPORTS))
def test_a_file_that_is_not_an_export_is_refused_and_nothing_is_written(
    store: Path, tmp_path: Path, name: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(NOT_EXPORTS[name])
    before, files = documents(store), listing(store)
    with Journal(store) as j, pytest.raises(InvalidArchiveError) as caught:
        j.import_archive(path, on_conflict="replace")
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert documents(store) == before and listing(store) == files


def test_a_record_the_store_would_refuse_is_found_before_anything_is_written(tmp_path: Path) -> None:
    body = {"conversations": {"ok": GOOD, "long": {"messages": [{"role": "user", "content": "x" * 500}]}}}
    (tmp_path / "a.json").write_text(json.dumps(body))
    with (
        Journal(tmp_path / "store", max_record_bytes=200) as j,
        pytest.raises(InvalidArchiveError, match="long"),
    ):
        j.import_archive(tmp_path / "a.json")
    assert listing(tmp_path / "store") == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"journal_archive_version": 2, "conversations": {"a": {"messages": []}}}',
        b'{"version": 2, "sessions": [{"session_id": "a", "messages": []}]}',
    ],
)
def test_a_newer_format_version_is_refused_and_nothing_is_written(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "new.json").write_bytes(body)
    with Journal(tmp_path / "store") as j, pytest.raises(UnsupportedFormatError):
        j.import_archive(tmp_path / "new.json")
    assert listing(tmp_path / "store") == []


def test_import_does_not_follow_a_link(store: Path, tmp_path: Path) -> None:
    with Journal(store) as j:
        j.export_archive(tmp_path / "a.json")
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    with Journal(tmp_path / "copy") as j, pytest.raises(UnsafePathError):
        j.import_archive(tmp_path / "link.json")


# -- conflicts ------------------------------------------------------------------------------------


def existing(root: Path) -> None:
    """The target already has chat/1: an older start of it, and metadata of its own."""
    with Journal(root, durability="none") as j:
        j.append_batch(
            "chat/1",
            [
                ("meta", {"agent_id": "a1", "mine": True}, 10.0),
                (
                    "message",
                    {"role": "user", "content": "héllo", "metadata": {"k": [1, 2.5]}},
                    1_700_000_001.5,
                ),
                ("message", {"role": "user", "content": "only here"}, 20.0),
            ],
        )


@pytest.mark.parametrize("mode", ["skip", "append", "replace"])
def test_each_conflict_mode_over_an_existing_session_and_twice_is_once(
    store: Path, tmp_path: Path, mode: str
) -> None:
    with Journal(store) as j:
        j.export_archive(tmp_path / "a.json")
    existing(tmp_path / "target")
    before = documents(tmp_path / "target")["chat/1"]
    with Journal(tmp_path / "target") as j:
        first = j.import_archive(tmp_path / "a.json", on_conflict=mode)
    once = documents(tmp_path / "target")
    with Journal(tmp_path / "target") as j:
        second = j.import_archive(tmp_path / "a.json", on_conflict=mode)
    assert documents(tmp_path / "target") == once
    assert once["s2"] == documents(store)["s2"] and first.imported == 1
    chat, wanted = once["chat/1"], documents(store)["chat/1"]
    contents = [m["content"] for m in chat["messages"]]
    if mode == "skip":
        assert chat == before and (first.skipped, second.skipped) == (1, 2)
    elif mode == "append":  # the one message it had is not repeated; its own key stays
        assert contents == ["héllo", "only here", None, "42"]
        assert chat["session_metadata"]["metadata"] == {
            "mine": True,
            **wanted["session_metadata"]["metadata"],
        }
        assert (first.appended, first.messages, second.appended, second.skipped) == (1, 3, 0, 2)
    else:
        assert chat["messages"] == wanted["messages"]
        assert chat["session_metadata"]["metadata"] == wanted["session_metadata"]["metadata"]
        assert chat["session_metadata"]["created_at"] == 10.0  # the log's first record stays
        assert (first.replaced, second.replaced) == (1, 2)


# -- the docs' recipe, and PraisonAI's store --------------------------------------------------------


def export_conversations_to_archive(store: Any, archive_path: str) -> None:
    """The docs' recipe ("Conversation Export and Import"), as printed."""
    sessions = store.list_sessions() if hasattr(store, "list_sessions") else []
    archive_data: dict[str, Any] = {
        "export_timestamp": datetime.now().isoformat(),
        "total_sessions": len(sessions),
        "conversations": {},
    }
    for session_info in sessions:
        session_id = session_info["session_id"]
        session = store.get_session(session_id)
        messages = store.get_chat_history(session_id)
        archive_data["conversations"][session_id] = {
            "session_metadata": session.__dict__ if hasattr(session, "__dict__") else session,
            "messages": messages,
            "message_count": len(messages),
        }
    with open(archive_path, "w") as f:
        json.dump(archive_data, f, indent=2, default=str)


@pytest.mark.parametrize("maker", ["journal", "praisonai"])
def test_the_docs_recipe_archive_imports_what_it_holds(tmp_path: Path, maker: str) -> None:
    if maker == "journal":
        source: Any = DefaultSessionStore(session_dir=str(tmp_path / "docs"), durability="none")
    else:
        from praisonaiagents.session.store import DefaultSessionStore as PraisonStore

        source = PraisonStore(session_dir=str(tmp_path / "docs"))
    source.add_message("chat 1", "user", "Hello")
    source.add_message("chat 1", "assistant", "Hi!", tool_calls=None)
    source.set_agent_info("chat 1", agent_name="bot", user_id="u1")
    source.update_session_metadata("chat 1", topic="greetings")
    source.add_message("c2", "user", "x")
    export_conversations_to_archive(source, str(tmp_path / "docs.json"))
    created = source.get_session("chat 1").created_at
    with Journal(tmp_path / "store") as j:
        report = j.import_archive(tmp_path / "docs.json", on_conflict="append")
        again = j.import_archive(tmp_path / "docs.json", on_conflict="append")
    assert (report.imported, report.messages, again.messages) == (2, 3, 0)
    chat = documents(tmp_path / "store")["chat 1"]
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [("user", "Hello"), ("assistant", "Hi!")]
    assert chat["session_metadata"]["metadata"] == {
        "agent_name": "bot",
        "user_id": "u1",
        "topic": "greetings",
    }
    start = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    assert abs(chat["session_metadata"]["created_at"] - start) < 0.001  # as the file says, to its ms
    assert all(m["timestamp"] == chat["session_metadata"]["created_at"] for m in chat["messages"])


def test_praisonai_s_own_portable_export_imports_with_its_timestamps(tmp_path: Path) -> None:
    from praisonaiagents.session.store import DefaultSessionStore as PraisonStore

    theirs = PraisonStore(session_dir=str(tmp_path / "theirs"))
    theirs.add_message("s", "user", "q", metadata={"n": 1})
    theirs.add_message("s", "assistant", "a")
    theirs.set_agent_info("s", agent_name="bot")
    (tmp_path / "p.json").write_text(json.dumps(theirs.export_all()))
    with Journal(tmp_path / "store") as j:
        assert j.import_archive(tmp_path / "p.json").imported == 1
    chat = documents(tmp_path / "store")["s"]
    wanted = [
        (m.role, m.content, m.metadata, round(m.timestamp, 6)) for m in theirs.get_session("s").messages
    ]
    assert [(m["role"], m["content"], m["metadata"], m["timestamp"]) for m in chat["messages"]] == wanted
    assert chat["session_metadata"]["metadata"]["agent_name"] == "bot"


def test_default_session_store_delegates_export_and_import(tmp_path: Path) -> None:
    with DefaultSessionStore(session_dir=str(tmp_path / "a"), durability="none") as store:
        store.add_message("s", "user", "hi", metadata={"x": 1})
        store.add_message("s", "assistant", None, tool_calls=[CALL])
        store.set_agent_info("s", agent_name="bot")
        assert store.export_archive(str(tmp_path / "a.json")).sessions == 1
        original = store.get_session("s")
    with DefaultSessionStore(session_dir=str(tmp_path / "b"), durability="none") as copy:
        assert copy.import_archive(str(tmp_path / "a.json")).imported == 1
        assert copy.get_session("s") == original


# -- bounded memory ---------------------------------------------------------------------------------


def test_conversations_are_handed_out_before_the_rest_of_the_file_is_read() -> None:
    """The reader decodes one conversation at a time: the first is out while the chunks of the
    second have not been asked for (each chunk is bigger than a read, so a reader that took
    the whole text first would have asked for all)."""
    asked: list[int] = []
    text = "x" * 1_500_000

    def chunks() -> Iterator[str]:
        parts = [
            '{"total_sessions": 2, "conversations": {"a": {"messages": [{"content": "' + text + '"}]}, ',
            '"b": {"messages": [{"content": "' + text,
            text + '"}]}',
            ', "c": {}}}',
        ]
        for index, part in enumerate(parts):
            asked.append(index)
            yield part

    members = read_members(chunks(), {"conversations": "{"})
    assert next(members) == ("total_sessions", None, 2)
    assert next(members).sub == OPEN
    first = next(members)
    assert (first.sub, first.value, asked) == ("a", {"messages": [{"content": text}]}, [0])
    assert [(m.sub, len(str(m.value))) for m in members] == [
        ("b", len(str({"messages": [{"content": text * 2}]}))),
        ("c", 2),
    ]
    assert asked == [0, 1, 2, 3]


def test_a_message_larger_than_the_read_chunks_round_trips(tmp_path: Path) -> None:
    content = "€𝄞 " * 700_000  # 5.6 MB of multi-byte characters: chunks cut them anywhere
    with Journal(tmp_path / "a", durability="none", max_record_bytes=64 << 20) as j:
        j.append_batch("big", [("message", {"role": "user", "content": content}, 3.0)])
        j.append("small", {"role": "user", "content": "x"})
        j.export_archive(tmp_path / "a.json.zst")
    with (
        Journal(tmp_path / "b", durability="none", max_record_bytes=64 << 20) as j,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error")
        assert j.import_archive(tmp_path / "a.json.zst").messages == 2
    assert documents(tmp_path / "b") == documents(tmp_path / "a")
