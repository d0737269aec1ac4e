"""One archive file (`archive/<first-segment>.zst`): writing it, reading it back safely,
and checking its content as a run of closed segments (FORMAT.md, "Archives").

Strategy: an archive is one zstd frame whose header declares the content size and whose
trailer holds a checksum; the content is one or more closed segments, verbatim. Reading never
trusts the frame: the declared size must be there and within what the caller allows (the
records the manifest says the archive holds, each at most a record's size limit), the input is
fed to the decompressor in slices small enough that one call cannot expand past ~32 MiB (a
zstd block is at most 128 KiB and costs at least 3 bytes), output is handed on in bounded
chunks, and the frame must end exactly at the file's end with the declared size. So a
decompression bomb is a `CorruptionError`, never a `MemoryError`. `RunChecker` checks lines
as the log rules check a closed segment, except that a seal may be followed by the next
segment's records; verify hands it whole runs of lines (`check_chunks`), checked at once
when they are the usual kind (`linecheck.check_run`) and a line at a time otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NoReturn

import zstandard

from ..errors import CorruptionError
from .fs import FileSystem
from .linecheck import Run, check_run
from .record import SEAL, BadLine, Header, Record, decode_header, decode_payload
from .snapshot import iter_lines

CHUNK_BYTES = 4 * 1024 * 1024
_SLICE = 1024  # input bytes per decompress call: at most ~32 MiB of output each
_FRAME_HEADER_MAX = 18  # a zstd frame header is at most 18 bytes
MAX_RECORD_BYTES = 16 * 1024 * 1024  # the default record size limit (`Options.max_record_bytes`)
LINE_OVERHEAD = 512  # header bytes of a record line beyond its payload, with room to spare
SEAL_KIND = SEAL.encode()
RUN_LINES = 1024  # lines checked at once: their lists stay in the processor's caches


def file_chunks(fs: FileSystem, path: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of `path` in chunks; the size is taken at open, so later appends are not read."""
    fd = fs.open(path, create=False, mode=0)
    try:
        yield from fd_chunks(fs, fd, fs.size(fd), chunk_bytes)
    finally:
        fs.close(fd)


def fd_chunks(fs: FileSystem, fd: int, size: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The first `size` bytes of the open file `fd`, in chunks (fewer if it is shorter)."""
    offset = 0
    while offset < size:
        chunk = fs.pread(fd, min(chunk_bytes, size - offset), offset)
        if not chunk:
            break
        offset += len(chunk)
        yield chunk


class ArchiveWriter:
    """Compresses a stream of segment bytes into a new file; `finish` makes it durable.
    `size` (the exact content size) is declared in the frame header."""

    def __init__(self, fs: FileSystem, path: str, level: int, mode: int, size: int) -> None:
        self.fs, self.path = fs, path
        # threads=1: zstd compresses on a thread of its own while this one goes on folding
        # (a compaction is otherwise one core: zstd took a quarter of it). The frame is the
        # same kind: one frame, content size and checksum set.
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=1)
        self.compressor = compressor.compressobj(size=size)
        self.fd = fs.open(path, create=True, mode=mode)
        self.written = 0

    def write(self, chunk: bytes) -> None:
        out = self.compressor.compress(chunk)
        if out:
            self.fs.append(self.fd, out)
            self.written += len(out)

    def finish(self) -> int:
        """Flush, fsync and close; return the archive's size in bytes."""
        out = self.compressor.flush()
        self.fs.append(self.fd, out)
        self.written += len(out)
        self.fs.sync(self.fd)
        self.close()
        return self.written

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            self.fs.close(fd)


def content_size(fs: FileSystem, path: str) -> int:
    """The content size an archive's frame header declares; raise `CorruptionError` if the
    header does not read or declares none (journal always writes it), `FileNotFoundError`."""
    fd = fs.open(path, create=False, mode=0)
    try:
        head = fs.pread(fd, _FRAME_HEADER_MAX, 0)
    finally:
        fs.close(fd)
    try:
        size = int(zstandard.get_frame_parameters(head).content_size)
    except zstandard.ZstdError as exc:
        raise CorruptionError(path, 0, f"archive does not start with a zstd frame header: {exc}") from None
    if size == zstandard.CONTENTSIZE_UNKNOWN:
        raise CorruptionError(path, 0, "archive's zstd frame does not declare its content size")
    return size


def decompressed_chunks(fs: FileSystem, path: str, max_bytes: int) -> Iterator[bytes]:
    """The content of an archive in chunks of about `CHUNK_BYTES`. Raise `CorruptionError` if
    the frame declares more than `max_bytes`, does not decompress, expands past what it
    declares, or does not end exactly at the end of the file; `FileNotFoundError`."""
    declared = content_size(fs, path)
    if declared > max_bytes:
        reason = f"archive declares {declared} bytes of content, more than the {max_bytes} its records allow"
        raise CorruptionError(path, 0, reason)
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    parts: list[bytes] = []  # joined once a chunk's worth: one copy of each byte, not two
    total, held, offset = 0, 0, 0
    try:
        for chunk in file_chunks(fs, path, 1024 * 1024):
            view = memoryview(chunk)
            for start in range(0, len(chunk), _SLICE):
                if decompressor.eof:
                    raise CorruptionError(path, offset + start, "bytes after the archive's zstd frame")
                out = decompressor.decompress(view[start : start + _SLICE])
                total += len(out)
                if total > declared:
                    raise CorruptionError(
                        path, offset + start, f"archive expands past the {declared} bytes it declares"
                    )
                if out:
                    parts.append(out)
                    held += len(out)
                if held >= CHUNK_BYTES:
                    yield b"".join(parts)
                    parts.clear()
                    held = 0
            offset += len(chunk)
    except zstandard.ZstdError as exc:
        raise CorruptionError(path, offset, f"archive does not decompress: {exc}") from None
    if not decompressor.eof or decompressor.unused_data:
        reason = (
            "archive ends before its zstd frame does"
            if not decompressor.eof
            else "bytes after the archive's zstd frame"
        )
        raise CorruptionError(path, offset, reason)
    if total != declared:
        raise CorruptionError(path, offset, f"archive holds {total} bytes, its frame declares {declared}")
    if parts:
        yield b"".join(parts)


def archive_lines(fs: FileSystem, path: str, max_bytes: int) -> Iterator[bytes]:
    """The lines (newline included) of an archive's content (`decompressed_chunks`); a last
    piece without a newline is yielded as is. Memory: one chunk plus the longest line."""
    return iter_lines(decompressed_chunks(fs, path, max_bytes))


class RunChecker:
    """Checks lines as a run of closed segments numbered on from `first`: each a valid record
    (its payload parsed too with `payloads`: what a read will parse), batches whole, a seal
    never inside a batch, the run ending in a seal. Raises `CorruptionError`; offsets are into
    the decompressed content."""

    def __init__(self, path: str, first: int, payloads: bool) -> None:
        self.path, self.next_seq, self.payloads = path, first, payloads
        self.offset = 0
        self.batch_left = 0
        self.last_kind = ""
        self.seals = 0

    def check(self, line: bytes) -> tuple[Header, Record | None]:
        """Check one line (newline included); its header, and its record with `payloads`."""
        if not line.endswith(b"\n"):
            self._fail("incomplete record inside an archive")
        try:
            header = decode_header(line[:-1])
            # The header read once: the payload is parsed from it (not by `decode`, which
            # would check the checksum and read the header a second time).
            record = None
            if self.payloads:
                record = Record(
                    header.seq, header.ts, header.kind, decode_payload(line[:-1], header), header.more
                )
        except BadLine as exc:
            self._fail(exc.reason)
        if header.seq != self.next_seq:
            self._fail(f"sequence number {header.seq}, expected {self.next_seq}")
        if self.batch_left and header.more != self.batch_left - 1:
            self._fail("batch cut short by another record")
        if header.kind == SEAL and (header.more or self.batch_left):
            self._fail("a seal record inside a batch")
        self.batch_left, self.last_kind = header.more, header.kind
        self.seals += header.kind == SEAL
        self.next_seq += 1
        self.offset += len(line)
        return header, record

    def check_chunks(self, chunks: Iterable[bytes]) -> None:
        """`check` every line of a byte stream (`archive_lines`' lines), the usual runs of
        them at once; a last piece without a newline is an incomplete record."""
        rest = b""
        for chunk in chunks:
            lines = chunk.split(b"\n")
            lines[0] = rest + lines[0]
            rest = lines.pop()
            for at in range(0, len(lines), RUN_LINES):
                self.check_lines(lines[at : at + RUN_LINES])
        if rest:
            self.check(rest)

    def check_lines(self, lines: list[bytes]) -> None:
        """`check` each of `lines` (without their newlines), the usual run of them at once
        (`linecheck.check_run`), any other a line at a time (which names what is wrong)."""
        run = check_run(lines, self.next_seq, self.batch_left, payloads=self.payloads)
        if run is None or not _seals_outside_batches(run, self.batch_left):
            for line in lines:
                self.check(line + b"\n")
            return
        kinds = run.kinds
        self.batch_left, self.last_kind = run.batch_left, (kinds[-1] or b"message").decode()
        self.seals += kinds.count(SEAL_KIND)
        self.next_seq += len(lines)
        self.offset += sum(map(len, lines)) + len(lines)

    def end(self) -> None:
        """The run is over: it must have ended in a seal."""
        if self.last_kind != SEAL:
            self._fail(f"archived segments do not end in a {SEAL} record")

    def _fail(self, reason: str) -> NoReturn:
        raise CorruptionError(self.path, self.offset, f"{reason} (offset into the decompressed archive)")


def _seals_outside_batches(run: Run, batch_left: int) -> bool:
    """Is no seal of the checked `run` inside a batch (`batch_left` records of one still to
    come before it)? A seal is one only with no "more" of its own, after a record without."""
    kinds, mores = run.kinds, run.mores
    if SEAL_KIND not in kinds:
        return True
    return all(
        mores[i] is None and (mores[i - 1] is None if i else not batch_left)
        for i, kind in enumerate(kinds)
        if kind == SEAL_KIND
    )
