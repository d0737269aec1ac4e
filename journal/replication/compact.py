"""Retention in the bucket: merge a session's small runs into larger ones, then delete what
is superseded (FORMAT.md, "Replicas", "Retention").

Strategy: walk each session's chain as a restore does (`chain.pieces`, through the lease
fence), and gather consecutive whole pieces of one epoch into groups of at most
`target_bytes` of lines. A group of two or more objects becomes one merged run, the same
lines byte for byte under a name of its own (`<first>.e<epoch>.m<last>`, format 2), put
create-only and read back and compared before anything relies on it; a name found taken
must hold the same lines (an earlier, interrupted pass), else it is `ReplicaConflictError`.

Deleting is the only step that can lose anything, so an object is deleted only when two
things hold. It is superseded: its lines are, byte for byte, a stretch of a merged run of
the same or a later epoch that the fence keeps whole, or the fence rules all of it out; the
lease is read AGAIN just before deleting, and both are checked against that reading. And it
is old: it, and the merged run that covers it, were written at least `keep_days` ago (the
merged run's age is what keeps a reader safe that listed before the merged run existed and
is about to download a small run; `chain.pieces` also lists again when one vanishes).

A late upload cannot resurrect anything: a stalled writer of an old epoch uploads runs the
fence rules out; a retried upload of a run deleted here puts back the same bytes, which the
chain passes by (the merged run is chosen first) and the next pass deletes again. A pass
killed between the merged put and the deletes leaves both, and the chain chooses the merged
run; the next pass finishes the deletes. Nothing but run objects is touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..log import naming
from .chain import Fence, Piece, pieces, usable
from .lease import lease_fence, read_lease
from .objects import ObjectExists, ObjectMissing, ObjectStore, ReplicaConflictError, ReplicaCorruptionError
from .runs import Run, RunRef, decode_run, encode_run, list_runs, list_session_dirs, merged_key

DAY = 86400.0
TARGET_BYTES = 8 << 20  # lines in a merged run, as many as the replicator ships at most


@dataclass
class SessionCompaction:
    """What a pass did to one session (in a dry run: would do). `waiting`: superseded objects
    kept because they, or the merged run covering them, are younger than `keep_days`."""

    session_id: str
    objects_before: int
    objects_after: int
    merged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    waiting: int = 0


@dataclass
class CompactReport:
    sessions: list[SessionCompaction] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "sessions": [asdict(s) for s in self.sessions]}


@dataclass(frozen=True)
class _Cover:
    """A merged run the chain uses whole: its lines, and since when it exists."""

    key: str
    run: Run
    since: float


@dataclass
class _Plan:
    """One session's pass: merged runs that cover, objects to delete if still superseded."""

    covers: list[_Cover] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # keys of the pieces of the chain
    merged: list[str] = field(default_factory=list)


def compact_replica(
    store: ObjectStore,
    *,
    keep_days: float = 7.0,
    target_bytes: int = TARGET_BYTES,
    sessions: Iterable[str] | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> CompactReport:
    """Merge small runs and delete superseded objects older than `keep_days`.

    Args:
        keep_days: grace before a superseded object is deleted (0: at once).
        target_bytes: the most lines a merged run holds.
        sessions: the ids to compact; None: every session in the replica.
        dry_run: read and check everything, write and delete nothing; report what would be.
        now: the time ages are measured at (seconds since the epoch; default: now).

    Raises:
        ReplicaCorruptionError, ReplicaConflictError: a session's chain does not check out,
            or a merged run's name holds other lines; nothing more of that session is done.
    """
    if keep_days < 0 or target_bytes < 1:
        raise ValueError("keep_days must be >= 0 and target_bytes >= 1")
    ids = list(sessions) if sessions is not None else _replica_sessions(store)
    at = time.time() if now is None else now
    report = CompactReport(dry_run=dry_run)
    for session_id in ids:
        report.sessions.append(compact_session(store, session_id, at, keep_days * DAY, target_bytes, dry_run))
    return report


def _replica_sessions(store: ObjectStore) -> list[str]:
    return [sid for name in list_session_dirs(store) if (sid := naming.decode_id(name)) is not None]


def compact_session(
    store: ObjectStore, session_id: str, now: float, keep_seconds: float, target_bytes: int, dry_run: bool
) -> SessionCompaction:
    """One session's pass (see `compact_replica`): objects written within `keep_seconds`
    before `now` stay, and so do those a merged run that young covers."""
    dir_name = naming.encode_id(session_id)
    walk = _Walk(store, dir_name, list_runs(store, dir_name), now, target_bytes, dry_run)
    plan = _merge(walk, session_id, lease_fence(store))
    # Read the lease again: a takeover since the walk moves the fence. Without a lease object
    # nothing is deleted for the fence's sake: a lost lease object must not empty the replica.
    fresh = lease_fence(store) if read_lease(store, session_id) is not None else None
    done = SessionCompaction(session_id, len(walk.refs), 0, plan.merged)
    doomed, done.waiting = _superseded(store, walk.refs, plan, fresh, now - keep_seconds)
    for ref in doomed:
        if not dry_run:
            store.delete(ref.key)
        done.deleted.append(ref.key)
    done.objects_after = len(walk.refs) + len(plan.merged) - len(doomed)
    return done


# -- merging -------------------------------------------------------------------------------------


@dataclass
class _Walk:
    """What merging needs besides the chain: the listing, the pass's time, the mode."""

    store: ObjectStore
    dir_name: str
    refs: list[RunRef]
    now: float
    target_bytes: int
    dry_run: bool

    def covers_something(self, key: str, first: int, last: int) -> bool:
        """Does any other listed object start inside `first`..`last`? (Else the merged run's
        lines need not be kept for the deleting step.)"""
        return any(first <= ref.first <= last and ref.key != key for ref in self.refs)

    def modified(self, key: str) -> float:
        found = [ref.modified for ref in self.refs if ref.key == key]
        return found[0] if found else _since(self.store, key)


def _merge(walk: _Walk, session_id: str, fence: Fence) -> _Plan:
    """Walk the chain, writing a merged run for each group of small whole pieces."""
    plan, group = _Plan(), list[Piece]()
    for piece in pieces(walk.store, walk.dir_name, session_id, fence):
        plan.used.add(piece.key)
        if group and not _joins(group, piece, walk.target_bytes):
            _flush(walk, group, plan)
            group = []
        if _whole(piece) and len(piece.run.raw) < walk.target_bytes:
            group.append(piece)
        elif _whole(piece) and _is_merged(piece.key):
            _keep_cover(walk, plan, piece.key, piece.run, walk.modified(piece.key))
    if group:
        _flush(walk, group, plan)
    return plan


def _keep_cover(walk: _Walk, plan: _Plan, key: str, run: Run, since: float) -> None:
    if walk.covers_something(key, run.first, run.last):
        plan.covers.append(_Cover(key, run, since))


def _whole(piece: Piece) -> bool:
    """The fence keeps all of the run: it may be merged, and covers what it holds."""
    return (piece.lo, piece.hi) == (piece.run.first, piece.run.last)


def _is_merged(key: str) -> bool:
    return ".m" in key.rpartition("/")[2]


def _joins(group: list[Piece], piece: Piece, target_bytes: int) -> bool:
    size = sum(len(p.run.raw) for p in group) + len(piece.run.raw)
    return _whole(piece) and piece.run.epoch == group[0].run.epoch and size <= target_bytes


def _flush(walk: _Walk, group: list[Piece], plan: _Plan) -> None:
    """A group of one merges nothing; of more, becomes a merged run (put, then read back).
    A merged run written in this pass counts as written at the pass's time."""
    if len(group) == 1:
        if _is_merged(group[0].key):
            _keep_cover(walk, plan, group[0].key, group[0].run, walk.modified(group[0].key))
        return
    head, last = group[0].run, group[-1].run
    raw = b"".join(p.run.raw for p in group)
    key = merged_key(walk.dir_name, head.first, head.epoch, last.last)
    run = Run(head.session_id, head.first, last.last, head.epoch, head.prev, raw, last.last_checksum)
    since = walk.now if walk.dry_run else _put_merged(walk.store, key, run, walk.now)
    if all(ref.key != key for ref in walk.refs):  # else an earlier pass wrote it
        plan.merged.append(key)
    _keep_cover(walk, plan, key, run, since)


def _put_merged(store: ObjectStore, key: str, run: Run, now: float) -> float:
    """Put the merged run create-only and read it back; when it was written."""
    ref = RunRef(key, run.first, run.epoch, run.last)
    where = f"{store.url}/{key}"
    try:
        store.put_new(key, encode_run(run.session_id, run.first, run.epoch, run.prev, run.raw, merged=True))
        since = now
    except ObjectExists:
        since = _since(store, key)  # an earlier pass was cut short after its put: same lines?
    there = decode_run(where, store.get(key)[0], ref)
    if (there.raw, there.prev, there.last) != (run.raw, run.prev, run.last):
        raise ReplicaConflictError(where, "a merged run under this name holds other records")
    return since


def _since(store: ObjectStore, key: str) -> float:
    info = store.head(key)
    if info is None:
        raise ObjectMissing(f"{store.url}/{key}", "a merged run vanished while it was compacted")
    return info.modified


# -- deleting ------------------------------------------------------------------------------------


def _superseded(
    store: ObjectStore, refs: list[RunRef], plan: _Plan, fence: Fence | None, cutoff: float
) -> tuple[list[RunRef], int]:
    """The listed objects that may go now, and how many would but are too young."""
    covers = [c for c in plan.covers if usable(c.run, fence) == (c.run.first, c.run.last)]
    doomed, waiting = [], 0
    for ref in refs:
        if any(ref.key == c.key for c in covers):
            continue  # a merged run the chain uses: kept
        reason = _why_superseded(store, ref, covers, fence, used=ref.key in plan.used)
        if reason is None:
            continue
        if ref.modified <= cutoff and reason <= cutoff:
            doomed.append(ref)
        else:
            waiting += 1
    return doomed, waiting


def _why_superseded(
    store: ObjectStore, ref: RunRef, covers: list[_Cover], fence: Fence | None, used: bool
) -> float | None:
    """Since when `ref` is superseded (the covering merged run's time; ruled out by the
    fence: -inf, the object's own age decides), or None if it is not. A piece of the chain
    is superseded only by a cover; `fence` None: nothing is for the fence's sake."""
    candidates = [c for c in covers if c.run.first <= ref.first <= c.run.last and c.run.epoch >= ref.epoch]
    if used and not candidates:
        return None  # a piece of the chain nothing else holds
    try:
        run = decode_run(f"{store.url}/{ref.key}", store.get(ref.key)[0], ref)
    except ObjectMissing:
        return None  # gone already (another pass)
    except ReplicaCorruptionError:
        return None  # never deleted here: `verify`/a human decides about a damaged object
    for cover in candidates:
        if run.last <= cover.run.last and _same_lines(cover.run, run):
            return cover.since
    if not used and fence is not None and usable(run, fence) is None:
        return float("-inf")
    return None


def _same_lines(cover: Run, run: Run) -> bool:
    """Are `run`'s lines, byte for byte, records `run.first`..`run.last` of `cover`?"""
    piece = Piece(cover, run.first, run.last).lines()
    return piece == run.raw and (run.first > cover.first or run.prev == cover.prev)
