"""The listing index: every session's summary in one file, and marks of what changed since.

Strategy (FORMAT.md, "Listing index"): listing 10,000 sessions by reading each one's files
costs a read and a stat per session; the index `<root>/.journal-index` lets a listing read one
file instead and re-read only the sessions marked as changed. It is advisory: never the truth,
only a cache of what the sessions' files said, rebuilt from them when missing, damaged (a
checksum covers it), of another format, written before the machine last booted (marks are
never fsynced, so only a power loss can drop them, and it always comes with a reboot), or
older than `FULL_PASS_SECONDS`.

Writers append a *mark*, the session's directory name and a newline, to the file after the
first append through each open handle of a session (`Journal._append`), then check that the
name still names the file they wrote to (a listing may have replaced it: then mark again). A
compaction makes every other handle reopen, so after a listing saw a session's live log empty,
the next record is always the first append of some handle, and marked. A listing holds the
file's lock from reading it to replacing it (temp + rename), reads the sessions marked after
it read the file, and after the rename copies the marks appended to the old file meanwhile
into the new one. Sessions whose live log held records stay "live" in the index (re-read by
every listing) until one sees their views current. With no index file, writers mark nothing:
the next listing reads every session after creating the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from ..errors import LockTimeout
from .fs import FileSystem, temp_name, unlink_quietly

INDEX_FILE = ".journal-index"  # a leading dot: never a session directory name
FORMAT = 1
# A full pass re-reads every session: the bound on how late a change by a writer that leaves
# no marks (a journal version before the index, a tool editing files) shows in a listing.
FULL_PASS_SECONDS = 300.0
# A store with fewer sessions has no index (its listing reads them all: a few ms), so a small
# store holds only session directories, and a listing of it writes nothing.
MIN_SESSIONS = 1000
LOCK_WAIT = 1.0  # past this, a listing reads without updating the index
_BOOT_ID = "/proc/sys/kernel/random/boot_id"

# A session's indexed summary: id, created, updated, message count, the listed metadata keys.
Entry = list[Any]  # [id, created, updated, message count, {listed metadata}]


@dataclass
class Index:
    """What the index file says."""

    checked: float = 0.0  # when a listing last re-read every session
    sessions: dict[str, Entry] = field(default_factory=dict)  # session dir -> summary, no live records
    live: set[str] = field(default_factory=set)  # sessions re-read by every listing
    others: dict[str, Any] = field(default_factory=dict)  # files that are no session -> signature


def boot_id() -> str:
    """An id of the current boot of this machine (the kernel's, else the boot time)."""
    try:
        with open(_BOOT_ID, "rb") as f:
            return f.read().strip().decode("ascii", "replace")
    except OSError:
        return str(int(time.time() - time.monotonic()))


def encode(index: Index, boot: str) -> bytes:
    """The file's bytes: a header line (format, boot, body length and checksum), the body."""
    body = orjson.dumps(
        {
            "checked": index.checked,
            "sessions": index.sessions,
            "live": sorted(index.live),
            "others": [[name, sig] for name, sig in index.others.items()],
        }
    )
    head = {"format": FORMAT, "boot": boot, "bytes": len(body), "xxh3": xxhash.xxh3_64_hexdigest(body)}
    return orjson.dumps(head) + b"\n" + body + b"\n"


def decode(data: bytes, boot: str) -> tuple[Index | None, set[str]]:
    """The index in `data` (None when damaged, of another format or another boot) and the
    session directories marked after it."""
    header, _, rest = data.partition(b"\n")
    try:
        head = orjson.loads(header)
        size = head["bytes"]
        body, marks = rest[:size], rest[size:]
        if head["format"] != FORMAT or head["boot"] != boot or head["xxh3"] != xxhash.xxh3_64_hexdigest(body):
            return None, set()
        doc = orjson.loads(body)
        sessions = doc["sessions"]
        others = {row[0]: row[1] for row in doc["others"]}
        if not isinstance(sessions, dict):
            return None, set()
        index = Index(float(doc["checked"]), sessions, set(doc["live"]), others)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return None, set()
    # A mark is only a hint to read a session again: a torn or foreign line costs a read.
    return index, {name for name in marks.decode("utf-8", "replace").split("\n") if name}


class IndexFile:
    """The index file of a store, opened by a listing: `read` it, then `replace` it."""

    def __init__(self, fs: FileSystem, root: str, writable: bool) -> None:
        self.fs, self.path, self.writable = fs, os.path.join(root, INDEX_FILE), writable
        self.fd = -1
        self.read_bytes = 0
        self.locked = False

    def read(self, create: bool) -> bytes:
        """The file's bytes (empty if missing), locked when writable; with `create`, made if
        missing, so writers mark from now on. Raises OSError."""
        for _ in range(8):  # each retry means another listing replaced the file meanwhile
            try:
                self.fd = self.fs.open(self.path, create=create and self.writable, mode=0o600)
            except FileNotFoundError:
                self.writable = False
                return b""
            if self.writable:
                try:
                    self.fs.lock(self.fd, LOCK_WAIT)
                    self.locked = True
                except LockTimeout:
                    self.writable = False  # another listing updates it: read what is there
            if not self.locked or self.fs.same_file(self.fd, self.path):
                data = self.fs.pread(self.fd, self.fs.size(self.fd), 0)
                self.read_bytes = len(data)
                return data
            self.close()
        self.writable = False
        return b""

    def replace(self, index: Index, boot: str, mode: int) -> None:
        """Publish `index` in place of the file read, then carry over the marks appended to
        the old file since it was read. Raises OSError."""
        tmp = temp_name(self.path)
        fd = self.fs.open(tmp, create=True, mode=mode)
        try:
            self.fs.append(fd, encode(index, boot))
        finally:
            self.fs.close(fd)
        try:
            self.fs.rename(tmp, self.path)
        except BaseException:
            unlink_quietly(self.fs, tmp)
            raise
        late = self.fs.pread(self.fd, self.fs.size(self.fd) - self.read_bytes, self.read_bytes)
        if late:
            append_marks(self.fs, self.path, late)

    def close(self) -> None:
        if self.fd >= 0:
            if self.locked:
                self.fs.unlock(self.fd)
            self.fs.close(self.fd)
        self.fd, self.locked = -1, False


def append_marks(fs: FileSystem, path: str, lines: bytes) -> None:
    """Append mark lines to the index file at `path`, if there is one; again if a listing
    replaced the file meanwhile. Raises OSError."""
    while True:
        try:
            fd = fs.open(path, create=False, mode=0)
        except FileNotFoundError:
            return  # no index: the next listing reads every session
        try:
            fs.append(fd, lines)
            if fs.same_file(fd, path):
                return
        finally:
            fs.close(fd)


def mark(fs: FileSystem, root: str, name: str) -> bool:
    """Mark the session directory `name` as changed; False if that failed (a full disk):
    try again on the next append."""
    try:
        append_marks(fs, os.path.join(root, INDEX_FILE), name.encode("utf-8") + b"\n")
    except OSError:
        return False
    return True
