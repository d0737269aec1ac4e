"""How far a replica is behind a store, read from the bucket (what `journal status` prints).

Strategy: unlike `Replicator.status` (what a running replicator has shipped, from memory),
this asks the bucket: per session, the last seq the replica's history holds (`chain.head`,
through the lease fence), against the last seq on local disk, and the age of the oldest local
record the replica lacks. Sessions only the replica has are listed too (local seq 0), with the
lease (holder, epoch, expiry) when there is one. One session that cannot be read is reported
with its error, never stops the others.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..errors import JournalError
from ..log import naming
from ..log.record import Record
from ..log.state import SessionState
from . import chain
from .lease import lease_fence, read_lease
from .objects import ObjectStore
from .runs import list_session_dirs


class StatusSource(Protocol):
    """What the report reads of the local store (a `Journal`)."""

    def sessions(self) -> Iterator[str]: ...

    def state(self, session_id: str) -> SessionState | None: ...

    def read(self, session_id: str, start: int = 0) -> Iterator[Record]: ...


@dataclass(frozen=True)
class RemoteStatus:
    """One session: the last seq here and in the replica, how far behind (seqs, seconds:
    the age of the oldest record the replica lacks), its lease, or the error reading it."""

    session_id: str
    local_seq: int
    replicated_seq: int
    behind_seqs: int
    behind_seconds: float
    lease_holder: str | None = None
    lease_epoch: int = 0
    lease_expires_at: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remote_status(
    source: StatusSource, store: ObjectStore, sessions: Iterable[str] | None = None
) -> Iterator[RemoteStatus]:
    """Per session (every session of the store and of the replica if None, sorted): how far
    the replica is behind this store."""
    if sessions is None:
        remote = (naming.decode_id(name) for name in list_session_dirs(store))
        ids = sorted(set(source.sessions()) | {sid for sid in remote if sid is not None})
    else:
        ids = list(sessions)
    fence = lease_fence(store)
    for session_id in ids:
        try:
            yield _one(source, store, session_id, fence)
        except (JournalError, OSError) as exc:
            yield RemoteStatus(session_id, 0, 0, 0, 0.0, error=f"{type(exc).__name__}: {exc}")


def _one(source: StatusSource, store: ObjectStore, session_id: str, fence: chain.Fence) -> RemoteStatus:
    state = source.state(session_id)
    local = 0 if state is None else state.last_seq
    replicated = chain.head(store, naming.encode_id(session_id), session_id, fence)[0]
    behind = 0.0
    if local > replicated:
        oldest = next(source.read(session_id, replicated + 1), None)
        behind = 0.0 if oldest is None else max(0.0, time.time() - oldest.ts)
    found = read_lease(store, session_id)
    lease = None if found is None else found[0]
    return RemoteStatus(
        session_id,
        local,
        replicated,
        local - replicated,
        behind,
        None if lease is None else lease.holder,
        0 if lease is None else lease.epoch,
        None if lease is None or lease.holder is None else lease.expires_at,
    )
