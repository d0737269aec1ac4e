"""Reading a session's committed record lines from its directory, byte for byte, to ship them.

Strategy: the lines are read raw from the live segments (`log/<first>.jsonl`) and, for
records a compaction folded away before they were shipped, from the archives (which hold the
closed segments verbatim); each line already carries its checksum, so nothing is decoded or
re-encoded. No lock is taken: a segment is only ever appended to, and what is read is cut by
the log's own recovery rules (`scan`): the end of the last whole batch, never a torn tail.
Before lines of a live segment are handed out they are fsynced (whatever the writer's
durability mode), so a replica never holds a record a power loss could take from this disk.
A cursor remembers where the next record starts; a segment that vanished meanwhile (folded by
a compaction) sends the reader back to locate the record again.
"""

from __future__ import annotations

import os

from ..errors import CorruptionError, JournalError, UnsupportedFormatError
from ..log import manifest as manifest_mod
from ..log import naming
from ..log.archive import archive_path, extents, size_limit
from ..log.archive_file import RunChecker, archive_lines
from ..log.fs import FileSystem
from ..log.prealloc import scan_settled
from .objects import ReplicaConflictError

_ATTEMPTS = 5  # each failed attempt means a compaction moved the records meanwhile
_CHECKSUM = slice(9, 25)  # the 16 hex digits of a record line's "xxh3" field


class HistoryPrunedError(JournalError):
    """Records the replica lacks are gone from this store (archive retention removed them
    before they were shipped): the replica cannot be completed from here."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LocalLog:
    """One session's lines on local disk, read forward from any sequence number."""

    def __init__(self, fs: FileSystem, path: str, max_record_bytes: int) -> None:
        self.fs, self.path, self.max_record_bytes = fs, path, max_record_bytes
        self.cursor: tuple[int, int, int] | None = None  # (segment, offset, seq found there)

    def read_from(self, seq: int, max_bytes: int, sync: bool = True, prev: str | None = None) -> bytes:
        """Whole batches of lines from record `seq` on, about `max_bytes` of them (at least
        one batch, if there is one); b"" when the log holds nothing from `seq` yet. With
        `sync`, lines of live segments are made durable first. With `prev`, the record before
        `seq` must carry that checksum (where a live segment holds it).

        Raises:
            CorruptionError, UnsupportedFormatError: the log is damaged there.
            HistoryPrunedError: record `seq` was pruned by archive retention.
            ReplicaConflictError: record `seq - 1` is not `prev`: the session was deleted and
                created again, or repaired, since it was replicated.
        """
        parts: list[bytes] = []
        total = 0
        while total < max_bytes:
            chunk, seq = self._chunk(seq, max_bytes - total, sync, prev)
            prev = None
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)

    def line_at(self, seq: int) -> bytes | None:
        """Record `seq`'s line, if the log holds it whole (its batch complete)."""
        chunk = self._chunk(seq, 1, sync=False)[0]
        return chunk[: chunk.index(b"\n") + 1] if chunk else None

    def last_seq(self, after: int) -> int:
        """The last committed seq on disk (at least `after`, the last one already known)."""
        seq = after + 1
        while True:
            chunk, nxt = self._chunk(seq, 1 << 26, sync=False)
            if not chunk:
                return seq - 1
            seq = nxt

    # -- locating a record ---------------------------------------------------------------------

    def _chunk(self, seq: int, budget: int, sync: bool, prev: str | None = None) -> tuple[bytes, int]:
        for _ in range(_ATTEMPTS):
            try:
                segments = self._segments()
                if segments and segments[0] <= seq:
                    segment = max(s for s in segments if s <= seq)
                    before = max((s for s in segments if s < segment), default=None)
                    return self._read_live(segment, seq, budget, sync, (prev, before))
                return self._read_archived(seq, budget, bool(segments))
            except FileNotFoundError:
                self.cursor = None  # a compaction folded the segment away: look again
        raise JournalError(f"{self.path}: the log kept changing while it was being read")

    def _segments(self) -> list[int]:
        try:
            names = self.fs.listdir(os.path.join(self.path, naming.LOG_DIR))
        except FileNotFoundError:
            return []
        return sorted(s for s in map(naming.segment_first_seq, names) if s is not None)

    def _segment_path(self, first: int) -> str:
        return os.path.join(self.path, naming.LOG_DIR, naming.segment_name(first))

    # -- live segments -------------------------------------------------------------------------

    def _read_live(
        self, segment: int, seq: int, budget: int, sync: bool, check: tuple[str | None, int | None]
    ) -> tuple[bytes, int]:
        path = self._segment_path(segment)
        fd = self.fs.open(path, create=False, mode=0)
        try:
            size = self.fs.size(fd)
            offset = self._offset_of(fd, segment, seq, size)
            want = size - offset
            # Read again while a writer is seen half way through preallocated zeros.
            read = min(want, budget)
            data, result = scan_settled(lambda: self.fs.pread(fd, read, offset), offset, seq, path)
            if result.end == offset and want > len(data):  # one batch larger than the budget
                data, result = scan_settled(lambda: self.fs.pread(fd, want, offset), offset, seq, path)
            if check[0] is not None and result.end > offset:
                self._check_prev(fd, offset, check[1], seq, check[0])
            if sync and result.end > offset:
                self.fs.sync(fd)
        finally:
            self.fs.close(fd)
        problem = result.problem
        if problem is not None and problem.kind == "corruption":
            raise CorruptionError(problem.path, problem.offset, problem.reason)
        if problem is not None and problem.kind == "unsupported-format":
            raise UnsupportedFormatError(problem.path, problem.reason)
        # A torn tail is a write in progress (or a dead writer's, which the log's next open
        # cuts): only whole batches before it are handed out.
        if result.sealed:
            self.cursor = (result.next_seq, 0, result.next_seq)
        elif result.end > offset:  # found nothing: `offset` may be a file end past zeros
            self.cursor = (segment, result.end, result.next_seq)
        return data[: result.end - offset], result.next_seq

    def _check_prev(self, fd: int, offset: int, before: int | None, seq: int, prev: str) -> None:
        """Record `seq - 1` (ending at `offset`, or the last of segment `before` when `seq`
        starts its segment) must carry checksum `prev`: else this is another history."""
        if offset > 0:
            line = _last_line(self.fs, fd, offset)
        elif before is not None:
            other = self.fs.open(self._segment_path(before), create=False, mode=0)
            try:
                line = _last_line(self.fs, other, self.fs.size(other))
            finally:
                self.fs.close(other)
        else:  # the record before lies in an archive: it was checked when it was shipped
            return
        if line[_CHECKSUM] != prev.encode():
            reason = (
                f"record {seq - 1} is not the one the replica holds: the session was deleted and"
                " created again (or repaired) since it was replicated"
            )
            raise ReplicaConflictError(self.path, reason)

    def _offset_of(self, fd: int, segment: int, seq: int, size: int) -> int:
        """The offset where record `seq` starts in the segment (its end if not there yet)."""
        cursor = self.cursor
        if cursor is not None and cursor[0] == segment and cursor[2] <= seq and cursor[1] <= size:
            offset, at = cursor[1], cursor[2]
        else:
            offset, at = 0, segment
        step = 1 << 22
        while at < seq and offset < size:
            data = self.fs.pread(fd, min(size - offset, step), offset)
            pos = 0
            while at < seq:
                newline = data.find(b"\n", pos)
                if newline == -1:
                    break
                pos, at = newline + 1, at + 1
            if pos == 0 and len(data) == size - offset:  # no newline left: not there yet
                return size
            step = step * 2 if pos == 0 else step  # a line longer than what was read
            offset += pos
        return offset

    # -- archives ------------------------------------------------------------------------------

    def _read_archived(self, seq: int, budget: int, has_live: bool) -> tuple[bytes, int]:
        manifest = manifest_mod.load(self.fs, self.path)
        if seq <= manifest.pruned_through:
            reason = f"record {seq} was pruned by archive retention before it was replicated"
            raise HistoryPrunedError(self.path, reason)
        for name, first, end in extents(manifest):
            if first <= seq < end:
                return self._archive_lines(name, first, end, seq, budget)
        if has_live:  # folded meanwhile: the next attempt reads the new manifest
            raise FileNotFoundError(self.path)
        return b"", seq

    def _archive_lines(self, name: str, first: int, end: int, seq: int, budget: int) -> tuple[bytes, int]:
        path = archive_path(self.path, name)
        checker = RunChecker(path, first, payloads=False)
        parts: list[bytes] = []
        total = 0
        for line in archive_lines(self.fs, path, size_limit(first, end, self.max_record_bytes)):
            header = checker.check(line)[0]
            if header.seq < seq:
                continue
            parts.append(line)
            total += len(line)
            if total >= budget and header.more == 0:
                break
        if checker.next_seq <= seq:
            raise CorruptionError(path, checker.offset, f"archive ends before record {seq}")
        return b"".join(parts), checker.next_seq


def _last_line(fs: FileSystem, fd: int, end: int) -> bytes:
    """The line that ends (with its newline) at offset `end` of the file."""
    window = 4096
    while True:
        start = max(0, end - window)
        data = fs.pread(fd, end - start, start)
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut != -1 or start == 0:
            return data[cut + 1 :]
        window *= 4
