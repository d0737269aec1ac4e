"""The history a replica holds for one session: its runs chained from seq 1 (FORMAT.md,
"Replicas", "Reading a replica").

Strategy: list the session's runs, then walk from seq 1: at each expected seq take the run
whose name starts there (of several, the highest epoch first, then the longest: a merged run
before the shipped runs it covers, whose lines are the same bytes), download and check it
(`runs.decode_run`), let the fence say which of its records count, and require that it
chains: its `prev` is the checksum of the record before it. Objects are downloaded a few
ahead, in parallel, so a restore is not one round trip per object. A run that starts where
no chain reaches and that the fence does not rule out means records are missing: that is
corruption, never a silently shorter history. An object listed but gone when downloaded was
deleted by retention (`compact.py`) after a merged run covering it was written: the walk
lists again and goes on from where it was, so a reader never sees a shorter history for it.

`Fence` is how leases (`lease.py`) tell which objects a writer that lost its lease uploaded
too late: `fence(session_id, epoch, first, last)` gives the seq range of the run that counts,
or None. Without one every run counts whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..log.record import BadLine, decode_header
from .objects import ObjectMissing, ObjectStore, ReplicaConflictError, ReplicaCorruptionError
from .runs import Run, RunRef, decode_run, line_checksum, list_runs

Fence = Callable[[str, int, int, int], "tuple[int, int] | None"]
PREFETCH = 8  # objects downloaded ahead of the one being used
RELISTS = 3  # how often one walk lists again after objects vanished under it


@dataclass(frozen=True)
class Piece:
    """The records `lo`..`hi` of a run: the part of it that belongs to the history."""

    run: Run
    lo: int
    hi: int
    key: str = ""  # the object it was read from

    def lines(self) -> bytes:
        """The record lines `lo`..`hi`, byte for byte."""
        raw, start = self.run.raw, 0
        if (self.lo, self.hi) == (self.run.first, self.run.last):
            return raw
        for _ in range(self.lo - self.run.first):
            start = raw.index(b"\n", start) + 1
        end = start
        for _ in range(self.hi - self.lo + 1):
            end = raw.index(b"\n", end) + 1
        return raw[start:end]

    def last_checksum(self) -> str:
        lines = self.lines()
        return line_checksum(lines[lines.rfind(b"\n", 0, len(lines) - 1) + 1 :])


class Downloads:
    """The runs of `refs`, fetched a few ahead of the one asked for, each decoded once."""

    def __init__(self, store: ObjectStore, refs: list[RunRef], ahead: int = PREFETCH) -> None:
        self.store, self.refs, self.ahead = store, refs, ahead
        self.index = {ref.key: i for i, ref in enumerate(refs)}
        self.futures: dict[str, Future[Run]] = {}
        self.pool = ThreadPoolExecutor(max_workers=ahead) if ahead > 1 else None

    def _fetch(self, ref: RunRef) -> Run:
        return decode_run(f"{self.store.url}/{ref.key}", self.store.get(ref.key)[0], ref)

    def get(self, ref: RunRef) -> Run:
        if self.pool is None:
            return self._fetch(ref)
        at = self.index[ref.key]
        for nxt in self.refs[at : at + self.ahead]:
            if nxt.key not in self.futures:
                self.futures[nxt.key] = self.pool.submit(self._fetch, nxt)
        return self.futures.pop(ref.key).result()

    def close(self) -> None:
        if self.pool is not None:
            for future in self.futures.values():
                future.cancel()
            self.pool.shutdown(wait=True)


def usable(run: Run, fence: Fence | None) -> tuple[int, int] | None:
    """The records of `run` that count, cut back to a whole batch; None if none do."""
    if fence is None:
        return run.first, run.last
    span = fence(run.session_id, run.epoch, run.first, run.last)
    if span is None:
        return None
    lo, hi = max(span[0], run.first), min(span[1], run.last)
    while hi >= lo and _more_at(run, hi):
        hi -= 1
    return (lo, hi) if hi >= lo else None


def _more_at(run: Run, seq: int) -> bool:
    """Does record `seq` of the run have more records of its batch after it?"""
    piece = Piece(run, seq, seq).lines()
    try:
        return decode_header(piece[:-1]).more > 0
    except BadLine:  # decode_run checked every line
        return False


def pieces(
    store: ObjectStore, dir_name: str, session_id: str, fence: Fence | None = None, ahead: int = PREFETCH
) -> Iterator[Piece]:
    """The session's history in the replica, in order, from seq 1.

    Raises:
        ReplicaCorruptionError: a run does not check out, or runs are missing in between.
        ReplicaConflictError: the runs at some seq do not chain: two histories of the session.
    """
    expected, prev, relists = 1, "", 0
    while True:
        refs = list_runs(store, dir_name)
        downloads = Downloads(store, refs, ahead)
        try:
            at = 0
            while at < len(refs):
                chosen, at = _choose(downloads, refs, at, expected, prev, fence)
                if chosen is None:
                    break
                yield chosen
                expected, prev = chosen.hi + 1, chosen.last_checksum()
            for ref in refs[at:]:  # beyond the chain: only fenced-off objects may be there
                if ref.first >= expected and usable(downloads.get(ref), fence) is not None:
                    reason = f"records {expected}..{ref.first - 1} are missing before this object"
                    raise ReplicaCorruptionError(f"{store.url}/{ref.key}", reason)
            return
        except ObjectMissing:
            relists += 1  # deleted by retention since the listing: a merged run covers it
            if relists > RELISTS:
                raise
        finally:
            downloads.close()


def _choose(
    downloads: Downloads, refs: list[RunRef], at: int, expected: int, prev: str, fence: Fence | None
) -> tuple[Piece | None, int]:
    """The run that continues the chain at `expected` (the refs before `at` are used up)."""
    while at < len(refs) and refs[at].first < expected:
        at += 1  # runs the chain has passed: fenced off, or a shorter run at an earlier seq
    candidates = [ref for ref in refs[at:] if ref.first == expected]
    # Then a merged run that began before `expected` and reaches past it: how the chain goes
    # on after a relist, when the runs it covers were deleted since the first listing.
    spanning = [ref for ref in refs[:at] if ref.last >= expected]
    unchained = None
    order = sorted(candidates, key=lambda ref: (-ref.epoch, -ref.last))
    for ref in order + sorted(spanning, key=lambda ref: (-ref.epoch, -ref.last)):
        run = downloads.get(ref)
        span = usable(run, fence)
        if span is None or not span[0] <= expected <= span[1]:
            continue
        before = run.prev if expected == run.first else Piece(run, expected - 1, expected - 1).last_checksum()
        if before != prev:
            unchained = ref
            continue
        return Piece(run, expected, span[1], ref.key), at + len(candidates)
    if unchained is not None:
        reason = "does not continue the history before it: two writers replicated this session"
        raise ReplicaConflictError(f"{downloads.store.url}/{unchained.key}", reason)
    return None, at


def head(store: ObjectStore, dir_name: str, session_id: str, fence: Fence | None = None) -> tuple[int, str]:
    """The last seq the replica holds for the session and its record checksum ((0, "") when
    none): the newest run that counts, or a merged run that reaches further (its name says
    how far). Downloads one object in the usual case."""
    refs = list_runs(store, dir_name)
    downloads = Downloads(store, refs, ahead=1)
    best: tuple[int, str] = (0, "")
    for ref in reversed(refs):
        if best[0] and ref.last <= best[0]:
            continue  # a shipped run before the newest one, or a merged run ending sooner
        try:
            run = downloads.get(ref)
        except ObjectMissing:
            continue  # deleted by retention since the listing: superseded
        span = usable(run, fence)
        if span is not None and span[1] > best[0]:
            best = (span[1], Piece(run, span[1], span[1]).last_checksum())
    return best
