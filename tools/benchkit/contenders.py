"""Strategy: one small adapter per contender, all with the same few methods, so every
operation is written once and runs against each store the way its users call it.

A contender opens a handle on a directory; a handle appends one message (the store's own
message call), reads a session's history, lists sessions. An operation a store lacks is a
missing method (reported "—"), never an emulation. `per_thread` says whether threads share one
handle (journal, the JSON stores: their documented use) or open one each (SQLite connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

SESSIONS = ("threads_one", "threads_many", "procs_one", "procs_many")


@dataclass(frozen=True)
class Contender:
    """A store under test: how to open it, what it can do, how much to ask of it."""

    name: str
    opener: Callable[[str], Any]
    cheap: bool = False  # no sync per append: 100,000 messages instead of 10,000
    quadratic: bool = False  # rewrites the whole session per append: few messages
    per_thread: bool = False
    skip: frozenset[str] = field(default_factory=frozenset)  # operations it lacks or cannot do safely

    def can(self, operation: str) -> bool:
        return operation not in self.skip


class JournalHandle:
    def __init__(self, root: str, mode: str, preallocate: int = 0) -> None:
        from journal import Journal

        self.journal = Journal(root, durability=mode, preallocate=preallocate)

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        self.journal.append(sid, msg)

    def build(self, sid: str, msgs: list[dict[str, Any]]) -> None:
        self.journal.append_many(sid, msgs)

    def read(self, sid: str) -> int:
        state = self.journal.state(sid)
        return 0 if state is None else len(state.messages)

    def list_all(self) -> int:
        return sum(1 for _ in self.journal.sessions())

    def close(self) -> None:
        self.journal.close()


class StoreHandle:
    def __init__(self, root: str, mode: str) -> None:
        from journal import DefaultSessionStore

        self.store = DefaultSessionStore(root, durability=mode)

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        self.store.add_message(
            sid,
            msg["role"],
            msg["content"],
            msg.get("metadata"),
            msg.get("tool_calls"),
            msg.get("tool_call_id"),
        )

    def build(self, sid: str, msgs: list[dict[str, Any]]) -> None:
        self.store.set_chat_history(sid, msgs)

    def read(self, sid: str) -> int:
        return len(self.store.get_chat_history(sid))

    def list50(self) -> int:
        return len(self.store.list_sessions())

    def list_all(self) -> int:
        return len(self.store.list_sessions(limit=None))

    def close(self) -> None:
        self.store.close()


class PraisonHandle(StoreHandle):
    def __init__(self, root: str) -> None:
        from praisonaiagents.session.store import DefaultSessionStore as PraisonStore

        self.store = PraisonStore(session_dir=root, retention="keep_all")

    def list_all(self) -> int:
        return len(self.store.list_sessions(limit=10**9))

    def close(self) -> None:
        self.store.close_mirror()


def _langchain_message(msg: dict[str, Any]) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    role, content = msg["role"], msg["content"]
    if role == "system":
        return SystemMessage(content=content)
    if role == "user":
        return HumanMessage(content=content)
    if role == "tool":
        return ToolMessage(content=content, tool_call_id=msg["tool_call_id"])
    calls = [
        {"name": c["function"]["name"], "args": json.loads(c["function"]["arguments"]), "id": c["id"]}
        for c in msg.get("tool_calls") or ()
    ]
    return AIMessage(content=content, tool_calls=calls, response_metadata=msg.get("metadata") or {})


class LangChainHandle:
    """FileChatMessageHistory: one JSON file a session, read and written whole each append."""

    def __init__(self, root: str) -> None:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from langchain_community.chat_message_histories import FileChatMessageHistory

        self.root, self.cls, self.cache = root, FileChatMessageHistory, {}  # type: ignore[var-annotated]
        os.makedirs(root, exist_ok=True)

    def _history(self, sid: str) -> Any:
        return self.cls(os.path.join(self.root, f"{sid}.json"))

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        key = id(msg)  # the pool's messages are converted once, outside the per-append cost
        converted = self.cache.get(key)
        if converted is None:
            converted = self.cache[key] = _langchain_message(msg)
        self._history(sid).add_message(converted)

    def build(self, sid: str, msgs: list[dict[str, Any]]) -> None:
        from langchain_core.messages import messages_to_dict

        path = os.path.join(self.root, f"{sid}.json")
        with open(path, "w") as handle:  # what add_message leaves, written once
            json.dump(messages_to_dict([_langchain_message(m) for m in msgs]), handle)

    def read(self, sid: str) -> int:
        return len(self._history(sid).messages)

    def close(self) -> None:
        pass


def _agents_item(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses-API input items an Agents SDK run stores for this message."""
    role = msg["role"]
    if role == "tool":
        return [{"type": "function_call_output", "call_id": msg["tool_call_id"], "output": msg["content"]}]
    if role == "assistant" and msg.get("tool_calls"):
        return [
            {
                "type": "function_call",
                "call_id": c["id"],
                "name": c["function"]["name"],
                "arguments": c["function"]["arguments"],
            }
            for c in msg["tool_calls"]
        ]
    return [{"role": role, "content": msg["content"]}]


class AgentsHandle:
    """openai-agents SQLiteSession on a file; its async API driven by one event loop."""

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, "agents.db")
        self.loop = asyncio.new_event_loop()
        self.sessions: dict[str, Any] = {}

    def _session(self, sid: str) -> Any:
        from agents import SQLiteSession

        if sid not in self.sessions:
            self.sessions[sid] = SQLiteSession(sid, self.path)
        return self.sessions[sid]

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        self.loop.run_until_complete(self._session(sid).add_items(_agents_item(msg)))

    def build(self, sid: str, msgs: list[dict[str, Any]]) -> None:
        items = [item for m in msgs for item in _agents_item(m)]
        self.loop.run_until_complete(self._session(sid).add_items(items))

    def read(self, sid: str) -> int:
        return len(self.loop.run_until_complete(self._session(sid).get_items()))

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.loop.close()


class SqliteHandle:
    """One table, WAL, one committed INSERT a message (orjson, as journal encodes)."""

    def __init__(self, root: str, synchronous: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.db = sqlite3.connect(
            os.path.join(root, "chat.db"), timeout=60, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, session TEXT NOT NULL,"
            " created REAL DEFAULT (unixepoch('subsec')), data BLOB NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS by_session ON messages (session, id)")

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO messages (session, data) VALUES (?, ?)", (sid, orjson.dumps(msg)))
        self.db.execute("COMMIT")

    def build(self, sid: str, msgs: list[dict[str, Any]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO messages (session, data) VALUES (?, ?)", [(sid, orjson.dumps(m)) for m in msgs]
        )
        self.db.execute("COMMIT")

    def read(self, sid: str) -> int:
        rows = self.db.execute("SELECT data FROM messages WHERE session = ? ORDER BY id", (sid,))
        return len([orjson.loads(row[0]) for row in rows])

    def list50(self) -> int:
        return len(self._list(50))

    def list_all(self) -> int:
        return len(self._list(-1))

    def _list(self, limit: int) -> list[Any]:
        return self.db.execute(
            "SELECT session, count(*), max(created) AS updated FROM messages GROUP BY session"
            " ORDER BY updated DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def verify(self) -> None:
        assert self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        self.db.close()


def raw_line(seq: int, msg: dict[str, Any]) -> bytes:
    """A line like journal's: orjson + an xxh3 stamp, nothing else."""
    body = b'"seq":%d,"data":%s}' % (seq, orjson.dumps(msg))
    return b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(body).encode() + b'",' + body + b"\n"


class RawHandle:
    """The physical limits: write loops on an O_APPEND file, no lock, no checks."""

    CHUNK = 1 << 20

    def __init__(self, root: str, sync: bool, prealloc: bool = False) -> None:
        os.makedirs(root, exist_ok=True)
        self.root, self.sync, self.prealloc = root, sync, prealloc
        self.fds: dict[str, tuple[int, list[int]]] = {}

    def _fd(self, sid: str) -> tuple[int, list[int]]:
        if sid not in self.fds:
            flags = os.O_WRONLY | os.O_CREAT | (0 if self.prealloc else os.O_APPEND)
            fd = os.open(os.path.join(self.root, f"{sid}.jsonl"), flags, 0o600)
            self.fds[sid] = (fd, [0, 0, 0])  # offset, preallocated end, seq
        return self.fds[sid]

    def append(self, sid: str, msg: dict[str, Any]) -> None:
        fd, state = self._fd(sid)
        line = raw_line(state[2], msg)
        state[2] += 1
        if not self.prealloc:
            os.write(fd, line)
        else:  # fdatasync then commits no size change (until the next chunk)
            if state[0] + len(line) > state[1]:
                os.posix_fallocate(fd, state[1], self.CHUNK)
                state[1] += self.CHUNK
            os.pwrite(fd, line, state[0])
            state[0] += len(line)
        if self.sync:
            os.fdatasync(fd)

    def close(self) -> None:
        for fd, _ in self.fds.values():
            os.close(fd)


_MANY = frozenset({"threads_one", "procs_one"})
_NO_MULTI = frozenset(SESSIONS)
_NO_READS = frozenset({"read", "listing"})


def _group_commit(root: str) -> Any:
    from benchkit.groupcommit import GroupCommitHandle

    return GroupCommitHandle(root)


def registry() -> list[Contender]:
    """Every contender, in table order."""
    out = [
        Contender(f"journal {m}", lambda r, m=m: JournalHandle(r, m), cheap=m == "none")
        for m in ("none", "batch", "always")
    ]  # type: ignore[misc]
    out += [  # preallocation is opt-in (README "Durability modes")
        Contender(f"journal {m} prealloc", lambda r, m=m: JournalHandle(r, m, 64 * 1024))
        for m in ("batch", "always")
    ]  # type: ignore[misc]
    out += [
        Contender(f"store {m}", lambda r, m=m: StoreHandle(r, m), cheap=m == "none")
        for m in ("none", "batch", "always")
    ]  # type: ignore[misc]
    out += [
        Contender("praisonaiagents", PraisonHandle, quadratic=True),
        Contender(
            "langchain file", LangChainHandle, quadratic=True, per_thread=True, skip=_MANY | {"listing"}
        ),  # no lock: concurrent appends to one file lose messages
        Contender("agents SQLiteSession", AgentsHandle, per_thread=True, skip=frozenset({"listing"})),
        Contender("sqlite WAL NORMAL", lambda r: SqliteHandle(r, "NORMAL"), cheap=True, per_thread=True),
        Contender("sqlite WAL FULL", lambda r: SqliteHandle(r, "FULL"), per_thread=True),
        Contender("raw write", lambda r: RawHandle(r, False), cheap=True, per_thread=True, skip=_NO_READS),
        Contender("raw fdatasync", lambda r: RawHandle(r, True), per_thread=True, skip=_NO_READS),
        Contender(
            "raw prealloc fdatasync", lambda r: RawHandle(r, True, prealloc=True), skip=_NO_READS | _NO_MULTI
        ),
        Contender(
            "raw group commit",
            _group_commit,
            skip=_NO_READS | {"append", "threads_many", "procs_one", "procs_many"},
        ),
    ]
    return out


def by_name(name: str) -> Contender:
    for contender in registry():
        if contender.name == name:
            return contender
    raise KeyError(name)
