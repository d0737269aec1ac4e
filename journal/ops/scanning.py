"""A fast pass over the records a session has on disk, for search and stats: its files.

Strategy: the log is read as the files hold it, without opening the session (no session
lock, no fold of the whole history, nothing cached, nothing written), in seq order:

- *history* (search): every message record still on disk, that is the archives (records
  after `pruned_through`), then the live segments, with, in front, the snapshot's messages
  numbered up to `pruned_through` (retention removed their archives; messages.json still has
  those in the current history);
- *current* (stats): the snapshot's messages (messages.json, the history at `snapshot_seq`),
  then the live segments, with a `CLEARED` marker where a "clear" empties the history.

Files are read in blocks of whole lines. With a `Prefilter` (a literal query) a block is
searched for the query's bytes, lower-cased, and only the lines holding them are decoded
(their checksum checked): the rest is never parsed. A line of a streamed answer (a partial
message, FORMAT.md "Edit records") is always decoded: `Fold` holds it back until no edit can
change it, and decodes every line while it holds one. The active segment is read up to its
last complete batch (a batch being written, or a torn tail, is left out). `history` folds
the records and guards the pass against compactions publishing meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ..errors import CorruptionError, UnsafePathError, UnsupportedFormatError
from ..log import archive, naming
from ..log import manifest as mf
from ..log.archive_file import decompressed_chunks, fd_chunks
from ..log.fs import FileSystem, read_file
from ..log.manifest import Manifest
from ..log.prealloc import scan_settled
from ..log.record import CLEAR, SEAL, BadLine, Record, decode_header
from ..log.session import marked_deleted
from .protocol import Store

CHUNK_BYTES = 4 * 1024 * 1024  # a block: large enough that per-block costs vanish
_TAIL_WINDOW = 1024 * 1024  # bytes read from a segment's end to find its last record
ATTEMPTS = 8  # passes over a session that a compaction publishing meanwhile may restart
VIEW_LINE = b"    {"  # a message line of messages.json (FORMAT.md, "messages.json")
_PARTIAL = b'"partial"'  # in every line of a partial message (its metadata key)
CLEARED = Record(0, 0.0, CLEAR, {})  # current mode: the history before this is gone

# The characters other than themselves that Python's re.IGNORECASE matches to an ASCII
# letter (checked against `re` over every code point by tests/ops/test_search.py).
_NON_ASCII_TWINS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


@dataclass(frozen=True)
class Prefilter:
    """Bytes every stored line holding a case-insensitive match of a literal query holds,
    once lower-cased: the longest run of the query's characters that JSON (as orjson writes
    it) keeps verbatim and whose case-insensitive matches are all found by `bytes.lower`."""

    token: bytes
    cased: bool  # the token holds ASCII letters: blocks must be lower-cased
    twins: tuple[bytes, ...]  # non-ASCII characters that also match one of its letters

    @classmethod
    def for_literal(cls, query: str) -> Prefilter | None:
        """The prefilter of a literal query, or None when no character of it is safe."""
        runs, run = [], ""
        for char in query:
            if _verbatim(char):
                run += char.lower()
            else:
                runs.append(run)
                run = ""
        token = max([*runs, run], key=len)
        if not token:
            return None
        twins = tuple(t.encode() for c, found in _NON_ASCII_TWINS.items() if c in token for t in found)
        return cls(token.encode(), any("a" <= c <= "z" for c in token), twins)

    def lowered(self, block: bytes) -> bytes | None:
        """`block` lower-cased for the search, or None when it holds a character the
        lower-casing cannot see (decode all of its lines then)."""
        if self.twins and not block.isascii() and any(twin in block for twin in self.twins):
            return None
        return block.lower() if self.cased else block


def _verbatim(char: str) -> bool:
    """Printable ASCII but the two characters JSON escapes, or a character without case
    (which IGNORECASE matches only to itself) that JSON writes as its UTF-8 bytes."""
    code = ord(char)
    if code < 0x80:
        return 0x20 <= code < 0x7F and char not in '"\\'
    return not 0xD800 <= code < 0xE000 and char.lower() == char == char.upper()


def texts(data: Any) -> list[str]:
    """The text of a message: its content if a string, the text parts of a list content
    (``{"type": "text", "text": ...}``, or plain strings); nothing for anything else."""
    content = data.get("content") if isinstance(data, dict) else None
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    found = []
    for part in content:
        if isinstance(part, str):
            found.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            found.append(part["text"])
    return found


# -- which files hold a session's records -------------------------------------------------------


def listed_sessions(store: Store) -> tuple[list[str], list[tuple[str, str]]]:
    """The store's session ids, sorted, and (session id, reason) of each directory the
    listing left out because it cannot be read (`Store.sessions` warns of them; a pass
    that reports problems lists them too)."""
    ids = sorted(store.sessions())
    known = {naming.encode_id(session_id) for session_id in ids}
    unreadable = []
    for name in store.fs.listdir(store.root):
        session_id = naming.decode_id(name)
        if name in known or session_id is None:
            continue
        path = os.path.join(store.root, name)
        try:
            store.fs.stat(os.path.join(path, naming.IDENTITY_FILE))
        except OSError as exc:
            unreadable.append((session_id, f"{path}: the session cannot be read: {exc}"))
    return ids, unreadable


class Republished(Exception):
    """Internal: a compaction or a retention changed the session's files while they were
    being listed: list them again."""


@dataclass(frozen=True)
class Source:
    """One file of records: an archive or a segment holds seqs `first`..`end - 1` (`end`
    None: the active segment); the view is messages.json."""

    path: str
    first: int = 0
    end: int | None = None


@dataclass(frozen=True)
class SessionFiles:
    """The files making up a session now, as its `compaction.json` names them."""

    path: str
    raw_manifest: bytes | None
    manifest: Manifest
    archives: list[Source] = field(default_factory=list)
    segments: list[Source] = field(default_factory=list)  # live, in order; the last is active
    view: Source = Source("")


def session_files(fs: FileSystem, path: str) -> SessionFiles | None:
    """The files of the session at `path`, or None if it is gone (or deleted).

    Raises:
        UnsafePathError: a link where the session's directory or a directory in it belongs.
        CorruptionError, UnsupportedFormatError: a damaged or unknown `compaction.json`; live
            segments that do not start just after the snapshot.
        Republished: the files changed while they were listed.
    """
    st = fs.stat(path)
    if st is None:
        return None
    for directory in (path, os.path.join(path, naming.LOG_DIR), os.path.join(path, mf.ARCHIVE_DIR)):
        st = fs.stat(directory)
        if st is not None and (st.is_link or not st.is_dir):
            raise UnsafePathError(directory, "a link or a file where a journal directory belongs")
    if _deleted(fs, path):
        return None
    manifest_path = os.path.join(path, mf.MANIFEST_FILE)
    raw = read_file(fs, manifest_path)
    manifest = Manifest() if raw is None else mf.decode(raw, manifest_path)
    located = {final: temp for temp, final in manifest.pending if fs.stat(os.path.join(path, temp))}

    def where(final: str) -> str:  # a committed compaction not finished yet: its temp
        return os.path.join(path, located.get(final, final))

    archives = [Source(where(mf.archive_name(n)), a, b) for n, a, b in archive.extents(manifest)]
    log_dir = os.path.join(path, naming.LOG_DIR)
    firsts = sorted(s for s in map(naming.segment_first_seq, fs.listdir(log_dir)) if s is not None)
    live = [s for s in firsts if s > manifest.snapshot_seq]  # the rest are folded, not unlinked yet
    if live and live[0] != manifest.snapshot_seq + 1:
        if read_file(fs, manifest_path) != raw:
            raise Republished()  # a compaction finished between the two reads
        reason = f"first live segment starts at {live[0]}, the snapshot ends at {manifest.snapshot_seq}"
        raise CorruptionError(os.path.join(log_dir, naming.segment_name(live[0])), 0, reason)
    ends: list[int | None] = [*live[1:], None]
    segments = [
        Source(os.path.join(log_dir, naming.segment_name(s)), s, e) for s, e in zip(live, ends, strict=True)
    ]
    view = Source(where(mf.MESSAGES_FILE))
    return SessionFiles(path, raw, manifest, archives, segments, view)


def _deleted(fs: FileSystem, path: str) -> bool:
    """A delete cut short before its rename: the lock file ends in the deleted mark."""
    try:
        fd = fs.open(os.path.join(path, naming.LOCK_FILE), create=False, mode=0)
    except (FileNotFoundError, PermissionError):
        return False
    try:
        return marked_deleted(fs, fd)
    finally:
        fs.close(fd)


# -- reading blocks of whole lines --------------------------------------------------------------


def segment_chunks(fs: FileSystem, source: Source) -> Iterator[bytes]:
    """The bytes of a segment: a closed one whole (it must end in its seal), the active one
    up to its last complete batch."""
    fd = fs.open(source.path, create=False, mode=0)
    try:
        size = fs.size(fd)
        if source.end is None:
            size = _committed_end(fs, fd, size, source)
        else:
            _check_sealed(fs, fd, size, source)
        yield from fd_chunks(fs, fd, size, CHUNK_BYTES)
    finally:
        fs.close(fd)


def _last_header(fs: FileSystem, fd: int, size: int) -> tuple[Any, int]:
    """The header of the last newline-ended line (None if it does not check out or does not
    fit the window) and the offset just past it (-1 if there is no such line)."""
    window = min(size, _TAIL_WINDOW)
    tail = fs.pread(fd, window, size - window)
    last = tail.rfind(b"\n")
    if last < 0 or tail.find(0, 0, last) >= 0:  # zeros before it: a preallocated segment's
        return None, -1  # writer is half way through; the full scan reads it settled
    start = tail.rfind(b"\n", 0, last) + 1
    if start == 0 and window < size:
        return None, size - window + last + 1
    try:
        return decode_header(tail[start:last]), size - window + last + 1
    except BadLine:
        return None, size - window + last + 1


def _check_sealed(fs: FileSystem, fd: int, size: int, source: Source) -> None:
    header, _ = _last_header(fs, fd, size)
    if header is None or header.kind != SEAL or header.seq != (source.end or 0) - 1:
        raise CorruptionError(source.path, size, "a closed segment does not end in its seal record")


def _committed_end(fs: FileSystem, fd: int, size: int, source: Source) -> int:
    """Where the active segment's committed records end: after its last line when that is
    a valid record ending a batch (the usual case, one header read); else as the recovery
    rules say. What follows is left out without a word, as `log.summary` does: without the
    session lock a batch still being written looks like a torn tail, and a real one is the
    next writer's to cut and report. Damage followed by valid records raises."""
    if size == 0:
        return 0
    header, end = _last_header(fs, fd, size)
    if header is not None and header.more == 0:
        return end
    # Read again while a writer is seen half way through preallocated zeros (log/prealloc.py).
    found = scan_settled(lambda: fs.pread(fd, size, 0), 0, source.first, source.path)[1]
    problem = found.problem
    if problem is not None and problem.kind == "unsupported-format":
        raise UnsupportedFormatError(problem.path, problem.reason)
    if problem is not None and problem.kind != "torn-tail":
        raise CorruptionError(problem.path, problem.offset, problem.reason)
    return found.end


def view_chunks(fs: FileSystem, source: Source, expected: str) -> Generator[bytes] | None:
    """messages.json in chunks if its bytes hash to `expected` (it is exactly as the
    compactor wrote it), else None. One descriptor serves both passes, so a view replaced
    meanwhile is never half checked."""
    fd = fs.open(source.path, create=False, mode=0)
    try:
        size = fs.size(fd)
        hasher = xxhash.xxh3_64()
        for offset in range(0, size, CHUNK_BYTES):
            hasher.update(fs.pread(fd, min(CHUNK_BYTES, size - offset), offset))
    except BaseException:
        fs.close(fd)
        raise
    if hasher.hexdigest() != expected:
        fs.close(fd)
        return None
    return _chunks_then_close(fs, fd, size)


def _chunks_then_close(fs: FileSystem, fd: int, size: int) -> Generator[bytes]:
    try:
        for offset in range(0, size, CHUNK_BYTES):
            yield fs.pread(fd, min(CHUNK_BYTES, size - offset), offset)
    finally:
        fs.close(fd)


def archive_chunks(fs: FileSystem, source: Source, max_record_bytes: int) -> Iterator[bytes]:
    limit = archive.size_limit(source.first, source.end or source.first, max_record_bytes)
    return decompressed_chunks(fs, source.path, limit)


def line_blocks(chunks: Iterable[bytes], path: str) -> Iterator[tuple[int, bytes]]:
    """(offset, block) of runs of whole lines, each block ending in a newline.

    Raises:
        CorruptionError: the bytes do not end in a newline.
    """
    carry: list[bytes] = []
    offset = 0
    for chunk in chunks:
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            carry.append(chunk)
            continue
        block = b"".join([*carry, chunk[:cut]]) if carry else chunk[:cut]
        carry = [chunk[cut:]] if cut < len(chunk) else []
        yield offset, block
        offset += len(block)
    if any(carry):
        raise CorruptionError(path, offset, "the records do not end in a newline")


def chosen_lines(
    block: bytes, prefilter: Prefilter | None, busy: Callable[[], bool]
) -> Iterator[tuple[int, int]]:
    """(start, end) of the lines of `block` to decode: every line while `busy()` (a partial
    message is held) or without a prefilter, else only lines holding the prefilter's token
    or a partial message's mark."""
    size, pos = len(block), 0
    low: bytes | None = None
    needles: tuple[bytes, ...] = ()
    found = [-1, -1]
    while pos < size:
        if prefilter is not None and low is None and not busy():
            low = prefilter.lowered(block)
            if low is None:
                prefilter = None  # this block is decoded line by line
            needles = (prefilter.token, _PARTIAL) if prefilter is not None else ()
        if low is None or busy():
            end = block.index(b"\n", pos) + 1
            yield pos, end
            pos = end
            continue
        for i, needle in enumerate(needles):
            if found[i] < pos:  # not searched yet, or found before where we are now
                at = low.find(needle, pos)
                found[i] = size if at < 0 else at
        hit = min(found)
        if hit >= size:
            return
        start = low.rfind(b"\n", pos, hit) + 1 or pos
        end = low.index(b"\n", hit) + 1
        yield start, end
        pos = end
