"""Which archive files a compaction writes: a small newest archive grows instead of the
archive count (FORMAT.md, "Archives").

Strategy: a compaction folds the segments sealed since the last one. Archived one file per
segment, a session compacted every few seconds (the view keeper) would gain ~17,000 archive
files a day. Instead the folded segments go, in order, into the newest archive while it holds
less than `merge_bytes` of log: that archive is written anew under a temp name (its previous
content, checked record by record, then the new segments) and replaces the old file when the
compaction is finished, after its commit, like every other file a compaction writes. So there
are about (history / merge_bytes) + 1 archives whatever the number of compactions, and since an
archive that has reached `merge_bytes` is never rewritten, a record is recompressed at most
merge_bytes / (log bytes per compaction) times, and each compaction rewrites less than
`merge_bytes` of old log (the snapshot it rewrites is usually bigger). A newest archive whose
header does not read is left as it is for `verify` to report; the segments start a new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import CorruptionError
from ..log import manifest as mf
from ..log import naming
from ..log.archive_file import ArchiveWriter, RunChecker, content_size, decompressed_chunks
from ..log.fs import FileSystem
from ..log.manifest import Manifest
from ..log.snapshot import iter_lines

log = logging.getLogger("journal.compaction")


@dataclass
class ArchivePlan:
    """One archive file a compaction writes."""

    first: int  # its first seq: the file is archive/<segment_name(first)>.zst
    carried: int = 0  # bytes of the previous newest archive it starts with (0: a new file)
    segments: list[tuple[int, int]] = field(default_factory=list)  # (first seq, bytes) of each

    @property
    def name(self) -> str:
        return naming.segment_name(self.first)

    @property
    def size(self) -> int:
        """Bytes of log it holds: its frame's content size."""
        return self.carried + sum(size for _, size in self.segments)


def plan(
    fs: FileSystem, path: str, base: Manifest, segments: list[tuple[int, int]], merge_bytes: int
) -> list[ArchivePlan]:
    """The archives that take `segments` ((first seq, bytes) of each, in order): the newest
    archive first while it holds less than `merge_bytes`, then new ones, each filled up to
    `merge_bytes` (a segment is never split)."""
    plans: list[ArchivePlan] = []
    current = _growable(fs, path, base, merge_bytes)
    for first, size in segments:
        if current is None or (current.size >= merge_bytes and current.segments):
            current = ArchivePlan(first)
        if not plans or plans[-1] is not current:
            plans.append(current)
        current.segments.append((first, size))
    return plans


def _growable(fs: FileSystem, path: str, base: Manifest, merge_bytes: int) -> ArchivePlan | None:
    """The newest archive, if it may take more segments."""
    if merge_bytes <= 0 or not base.archived:
        return None
    name = base.archived[-1]
    first = naming.segment_first_seq(name)
    assert first is not None  # manifest.decode checked every name
    try:
        size = content_size(fs, os.path.join(path, mf.archive_name(name)))
    except (CorruptionError, OSError) as exc:
        log.warning("%s: newest archive %s not extended (%s); starting a new one", path, name, exc)
        return None
    return ArchivePlan(first, carried=size) if size < merge_bytes else None


def carry(fs: FileSystem, path: str, archive: ArchivePlan, writer: ArchiveWriter) -> None:
    """Copy the content of the archive `archive` extends into `writer`, checking every
    record (numbering, checksums, seals) so damage is never carried forward; it must end
    just before the first new segment. Raise `CorruptionError`, `FileNotFoundError`."""
    source = os.path.join(path, mf.archive_name(archive.name))
    checker = RunChecker(source, archive.first, payloads=False)
    for line in iter_lines(teed(decompressed_chunks(fs, source, archive.carried), writer)):
        checker.check(line)
    checker.end()
    if archive.segments and checker.next_seq != archive.segments[0][0]:
        reason = f"archive ends at seq {checker.next_seq - 1}, expected {archive.segments[0][0] - 1}"
        raise CorruptionError(source, checker.offset, reason)


def teed(chunks: Iterator[bytes], writer: ArchiveWriter) -> Iterator[bytes]:
    """`chunks`, each also written to `writer` (compressed as it is folded)."""
    for chunk in chunks:
        writer.write(chunk)
        yield chunk
