"""`DefaultSessionStore.list_sessions`: every session's summary, without reading histories.

Strategy: the summaries come from the store's listing index (`log.index`, FORMAT.md
"Listing index"): one file read, one listing of the root and one of the marks, so a listing
touches no session's files but those that changed. A session is read from its own files
(`log.summary.read_summary`: one small file, one stat, the few records written since its
views) when the index does not know it, a writer marked it, or its live log held records when
last read; a session whose files cannot say it for sure (a compaction publishing meanwhile,
views of an older version, damage) is read the locked way, through `Journal.state`. Names in
the root the index does not know are classified anew: a session, another store's files to
adopt (`Journal.sessions` adopts them), or a file that is no session (remembered). Every
`index.FULL_PASS_SECONDS` (and when the index is missing or damaged) every session is read.
The index is then written back if anything changed. The summaries are sorted by last update
and only the `limit` newest become entries. One unreadable session is left out with a warning.
"""

from __future__ import annotations

import os
import time
import warnings
from datetime import datetime
from typing import Any

from ..adoption import adopt
from ..errors import JournalError, UnreadableSessionWarning
from ..log import index, naming
from ..log.fs import TEMP_MARK, FileSystem, unlink_quietly
from ..log.gcpause import gc_paused
from ..log.index import Entry, Index
from ..log.summary import Summary, read_summary
from ..native import Journal
from .session_data import iso_time

# PraisonAI's list_sessions keys taken from the session metadata (None when absent).
_METADATA_KEYS = (
    "title",
    "source",
    "parent_id",
    "parent_session_id",
    "agent_key",
    "model",
    "total_tokens",
    "cost",
)
_LISTED_KEYS = ("agent_name", "agent_id", "user_id", *_METADATA_KEYS)  # what the index keeps


def list_sessions(journal: Journal, limit: int | None) -> list[dict[str, Any]]:
    """The `limit` (None: all) most recently updated sessions, newest first, as entries."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
    with gc_paused():  # tens of thousands of small objects, none of them cyclic
        found = _summaries(journal)
        chosen = sorted(found.items(), key=_by_updated, reverse=True)
        return [_row(journal, name, entry) for name, entry in chosen[:limit]]


def _by_updated(item: tuple[str, Entry]) -> float:
    return item[1][2] or 0.0


def _summaries(journal: Journal) -> dict[str, Entry]:
    """Every session's summary, by directory name; the index brought up to date."""
    fs, root, boot = journal.fs, journal.root, index.boot_id()
    handle = index.IndexFile(fs, root, not journal.read_only)
    try:
        names = fs.listdir(root)
        data = handle.read(create=len(names) >= index.MIN_SESSIONS)  # before any session is read
        hidden = [name for name in names if name.startswith(".")]
        old, dirty = index.decode(data, boot)
        now = time.time()
        full = old is None or not 0 <= now - old.checked <= index.FULL_PASS_SECONDS
        base = old if old is not None else Index()
        if hidden:
            names = [name for name in names if not name.startswith(".")]
            if handle.locked:
                _remove_orphans(fs, root, hidden)
        new = Index(now if full else base.checked)
        fresh = _carry(fs, root, Index() if full else base, new, names, dirty)
        read: dict[str, Entry] = {}
        foreign = _classify(journal, fresh, new, read, adopting=True)
        if foreign:  # another store's sessions: adopted now, then read as ours
            list(journal.sessions())
            known = new.sessions.keys() | read.keys() | new.others.keys()  # the rest: read again
            again = [name for name in fs.listdir(root) if name not in known and not name.startswith(".")]
            _classify(journal, again, new, read, adopting=False)
        if handle.locked and (full or bool(dirty) or _differs(new, base)):
            _publish(journal, handle, new, boot)
    finally:
        handle.close()
    read.update(new.sessions)
    return read


def _differs(new: Index, base: Index) -> bool:
    return (new.sessions, new.live, new.others) != (base.sessions, base.live, base.others)


def _remove_orphans(fs: FileSystem, root: str, names: list[str]) -> None:
    """The temps of listings that died before their rename (the lock holder's to remove)."""
    for name in names:
        if name.startswith(index.INDEX_FILE + TEMP_MARK):
            unlink_quietly(fs, os.path.join(root, name))


def _carry(
    fs: FileSystem, root: str, base: Index, new: Index, names: list[str], dirty: set[str]
) -> list[str]:
    """Carry into `new` what `base` says of the names neither marked nor live; return the
    names to read (every name when `base` is empty: a full pass)."""
    present = set(names)
    lost = not present.issuperset(base.sessions) or not present.issuperset(base.live)
    carried = present.intersection(base.sessions).difference(dirty)  # set operations: the hot path
    if len(carried) == len(base.sessions):
        new.sessions.update(base.sessions)
    else:
        new.sessions.update((name, base.sessions[name]) for name in carried)
    fresh: list[str] = []
    for name in present.difference(carried):
        if name not in dirty and name in base.others and _still(fs, root, name, base.others[name], lost):
            new.others[name] = base.others[name]
        else:
            fresh.append(name)
    return fresh


def _still(fs: FileSystem, root: str, name: str, signature: Any, lost: bool) -> bool:
    """Is the remembered file that is no session unchanged? A PraisonAI file left beside
    a session of its id is looked at again when a session went (it may be adopted now)."""
    if signature is None:
        return True
    return not lost and _signature(fs, os.path.join(root, name), name) == signature


def _signature(fs: FileSystem, path: str, name: str) -> Any:
    if not adopt.is_praisonai_name(name):
        return None
    st = fs.stat(path)
    return None if st is None else [st.mtime, st.size]


def _classify(
    journal: Journal, names: list[str], new: Index, read: dict[str, Entry], adopting: bool
) -> list[str]:
    """Read each name: a session goes to `new` (or `read`, with the live ones), a file that is
    no session to `new.others`; return the names of other stores' sessions (`adopting`)."""
    foreign: list[str] = []
    for name in names:
        try:
            _classify_one(journal, name, new, read, foreign if adopting else None)
        except OSError as exc:  # one session that cannot be read must not hide the others
            message = f"{journal.root}{os.sep}{name}: left out of list_sessions, it cannot be read: {exc}"
            warnings.warn(message, UnreadableSessionWarning, stacklevel=5)
    return foreign


def _classify_one(
    journal: Journal, name: str, new: Index, read: dict[str, Entry], foreign: list[str] | None
) -> None:
    """`_classify` of one name (`foreign` None: another store's sessions are not looked for)."""
    fs, path = journal.fs, journal.root + os.sep + name
    session_id = naming.decode_id(name)
    summary = _summary(journal, session_id, path) if session_id is not None else None
    if summary is not None and session_id is not None:
        listed = {key: summary.metadata[key] for key in _LISTED_KEYS if key in summary.metadata}
        entry = [session_id, summary.created_at, summary.updated_at, summary.message_count, listed]
        if summary.live:
            new.live.add(name)
            read[name] = entry
        else:
            new.sessions[name] = entry
        return
    st = fs.stat(path)
    if st is None or (st.is_dir and session_id is not None and fs.stat(_identity(path)) is not None):
        return  # gone, or a session left out with a warning: read again next time
    if st.is_dir:  # never remembered: a session being created or adopted, another store's
        if foreign is not None and session_id is not None and adopt.docs_files(fs, path):
            foreign.append(name)
    elif foreign is not None and adopt.is_praisonai_name(name):
        foreign.append(name)
    else:
        new.others[name] = _signature(fs, path, name)


def _identity(path: str) -> str:
    return os.path.join(path, naming.IDENTITY_FILE)


def _summary(journal: Journal, session_id: str, path: str) -> Summary | None:
    """The session's summary from its files, else from its folded state; None when it is no
    session, no longer exists, or cannot be read (with a warning)."""
    summary = read_summary(journal.fs, path)
    if summary is not None or journal.fs.stat(_identity(path)) is None:
        return summary
    try:
        state = journal.state(session_id)
    except JournalError as exc:  # one damaged session must not hide all the others
        message = f"session {session_id!r} left out of list_sessions: {exc}"
        warnings.warn(message, UnreadableSessionWarning, stacklevel=5)
        return None
    if state is None:  # deleted since it was listed
        return None
    return Summary(state.created_at, state.updated_at, len(state.messages), state.metadata, state.last_seq)


def _publish(journal: Journal, handle: index.IndexFile, new: Index, boot: str) -> None:
    """Write the index back; it is advisory, so a failure only makes the next listing slower."""
    try:
        handle.replace(new, boot, journal.options.file_mode)
    except OSError as exc:
        warnings.warn(f"listing index of {journal.root} not written: {exc}", stacklevel=4)


def _row(journal: Journal, name: str, entry: Entry) -> dict[str, Any]:
    """One `list_sessions` entry: journal's keys and PraisonAI's."""
    session_id, created, updated, count, metadata = entry
    updated = updated or 0.0
    row: dict[str, Any] = {
        "session_id": session_id,
        "id": session_id,
        "path": os.path.join(journal.root, name),
        "created_at": iso_time(created),
        "updated_at": iso_time(updated),
        "modified": datetime.fromtimestamp(updated),
        "message_count": count,
    }
    for key in _LISTED_KEYS:
        row[key] = metadata.get(key)
    return row
