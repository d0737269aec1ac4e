"""The compactor: fold a session's closed log segments into the documented JSON files.

Strategy (FORMAT.md, "Compaction"; the etcd WAL / Redis AOF / Kafka cleaner pattern):

1. *Seal*, under the session lock (short): finish or discard a previous interrupted
   compaction, then seal the active segment so every record up to N lies in closed,
   immutable segments. Appenders go on in the next segment, named N+1.
2. *Build*, without the session lock: stream the previous snapshot and each closed segment,
   folding them into a new `messages.json` (one message per line, restarted at a "clear"),
   `session_id.json` and `metadata.json`, and compress each segment verbatim to an archive,
   all under unique temp names, all fsynced. Nothing of the old state is touched.
3. *Publish*, under the session lock (short): if the session's generation is unchanged, bump
   it (every other handle reopens), write `compaction.json` naming the temps as pending and
   the folded segments (the commit point), then rename the temps into place and unlink the
   folded segments (`manifest.finish`, replayed by the next open after a crash).

A compaction lock file keeps two compactors of one session apart for the whole run, and is
what makes a temp file an orphan: only its holder removes temps. The policy (`is_due`) keeps
messages.json from being rewritten per message: by default a session is compacted once its
live log exceeds max(1 MiB, half the snapshot).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..errors import JournalError
from ..log import manifest as mf
from ..log import naming
from ..log.fs import FileSystem, read_file, unlink_quietly
from ..log.manifest import Manifest
from ..log.session import Options, SessionLog, Stale
from .folding import Built, build, discard

log = logging.getLogger("journal.compaction")
_FLUSH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CompactionPolicy:
    """When to compact, how hard to compress, and how long to keep archives.

    A session is due when it has live records and any of: its live log is at least
    max(`min_live_bytes`, `snapshot_ratio` x messages.json size); it has `min_live_records`
    live records; its last compaction (or creation) is `max_age` seconds old.
    With `max_view_lag` set, a `Journal` keeps the views of the sessions it writes at most
    that many seconds behind (a messages.json of S > `view_bytes` bytes: lag x S / view_bytes).
    Retention keeps every archive unless `keep_archives` (the newest N) or
    `max_archive_age` (seconds) is set; pruned records are gone from `Journal.read`.
    """

    min_live_bytes: int = 1024 * 1024
    snapshot_ratio: float = 0.5
    min_live_records: int | None = None
    max_age: float | None = None
    level: int = 3
    # Folded segments go into the newest archive while it holds less than this many bytes of
    # log (0: one archive per folded segment): see compaction.merging.
    merge_archive_bytes: int = 4 * 1024 * 1024
    keep_archives: int | None = None
    max_archive_age: float | None = None
    interval: float = 30.0  # seconds between passes of the background compactor
    # Views at most this many seconds behind the sessions this process writes (None: off);
    # a messages.json over `view_bytes` waits proportionally longer (compaction.views).
    max_view_lag: float | None = None
    view_bytes: int = 8 * 1024 * 1024


@dataclass
class CompactionResult:
    """What one `Journal.compact` did. `compacted` is False when there was nothing new."""

    session_id: str
    compacted: bool
    snapshot_seq: int
    folded_segments: list[str] = field(default_factory=list)
    folded_bytes: int = 0
    archive_bytes: int = 0
    snapshot_bytes: int = 0
    messages: int = 0
    pruned_archives: list[str] = field(default_factory=list)
    removed_orphans: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class CompactionReport:
    """What `Journal.compact_all` did, session by session; `errors` maps id -> message."""

    results: list[CompactionResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> int:
        return sum(1 for r in self.results if r.compacted)

    @property
    def folded_bytes(self) -> int:
        return sum(r.folded_bytes for r in self.results)


@dataclass
class _Plan:
    manifest: Manifest
    last_seq: int  # N: every record <= N is in `segments`, all closed
    segments: list[int]
    generation: int
    orphans: list[str]


# -- the protocol ----------------------------------------------------------------------------


def compact(
    fs: FileSystem, path: str, session_id: str, options: Options, policy: CompactionPolicy
) -> CompactionResult:
    """Compact one session (see the module docstring); safe against crashes at any point."""
    if fs.stat(os.path.join(path, naming.IDENTITY_FILE)) is None:
        return CompactionResult(session_id, False, 0, reason="no such session")
    # The compaction lock first: then no other compactor can publish between open and seal.
    with _compaction_lock(fs, path, options) as lock_fd:
        handle = SessionLog(fs, path, session_id, options)
        if not handle.open(create=False):
            return CompactionResult(session_id, False, 0, reason="no such session")
        if not fs.same_file(lock_fd, os.path.join(path, mf.COMPACTION_LOCK)):
            # Deleted and created anew since we took the lock: our lock guards the old
            # directory, and a compactor of the new one would remove our files as orphans.
            handle.close()
            raise JournalError(f"{path} was deleted while compacting")
        try:
            plan = _seal(handle)
            if plan.last_seq > plan.manifest.snapshot_seq or views_damaged(handle.fs, path, plan.manifest):
                result = _build_and_publish(handle, plan, policy)
            else:
                result = CompactionResult(session_id, False, plan.last_seq, reason="nothing new")
            result.removed_orphans = plan.orphans
            result.pruned_archives = prune(handle, policy)
            return result
        finally:
            handle.close()


@contextlib.contextmanager
def _locked(handle: SessionLog) -> Iterator[None]:
    """The session lock, with the handle caught up; someone deleting or repairing the
    session meanwhile aborts the compaction."""
    with handle.cond:
        try:
            handle.lock()
        except Stale:
            raise JournalError(f"{handle.path} was deleted or repaired while compacting") from None
        try:
            yield
        finally:
            handle.unlock()


@contextlib.contextmanager
def _compaction_lock(fs: FileSystem, path: str, options: Options) -> Iterator[int]:
    fd = fs.open(os.path.join(path, mf.COMPACTION_LOCK), create=True, mode=options.file_mode)
    try:
        fs.lock(fd, options.lock_timeout)
        try:
            yield fd
        finally:
            fs.unlock(fd)
    finally:
        fs.close(fd)


def _seal(handle: SessionLog) -> _Plan:
    """Step 1, under the session lock: remove orphans, seal, and say what to fold."""
    with _locked(handle):
        current = handle.manifest
        removed = mf.remove_orphans(handle.fs, handle.path, current)
        last = handle.seal()
        segments = [s for s in handle.segments() if current.snapshot_seq < s <= last]
        plan = _Plan(current, last, segments, handle.generation, removed)
    if removed:
        log.info("%s: removed leftovers of an interrupted compaction: %s", handle.path, removed)
    return plan


def _build_and_publish(handle: SessionLog, plan: _Plan, policy: CompactionPolicy) -> CompactionResult:
    built = Built()
    try:
        archiving = (policy.level, policy.merge_archive_bytes)
        build(handle, plan.manifest, plan.segments, plan.last_seq, archiving, built)
        _publish(handle, plan, built)
    finally:
        if not built.committed:
            discard(handle.fs, handle.path, built)
    names = [naming.segment_name(s) for s in plan.segments]
    log.info(
        "%s: compacted %d segments (%d bytes) through seq %d",
        handle.path,
        len(names),
        built.folded_bytes,
        plan.last_seq,
    )
    return CompactionResult(
        handle.session_id,
        True,
        plan.last_seq,
        names,
        built.folded_bytes,
        built.archive_bytes,
        built.snapshot_bytes,
        built.messages,
    )


def _publish(handle: SessionLog, plan: _Plan, built: Built) -> None:
    """Step 3, under the session lock: commit with the manifest, then finish (if finishing
    fails the compaction stays committed and the next open finishes it)."""
    folded = tuple(naming.segment_name(s) for s in plan.segments)
    kept = plan.manifest.archived
    if kept and built.archives and built.archives[0] == kept[-1]:
        kept = kept[:-1]  # the newest archive was extended: its new file replaces it
    new = Manifest(
        snapshot_seq=plan.last_seq,
        created_at=built.created_at,
        updated_at=built.updated_at,
        archived=kept + tuple(built.archives),
        pruned_through=plan.manifest.pruned_through,
        pending=tuple(built.pending),
        folded=folded,
        views=tuple(built.views),
    )
    with _locked(handle):
        if handle.generation != plan.generation:
            raise JournalError(f"{handle.path} changed while compacting; nothing published")
        handle.bump_generation()  # before anything moves: every other handle reopens
        # Set first: a store that fails after its rename has committed all the same.
        built.committed = True
        mf.store(handle.fs, handle.path, new, handle.options.file_mode)
        try:
            handle.manifest = mf.finish(handle.fs, handle.path, new, handle.options.file_mode)
        except OSError as exc:
            log.warning(
                "%s: compaction committed, finishing failed (%s); the next open will", handle.path, exc
            )
            raise


def views_damaged(fs: FileSystem, path: str, current: Manifest) -> bool:
    """Is a view file of the last compaction missing or not as it wrote it? (Then a
    compaction with nothing new writes the views again.)"""
    if not current.snapshot_seq:
        return False
    for name in mf.SNAPSHOT_FILES:
        raw = read_file(fs, os.path.join(path, name))
        expected = current.view_hash(name)
        if raw is None or (expected is not None and mf.view_hash(raw) != expected):
            return True
    return False


# -- retention -------------------------------------------------------------------------------


def prune(handle: SessionLog, policy: CompactionPolicy) -> list[str]:
    """Remove the oldest archives the policy no longer keeps; return their segment names."""
    if policy.keep_archives is None and policy.max_archive_age is None:
        return []
    drop = _to_prune(handle.fs, handle.path, handle.manifest, policy, time.time())
    if not drop:
        return []
    with _locked(handle):
        current = handle.manifest
        rest = current.archived[len(drop) :]
        through = _first(rest[0]) - 1 if rest else current.snapshot_seq
        handle.bump_generation()  # other handles know the archive list: make them reopen
        handle.manifest = replace(current, archived=rest, pruned_through=through)
        mf.store(handle.fs, handle.path, handle.manifest, handle.options.file_mode)
        for name in drop:
            unlink_quietly(handle.fs, os.path.join(handle.path, mf.archive_name(name)))
        handle.fs.sync_dir(os.path.join(handle.path, mf.ARCHIVE_DIR))
    log.warning(
        "%s: retention removed %d archives; records through seq %d are gone", handle.path, len(drop), through
    )
    return drop


def _to_prune(
    fs: FileSystem, path: str, current: Manifest, policy: CompactionPolicy, now: float
) -> list[str]:
    """The oldest archives past the count or age limit (always a prefix: numbering stays gapless)."""
    names = list(current.archived)
    count = 0 if policy.keep_archives is None else max(0, len(names) - policy.keep_archives)
    if policy.max_archive_age is not None:
        for index, name in enumerate(names):
            st = fs.stat(os.path.join(path, mf.archive_name(name)))
            if st is None or now - st.mtime < policy.max_archive_age:
                break
            count = max(count, index + 1)
    return names[:count]


def _first(segment: str) -> int:
    first = naming.segment_first_seq(segment)
    assert first is not None  # manifest.decode checked every name
    return first


# -- policy ----------------------------------------------------------------------------------


def live_bytes(fs: FileSystem, path: str, snapshot_seq: int) -> int:
    """Bytes in the live log: segments after the snapshot (0 when nothing is new)."""
    log_dir = os.path.join(path, naming.LOG_DIR)
    total = 0
    for name in fs.listdir(log_dir):
        first = naming.segment_first_seq(name)
        st = fs.stat(os.path.join(log_dir, name)) if first is not None and first > snapshot_seq else None
        total += st.size if st is not None else 0
    return total


def is_due(fs: FileSystem, path: str, policy: CompactionPolicy, live_records: int | None = None) -> bool:
    """Does the policy want this session compacted now? Reads only names and sizes."""
    current = mf.load(fs, path)
    live = live_bytes(fs, path, current.snapshot_seq)
    if live == 0:
        return False
    snapshot_st = fs.stat(os.path.join(path, mf.MESSAGES_FILE)) if current.snapshot_seq else None
    snapshot_bytes = snapshot_st.size if snapshot_st is not None else 0
    if live >= max(policy.min_live_bytes, policy.snapshot_ratio * snapshot_bytes):
        return True
    threshold = policy.min_live_records
    if threshold is not None and live_records is not None and live_records >= threshold:
        return True
    if policy.max_age is not None:
        since = fs.stat(os.path.join(path, mf.MANIFEST_FILE)) or fs.stat(
            os.path.join(path, naming.IDENTITY_FILE)
        )
        return since is not None and time.time() - since.mtime >= policy.max_age
    return False
