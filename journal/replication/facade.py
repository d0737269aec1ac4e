"""`Replication`: replication and restore as methods of `Journal` (a mixin).

Strategy: each method is a thin door to its module (`replicator`, `restore`, `stores`),
imported when first used so that `import journal` stays cheap and never loads obstore; the
work and its documentation live in those modules. `Journal.__init__` calls `_start_replica`
and `Journal.close` calls `_stop_replica`; nothing else of the facade changes (shipping reads
the files, so no append waits for it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..log.fs import FileSystem
from ..log.session import Options
from .objects import ReplicaError

if TYPE_CHECKING:
    from .compact import CompactReport
    from .replicator import Replicator, SessionStatus
    from .restore import RestoreReport


class ReplicaHost(Protocol):
    """The `Journal` attributes the replication methods use."""

    root: str
    fs: FileSystem
    options: Options
    read_only: bool
    replicator: Replicator | None

    def sessions(self) -> Iterator[str]: ...

    def session_path(self, session_id: str) -> str: ...

    def exists(self, session_id: str) -> bool: ...

    def close(self) -> None: ...


class Replication:
    """`Journal(root, replica=URL)`: ship every session to a bucket; `restore` from one."""

    replicator: Replicator | None = None

    def _start_replica(
        self: ReplicaHost, url: str | None, options: dict[str, Any] | None, interval: float
    ) -> None:
        """Open the replica `url` and start shipping every `interval` seconds (the `Journal`
        arguments `replica`, `replica_options`, `replica_interval`)."""
        self.replicator = None
        if url is None:
            if options:
                raise ValueError("replica_options given without a replica URL")
            return
        from .replicator import Replicator
        from .stores import open_store

        try:
            replicator = Replicator(self, open_store(url, options), interval=interval)
        except BaseException:
            self.close()  # the Journal is not returned: release what __init__ opened
            raise
        replicator.start()
        self.replicator = replicator

    def _stop_replica(self: ReplicaHost) -> None:
        """Stop shipping after one last pass (on `close()`)."""
        replicator, self.replicator = self.replicator, None
        if replicator is not None:
            replicator.stop(final_pass=True)

    def sync_replica(self: ReplicaHost, timeout: float | None = None) -> None:
        """Return once the replica holds every record acknowledged before the call.

        Raises:
            ReplicaError: no replica is configured (`Journal(root, replica=URL)`).
            ReplicaTimeout: not done within `timeout` seconds (the bucket is unreachable).
            ReplicaConflictError: another writer replicates one of these sessions.
        """
        _replicator(self).sync(timeout)

    def replica_status(self: ReplicaHost) -> dict[str, SessionStatus]:
        """Per session: local last seq, replicated last seq, seconds behind, last error
        (`SessionStatus`; `.to_dict()` for JSON)."""
        return _replicator(self).status()

    def restore(
        self: ReplicaHost,
        url: str,
        sessions: Iterable[str] | None = None,
        *,
        to_seq: int | None = None,
        to_time: datetime | float | None = None,
        dry_run: bool = False,
        replica_options: dict[str, Any] | None = None,
        catch_up: bool = False,
    ) -> RestoreReport:
        """Rebuild sessions from the replica `url` in this store, identical to the source
        (seqs, times, kinds, batches), up to a point in time if asked; see
        `replication.restore.restore`.

        Args:
            sessions: the ids to restore; None: every session in the replica.
            to_seq: keep records through this seq (cut back to a whole batch).
            to_time: keep the records written at or before this time (a datetime, or seconds
                since the epoch).
            dry_run: download and check everything, write nothing; report what would be.
            catch_up: a session this store has already is caught up in place when its
                copy is a prefix of the replica's (the missing records appended, byte for
                byte); a copy ahead is left alone; a forked one raises `CatchUpForkError`.

        Raises:
            RestoreConflictError: this store has one of the sessions already (nothing written;
                with `catch_up`: `CatchUpForkError`, its copy forked from the replica's).
            ReplicaCorruptionError: an object does not check out (checksum mismatch, missing
                records): nothing of that session is written.
        """
        from .lease import lease_fence
        from .restore import restore
        from .stores import open_store

        if self.read_only and not dry_run:
            from ..errors import ReadOnlyError

            raise ReadOnlyError(self.root, "cannot restore into the store: it is open read-only")
        when = to_time.timestamp() if isinstance(to_time, datetime) else to_time
        store = open_store(url, replica_options)
        fence = lease_fence(store)  # a writer's uploads after it lost its lease do not count
        return restore(
            self,
            store,
            sessions,
            to_seq=to_seq,
            to_time=when,
            dry_run=dry_run,
            fence=fence,
            catch_up=catch_up,
        )

    def compact_replica(
        self: ReplicaHost,
        url: str,
        *,
        keep_days: float = 7.0,
        target_bytes: int = 8 << 20,
        sessions: Iterable[str] | None = None,
        dry_run: bool = False,
        replica_options: dict[str, Any] | None = None,
    ) -> CompactReport:
        """Retention in the replica `url`: merge each session's small runs into runs of up to
        `target_bytes` of lines, delete objects superseded (by a merged run, or by the lease
        fence) and older than `keep_days`; see `replication.compact.compact_replica`."""
        from .compact import compact_replica
        from .stores import open_store

        store = open_store(url, replica_options)
        return compact_replica(
            store, keep_days=keep_days, target_bytes=target_bytes, sessions=sessions, dry_run=dry_run
        )


def _replicator(host: ReplicaHost) -> Replicator:
    if host.replicator is None:
        raise ReplicaError(os.fspath(host.root), "no replica: open the Journal with replica=URL")
    return host.replicator
