"""`RemoteReplica`: the sessions of a replica read in place, without a restore (FORMAT.md,
"Replicas", "Reading a replica in place").

Strategy: a session's records are its chain (`chain.pieces`, every object checked, the
lease's fence applied) cut at the point in time exactly as a restore cuts it
(`batches.replica_batches`: whole batches), decoded line by line as they stream, a run at a
time.
Everything a store derives from records is then the store's own code fed with them:
`SessionState`'s fold for `state`, `ops.history.Fold` for the messages `search` scans (this
class is an `ops.history.ReadsOwnMessages`, so `ops.search.search` and
`ops.transfer.export_archive` run unchanged on it), so a replica reads, searches and exports
exactly as the store it was shipped from. Nothing is written to the bucket or to the disk
(but the export file); a run that does not check out is `ReplicaCorruptionError`, never
skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..log import naming
from ..log.manifest import Manifest
from ..log.record import BadLine, Record, decode
from ..log.state import SessionState, fold
from ..ops.history import Fold
from ..ops.protocol import Progress
from ..ops.scanning import Prefilter, chosen_lines
from .batches import replica_batches
from .chain import Fence
from .lease import lease_fence
from .objects import ObjectStore, ReplicaCorruptionError
from .runs import list_runs, list_session_dirs
from .stores import open_store

if TYPE_CHECKING:
    from ..ops.search import SearchHit
    from ..ops.transfer import ExportReport

T = TypeVar("T")


class RemoteReplica:
    """A read-only view of the replica at `url` (`s3://bucket/prefix`, `file:///dir`, ...).

    Args:
        url: the replica, as `Journal(replica=...)` and `journal restore` take it.
        options: the bucket client's options (`open_store`); None: its environment variables.
        to_time: read every session as it was at this time (a datetime, or seconds since the
            epoch): the records a `restore(..., to_time=...)` would restore, whole batches.

    `sessions`, `exists`, `read`, `state`, `search`, `export_archive` and `session_document`
    behave as the `Journal` methods of the same names on the store the replica was shipped
    from. Each call reads the bucket anew; nothing is cached, written or locked.
    """

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        to_time: datetime | float | None = None,
    ) -> None:
        self.objects: ObjectStore = open_store(url, options)
        self.root = self.objects.url  # where errors and reports say the sessions are
        self.to_time = to_time.timestamp() if isinstance(to_time, datetime) else to_time
        # A writer's uploads after it lost its lease do not count (FORMAT.md, "Leases").
        self.fence: Fence = lease_fence(self.objects)

    def __enter__(self) -> RemoteReplica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (each call opens and closes what it reads); for symmetry."""

    # -- the Readable protocol of ops --------------------------------------------------------

    def sessions(self) -> Iterator[str]:
        """The ids of the sessions the replica holds records of (at `to_time`, if given)."""
        for name in list_session_dirs(self.objects):
            session_id = naming.decode_id(name)
            if session_id is not None and (self.to_time is None or self.exists(session_id)):
                yield session_id

    def exists(self, session_id: str) -> bool:
        """Does the replica hold records of the session (at `to_time`, if given)?"""
        dir_name = naming.encode_id(session_id)
        if self.to_time is None:
            return bool(list_runs(self.objects, dir_name))
        batches = self._batches(session_id)
        try:
            return next(batches, None) is not None
        finally:
            batches.close()

    def session_path(self, session_id: str) -> str:
        """Where the session's objects are: `<url>/sessions/<dir name>`.

        Raises:
            InvalidSessionIdError: `session_id` cannot name a session.
        """
        return f"{self.root}/sessions/{naming.encode_id(session_id)}"

    def read(self, session_id: str, start: int = 0) -> Iterator[Record]:
        """Every record (all kinds, seals too) with `seq >= start`, in order, streamed run by
        run; nothing if the replica has no such session.

        Raises (while iterated):
            ReplicaCorruptionError: an object does not check out, or records are missing.
            ReplicaConflictError: two histories of the session in the replica.
            UnsupportedFormatError: a run of a format version this reader does not know.
        """
        if not isinstance(start, int) or isinstance(start, bool):
            raise TypeError(f"start must be an int, not {type(start).__name__}")
        naming.encode_id(session_id)
        return self._records(session_id, start)

    def state(self, session_id: str) -> SessionState | None:
        """The session's current messages and metadata, folded as the store folds its log
        (`log.state.fold`), or None if the replica has no records of it. Raises as `read`."""
        records = self.read(session_id)
        first = next(records, None)
        if first is None:
            return None
        state = SessionState()
        state.apply(first)
        return fold(records, state)

    def message_reader(
        self, session_id: str, *, history: bool, prefilter: Prefilter | None
    ) -> ReplicaMessages:
        """The messages `ops.history.SessionReader` would give of the session's files (the
        `ops.history.ReadsOwnMessages` hook `search` uses)."""
        return ReplicaMessages(self._messages(session_id, history, prefilter))

    # -- the whole-store operations ------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        regex: bool = False,
        role: str | None = None,
        since: datetime | float | str | None = None,
        until: datetime | float | str | None = None,
        sessions: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[SearchHit]:
        """`Journal.search` on the replica (`ops.search.search`: same arguments, same hits).

        Every message record the replica holds is searched, as `Journal.search` searches
        every one still on disk. A session that cannot be read is left out with an
        `UnreadableSessionWarning` naming the `ReplicaCorruptionError`.
        """
        from ..ops.search import search

        return search(
            self, query, regex=regex, role=role, since=since, until=until, sessions=sessions, limit=limit
        )

    def export_archive(
        self,
        path: str | os.PathLike[str],
        sessions: Iterable[str] | None = None,
        *,
        format: str = "archive",
        progress: Progress | None = None,
    ) -> ExportReport:
        """`Journal.export_archive` of the replica (`ops.transfer.export_archive`): one new
        file, one session in memory at a time. A session that cannot be read is left out
        with an `UnreadableSessionWarning` and named in `ExportReport.skipped`."""
        from ..ops.transfer import export_archive

        return export_archive(self, path, sessions, format=format, progress=progress)

    def session_document(self, session_id: str) -> dict[str, Any]:
        """One conversation as an export archive holds it (`ops.transfer.session_document`).

        Raises:
            UnknownSessionError: the replica has no records of the session.
        """
        from ..ops.transfer import session_document

        return session_document(self, session_id)

    # -- reading the chain ---------------------------------------------------------------------

    def _batches(self, session_id: str) -> Generator[tuple[bytes, int], None, None]:
        """The session's record lines up to `to_time`, in whole batches, as a restore cuts
        them; closing the generator stops the downloads under way."""
        dir_name = naming.encode_id(session_id)
        yield from replica_batches(self.objects, dir_name, session_id, None, self.to_time, self.fence)

    def _records(self, session_id: str, start: int) -> Iterator[Record]:
        where = self.session_path(session_id)
        batches = self._batches(session_id)
        try:
            for raw, last_seq in batches:
                if last_seq < start:
                    continue
                for line in raw.splitlines():
                    record = _decode(line, where)
                    if record.seq >= start:
                        yield record
        finally:
            batches.close()

    def _messages(self, session_id: str, history: bool, prefilter: Prefilter | None) -> Iterator[Record]:
        """The session's message records through `Fold`, as `ops.history` feeds it a store's
        files: only the lines the prefilter picks are decoded."""
        where = self.session_path(session_id)
        folding = Fold(history, Manifest())  # a replica holds every record: no snapshot part
        batches = self._batches(session_id)
        try:
            for raw, _ in batches:
                for start, end in chosen_lines(raw, prefilter, folding.holding):
                    yield from folding.feed(_decode(raw[start:end], where))
            yield from folding.finish()
        finally:
            batches.close()


class ReplicaMessages:
    """`ops.history.MessageReader` over a replica's session: messages in batches."""

    def __init__(self, records: Iterator[Record]) -> None:
        self.records: Iterator[Record] | None = records

    def read_batch(self, keep: Callable[[Record], T | None], size: int) -> list[T] | None:
        """What `keep` makes of the next messages, until it kept `size` or the session ends;
        None once it has ended."""
        if self.records is None:
            return None
        out: list[T] = []
        try:
            while len(out) < size:
                record = next(self.records, None)
                if record is None:
                    self.close()
                    break
                kept = keep(record)
                if kept is not None:
                    out.append(kept)
        except BaseException:
            self.close()
            raise
        return out

    def close(self) -> None:
        """Stop reading (the downloads under way are cancelled)."""
        records, self.records = self.records, None
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _decode(line: bytes, where: str) -> Record:
    try:
        return decode(line)
    except BadLine as exc:  # `runs.decode_run` checked every line: only a bug gets here
        raise ReplicaCorruptionError(where, f"a record does not decode: {exc.reason}") from None
