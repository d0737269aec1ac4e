"""LangGraph threads as journal records: pure encode/decode and the in-memory index of a thread.

Strategy: a thread is one journal session; every checkpoint and every `put_writes` call is one
message record whose `role` says which it is (FORMAT.md, "LangGraph threads"). Serialized state
is the saver's `serde.dumps_typed` output, base64 in the record, and stays opaque; what a person
reading `messages.json` needs sits beside it as JSON: the checkpoint's metadata, its ids, and a
`content` holding the conversation messages the checkpoint added, as "role: text" lines.

`ThreadIndex` folds a thread's records in log order into what the saver's reads need, with the
rules SqliteSaver applies to its tables: a checkpoint put again under its id replaces the old
one (INSERT OR REPLACE); a write replaces the one with its (task id, idx) only when every write
of its call went to a special channel, else the first one stays (INSERT OR IGNORE). Deleting
is a rewrite: one batch of a journal "clear", the surviving records, and a rewrite record
naming the last seq the survivors were read from. Records another process appended between
that seq and the clear are live too (the clear was not meant for them); the index reports such
a gap and the saver reads it back from the log. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedFormatError

__all__ = [
    "CHECKPOINT",
    "MARKER",
    "RECORD_FORMAT",
    "REWRITE",
    "WRITES",
    "Entry",
    "ThreadIndex",
    "WriteRow",
    "checkpoint_data",
    "decode_blob",
    "encode_blob",
    "latest_with_delta_ancestors",
    "matches",
    "message_key",
    "render_messages",
    "rewrite_data",
    "writes_data",
]

CHECKPOINT = "langgraph.checkpoint"
WRITES = "langgraph.writes"
REWRITE = "langgraph.rewrite"
ROLES = (CHECKPOINT, WRITES, REWRITE)
RECORD_FORMAT = 1
MARKER = "langgraph"  # the session metadata key that marks a session as a LangGraph thread

# (task_id, channel, serde type, base64 value, task_path)
WriteRow = tuple[str, str, str, str, str]


def encode_blob(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def decode_blob(text: str) -> bytes:
    return base64.b64decode(text)


def checkpoint_data(
    ns: str,
    checkpoint_id: str,
    parent_id: str | None,
    metadata: dict[str, Any],
    typed: tuple[str, bytes],
    content: str | None,
) -> dict[str, Any]:
    """The record of one checkpoint; `metadata` is stored as JSON (see `typed_metadata`)."""
    return {
        "role": CHECKPOINT,
        "content": content,
        "format": RECORD_FORMAT,
        "ns": ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": parent_id,
        "checkpoint_metadata": metadata,
        "type": typed[0],
        "checkpoint": encode_blob(typed[1]),
    }


def typed_metadata(data: dict[str, Any], typed: tuple[str, bytes]) -> dict[str, Any]:
    """`data` with its metadata serialized by the serde instead: for metadata JSON cannot hold
    exactly (NaN, lone surrogates, objects), which SqliteSaver would refuse outright."""
    out = {k: v for k, v in data.items() if k != "checkpoint_metadata"}
    out["checkpoint_metadata_typed"] = [typed[0], encode_blob(typed[1])]
    return out


def writes_data(
    ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: list[list[Any]],
    replace: bool,
) -> dict[str, Any]:
    """The record of one `put_writes` call; `writes` holds `[idx, channel, type, base64]`."""
    return {
        "role": WRITES,
        "content": None,
        "format": RECORD_FORMAT,
        "ns": ns,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "task_path": task_path,
        "replace": replace,
        "writes": writes,
    }


def rewrite_data(based_on: int, kept: int, why: str) -> dict[str, Any]:
    """The last record of a rewrite batch: the survivors were read through seq `based_on`,
    and the `kept` records before this one are they (the batch's clear comes just before)."""
    return {"role": REWRITE, "content": why, "format": RECORD_FORMAT, "based_on": based_on, "kept": kept}


# -- the readable part ---------------------------------------------------------------------

_ROLE_NAMES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant"}


def message_key(message: Any) -> Any:
    """What tells two versions of a message apart: its id, else its role and text."""
    ident = message.get("id") if isinstance(message, dict) else getattr(message, "id", None)
    return ident if ident is not None else (_role(message), _text(message))


def render_messages(messages: Iterable[Any]) -> str | None:
    """Messages as "role: text" lines (tool calls in brackets), or None if there are none."""
    lines = []
    for message in messages:
        text = _text(message)
        calls = (
            message.get("tool_calls") if isinstance(message, dict) else getattr(message, "tool_calls", None)
        )
        if calls:
            named = ", ".join(str(c.get("name", "?")) if isinstance(c, dict) else "?" for c in calls)
            text = f"{text} [tool calls: {named}]" if text else f"[tool calls: {named}]"
        lines.append(f"{_role(message)}: {text}")
    if not lines:
        return None
    # A lone surrogate in a model's text would make the record unstorable as JSON.
    return "\n".join(lines).encode("utf-8", "replace").decode("utf-8")


def _role(message: Any) -> str:
    if isinstance(message, dict):
        return str(message.get("role", message.get("type", "message")))
    if isinstance(message, (tuple, list)) and len(message) == 2:
        return str(message[0])
    kind = str(getattr(message, "type", type(message).__name__))
    return str(getattr(message, "role", None) or _ROLE_NAMES.get(kind, kind))


def _text(message: Any) -> str:
    if isinstance(message, dict):
        content = message.get("content")
    elif isinstance(message, (tuple, list)) and len(message) == 2:
        content = message[1]
    else:
        content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        parts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, (str, dict))]
        return " ".join(p for p in parts if isinstance(p, str))
    return "" if content is None else repr(content)


def matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    """SqliteSaver's `list(filter=...)`: every key equals (a dotted key walks nested objects;
    None also matches a missing key)."""
    for key, value in (wanted or {}).items():
        found: Any = metadata.get(key)
        if key not in metadata and "." in key:
            found = metadata
            for part in key.split("."):
                found = found.get(part) if isinstance(found, dict) else None
        if found != value:
            return False
    return True


# -- the index -------------------------------------------------------------------------------


@dataclass
class Entry:
    """A live checkpoint: its record's seq, ts and data (never changed: shared with the log)."""

    seq: int
    ts: float | None
    data: dict[str, Any]


@dataclass
class ThreadIndex:
    """A thread's live checkpoints and writes, folded from its records in log order."""

    path: str = ""  # the session's directory, for errors
    marked: bool = False  # the session's metadata names it a LangGraph thread
    last_seq: int = 0  # every record through this seq is folded in
    first_seq: int | None = None  # the seq of the session's first message when folded
    created_at: float | None = None
    checkpoints: dict[str, dict[str, Entry]] = field(default_factory=dict)  # ns -> id -> entry
    order: dict[str, list[str]] = field(default_factory=dict)  # ns -> ids, ascending
    writes: dict[tuple[str, str], dict[tuple[str, int], WriteRow]] = field(default_factory=dict)
    # The conversation of the last checkpoint put per namespace: (id, message keys).
    last_messages: dict[str, tuple[str, set[Any]]] = field(default_factory=dict)

    def apply(self, seq: int, ts: float | None, data: Any) -> tuple[int, int] | None:
        """Fold one message record in; return the (first, last) seqs of a gap to read back and
        fold in too when it is a rewrite record whose batch did not directly follow the seq
        its survivors were read through. Records of other roles are not the saver's: skipped."""
        role = data.get("role") if isinstance(data, dict) else None
        if role not in ROLES:
            return None
        if data.get("format") != RECORD_FORMAT:
            raise UnsupportedFormatError(f"{self.path} (record {seq}, {role})", data.get("format"))
        if role == CHECKPOINT:
            self._put(Entry(seq, ts, data))
        elif role == WRITES:
            self._write(data)
        else:
            clear = seq - int(data["kept"]) - 1
            if clear > int(data["based_on"]) + 1:
                return int(data["based_on"]) + 1, clear - 1
        return None

    def _put(self, entry: Entry) -> None:
        ns, ident = entry.data["ns"], entry.data["checkpoint_id"]
        known = self.checkpoints.setdefault(ns, {})
        if ident not in known:
            ids = self.order.setdefault(ns, [])
            if ids and ident < ids[-1]:
                bisect.insort(ids, ident)
            else:
                ids.append(ident)
        known[ident] = entry

    def _write(self, data: dict[str, Any]) -> None:
        rows = self.writes.setdefault((data["ns"], data["checkpoint_id"]), {})
        task, path, replace = data["task_id"], data["task_path"], data["replace"]
        for idx, channel, kind, value in data["writes"]:
            key = (task, idx)
            if replace or key not in rows:
                rows[key] = (task, channel, kind, value, path)

    # -- reading ---------------------------------------------------------------------------

    def get(self, ns: str, checkpoint_id: str | None) -> Entry | None:
        """The checkpoint `checkpoint_id` of namespace `ns`, or its latest one."""
        if checkpoint_id is None:
            ids = self.order.get(ns)
            return self.checkpoints[ns][ids[-1]] if ids else None
        return self.checkpoints.get(ns, {}).get(checkpoint_id)

    def newest_first(self, ns: str | None) -> Iterator[Entry]:
        """The checkpoints of `ns` (None: every namespace), highest id first."""
        if ns is not None:
            known = self.checkpoints.get(ns, {})
            return (known[i] for i in reversed(self.order.get(ns, [])))
        every = [entry for known in self.checkpoints.values() for entry in known.values()]
        return iter(sorted(every, key=lambda e: str(e.data["checkpoint_id"]), reverse=True))

    def write_rows(self, ns: str, checkpoint_id: str) -> list[tuple[WriteRow, int]]:
        """The checkpoint's writes and their idx, in `writes_sort_key` order."""
        rows = self.writes.get((ns, checkpoint_id), {})
        ordered = sorted(rows.items(), key=lambda item: (item[1][4], item[0][0], item[0][1]))
        return [(row, key[1]) for key, row in ordered]

    def survivors(self, keep: Callable[[str, str], bool]) -> list[tuple[dict[str, Any], float | None]]:
        """The records that rebuild the kept part of the thread, in log order: each kept
        checkpoint's record as it is, then its writes, one record per task (replacing: the
        rows are already resolved)."""
        kept = sorted(
            (e for ns, known in self.checkpoints.items() for i, e in known.items() if keep(ns, i)),
            key=lambda e: e.seq,
        )
        out: list[tuple[dict[str, Any], float | None]] = []
        done: set[tuple[str, str]] = set()
        for entry in kept:
            out.append((entry.data, entry.ts))
            target = (entry.data["ns"], entry.data["checkpoint_id"])
            out.extend((data, entry.ts) for data in self._writes_records(target))
            done.add(target)
        for target in self.writes:  # writes whose checkpoint is gone or was never put
            if target not in done and keep(*target):
                out.extend((data, None) for data in self._writes_records(target))
        return out

    def _writes_records(self, target: tuple[str, str]) -> list[dict[str, Any]]:
        by_task: dict[tuple[str, str], list[list[Any]]] = {}
        for (task, idx), (_, channel, kind, value, path) in self.writes.get(target, {}).items():
            by_task.setdefault((task, path), []).append([idx, channel, kind, value])
        return [writes_data(*target, task, path, rows, True) for (task, path), rows in by_task.items()]


def latest_with_delta_ancestors(
    index: ThreadIndex, metadata_of: Callable[[Entry], Any]
) -> set[tuple[str, str]]:
    """The (namespace, id) of each namespace's latest checkpoint, and of the ancestors a
    DeltaChannel of it is rebuilt from: a checkpoint's metadata counts, per delta channel,
    the updates since its last snapshot; walking up the parents, a channel is covered at the
    first ancestor that no longer counts it (its snapshot, or its start)."""
    kept: set[tuple[str, str]] = set()
    for ns, ids in index.order.items():
        entry: Entry | None = index.checkpoints[ns][ids[-1]] if ids else None
        need: set[str] | None = None
        while entry is not None and need != set():
            kept.add((ns, entry.data["checkpoint_id"]))
            counted = metadata_of(entry).get("counters_since_delta_snapshot") or {}
            need = set(counted) if need is None else need & set(counted)
            parent = entry.data["parent_checkpoint_id"]
            entry = index.checkpoints[ns].get(parent) if parent else None
    return kept
