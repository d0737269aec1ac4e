"""`Leasing`: leases, handoff and the synchronous mode as methods of `Journal` (a mixin).

Strategy: the facade asks a *gate* twice per append: `before` the write (take the session's
lease if this `Journal` does not hold it yet; refuse if it was lost) and `after` it, before
acknowledging (the lease still trusted; in the synchronous mode, the bucket holds the record:
`synchronous.SyncGate` groups the uploads). Without leases and the synchronous mode the gate
does nothing. A new epoch starts where the replica's copy of the session ends, and only if
this store's copy agrees with it: not behind (`LeaseBehindError`: `take` catches up first),
and ahead only with records this very store wrote while it held the last epoch (its upload
lagged). The replicator ships only the sessions whose lease is held (their epoch names the
objects); anything else would be ignored by the fence. `close()` syncs each held session,
then releases its lease, so the next host restores everything this one acknowledged.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import JournalError
from ..log import forksafe, naming
from ..log.fs import FileSystem
from ..log.session import Options
from .lease import (
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    LeaseRecord,
    Leases,
    fence,
    lease_fence,
    lease_key,
    read_lease,
)
from .objects import ObjectStore
from .synchronous import UPLOAD_SECONDS, SyncGate

if TYPE_CHECKING:
    from ..log.state import SessionState

_TAKE_ATTEMPTS = 20  # each failed attempt means the replica grew while this host caught up


class LeaseBehindError(LeaseError):
    """This store's copy of the session ends before the replica's: writing would fork its
    history. `Journal.take(session_id)` catches up from the replica, then takes the lease."""


class Shipper(Protocol):
    """What the gate uses of the replicator."""

    store: ObjectStore

    def sync_session(self, session_id: str, timeout: float | None = None) -> int: ...

    def forget(self, session_id: str) -> None: ...


class LeaseHost(Protocol):
    """What the gate and the mixin use of the `Journal` (a `restore.RestoreTarget` too)."""

    root: str
    fs: FileSystem
    options: Options
    replicator: Any
    read_only: bool
    _gate: Gate

    def close(self) -> None: ...

    def delete(self, session_id: str) -> bool: ...

    def state(self, session_id: str) -> SessionState | None: ...

    def exists(self, session_id: str) -> bool: ...

    def session_path(self, session_id: str) -> str: ...

    def reopen(self, session_id: str) -> None: ...


class Gate:
    """Neither leases nor the synchronous mode: appends are acknowledged as they are."""

    def before(self, session_id: str) -> None:
        """Called before an append writes anything."""

    def after(self, session_id: str, last_seq: int) -> None:
        """Called after an append wrote through `last_seq`, before it is acknowledged."""

    def epoch(self, session_id: str) -> int | None:
        """The epoch to name the session's uploads with; None: do not ship it now."""
        return 0

    def close(self) -> None:
        """Sync and release what is held; stop the threads."""


NO_GATE = Gate()


class LeaseGate(Gate):
    """Leases (one writer per session) and/or the synchronous mode over one replica."""

    def __init__(self, host: LeaseHost, shipper: Shipper, leases: Leases | None, sync: bool) -> None:
        self.host, self.shipper, self.leases = host, shipper, leases
        self.sync = SyncGate(self._upload, shipper.store.url) if sync else None
        self._taking: dict[str, threading.Lock] = {}
        forksafe.register(self)

    def _upload(self, session_id: str) -> int:
        return self.shipper.sync_session(session_id, UPLOAD_SECONDS)

    def before(self, session_id: str) -> None:
        if self.leases is not None and not self.leases.check(session_id):
            self.acquire(session_id, None)

    def acquire(self, session_id: str, wait: float | None) -> int:
        """Take the session's lease (see `Leases.acquire`); then the replicator learns again
        what the replica holds of it, through the new epoch's fence. Its epoch."""
        assert self.leases is not None
        with self._taking.setdefault(session_id, threading.Lock()):  # one taker per session here
            if self.leases.check(session_id):  # another thread of this Journal took it meanwhile
                return self.leases.epoch(session_id)
            record = self.leases.acquire(session_id, lambda old: self.first_seq(session_id, old), wait)
        self.shipper.forget(session_id)
        return record.epoch

    def after(self, session_id: str, last_seq: int) -> None:
        if self.leases is not None:
            self.leases.check(session_id)
        if self.sync is not None:
            self.sync.wait(session_id, last_seq)
            if self.leases is not None:  # the upload may have outlasted the lease
                self.leases.check(session_id)

    def epoch(self, session_id: str) -> int | None:
        if self.leases is None:
            return 0
        return self.leases.epoch(session_id) if session_id in self.leases.held() else None

    def first_seq(self, session_id: str, old: LeaseRecord | None) -> int:
        """Where the new epoch starts: after the replica's last record of the session.

        Raises:
            LeaseBehindError: this store's copy ends before the replica's.
            LeaseError: this store's copy holds records the replica lacks, written while
                another store held the lease (the two histories forked).
        """
        from . import chain  # the replication machinery: loaded when a lease is first taken

        state = self.host.state(session_id)
        local = 0 if state is None else state.last_seq
        dir_name = naming.encode_id(session_id)
        remote = chain.head(
            self.shipper.store, dir_name, session_id, lambda _s, e, first, last: fence(old, e, first, last)
        )[0]
        where = f"{self.shipper.store.url}/{lease_key(session_id)}"
        if local < remote:
            raise LeaseBehindError(
                where, f"this store has {session_id!r} through seq {local}, the replica through {remote}"
            )
        place = self.leases.place if self.leases is not None else ""
        if local > remote and old is not None and old.place != place:
            raise LeaseError(
                where,
                f"this store has {session_id!r} through seq {local}, the replica only through {remote},"
                f" and the last lease was held by {old.place or 'another store'}: the histories forked",
            )
        return remote + 1

    def handoff(self, session_id: str, timeout: float | None) -> int:
        if self.leases is not None and session_id not in self.leases.held():
            self.before(session_id)  # take it first: hand over only what this store holds
        synced = self.shipper.sync_session(session_id, timeout)
        if self.sync is not None:
            self.sync.forget(session_id)
        if self.leases is not None and not self.leases.release(session_id, synced):
            raise LeaseLostError(
                f"{self.shipper.store.url}/{lease_key(session_id)}", "lease lost before the handoff"
            )
        return synced

    def close(self) -> None:
        if self.leases is None:
            return
        for session_id in self.leases.held():
            try:
                synced = self.shipper.sync_session(session_id, self.leases.ttl)
                self.leases.release(session_id, synced)
            except (JournalError, OSError):
                continue  # not all of it is in the bucket: let the lease expire instead
        self.leases.close(release=False)

    def after_fork(self) -> None:
        """In a child of `fork()`: hold nothing of the parent's (`log.forksafe`)."""
        self._taking = {}
        if self.leases is not None:
            self.leases = self.leases.forked()
        if self.sync is not None:
            self.sync = SyncGate(self._upload, self.shipper.store.url)


class Leasing:
    """Leases, handoff and the synchronous mode (README, "Scale out: replicate to object
    storage"); `Journal` wires them with `lease=`, `lease_ttl=`, `lease_wait=`, `replica_sync=`."""

    _gate: Gate = NO_GATE

    def _start_leases(
        self: LeaseHost, lease: bool, lease_ttl: float, lease_wait: float, replica_sync: bool
    ) -> Gate:
        """The gate of `_append` (the `Journal` arguments `lease`, `lease_ttl`, `lease_wait`,
        `replica_sync`); with leases, the replicator names uploads by their epoch and ships
        only the sessions held."""
        if not lease and not replica_sync:
            return NO_GATE
        try:
            if self.replicator is None or self.read_only:
                raise ValueError("lease and replica_sync need a writable Journal with a replica=URL")
            leases = None
            if lease:
                place = f"{socket.gethostname()}:{os.path.abspath(self.root)}"
                leases = Leases(self.replicator.store, ttl=lease_ttl, wait=lease_wait, place=place)
        except BaseException:
            self.close()  # the Journal is not returned: release what __init__ opened
            raise
        gate = LeaseGate(self, self.replicator, leases, replica_sync)
        if leases is not None:
            self.replicator.epoch_of = gate.epoch
            self.replicator.fence = lease_fence(self.replicator.store, cached=False)
        return gate

    def _stop_leases(self: LeaseHost) -> None:
        self._gate.close()

    def _lease_epoch(self: LeaseHost, session_id: str) -> int | None:
        return self._gate.epoch(session_id)

    def handoff(self: LeaseHost, session_id: str, *, timeout: float | None = None) -> int:
        """Hand the session over to another host: sync it to the replica, then release its
        lease (taking it first if this `Journal` does not hold it); the seq the replica holds
        it through. The other host then calls `take(session_id)` (or restores it).

        Raises:
            LeaseHeldError: another host holds the lease (past `lease_wait`).
            LeaseLostError: the lease was lost before it could be released.
            ReplicaError: the sync failed or timed out (the lease is kept).
        """
        gate = _lease_gate(self, "handoff")
        return gate.handoff(session_id, timeout)

    def take(self: LeaseHost, session_id: str, *, wait: float | None = None) -> int:
        """Take the session over from another host: wait up to `wait` seconds (default:
        `lease_wait`) for its lease to be released or expire, restore the session from the
        replica (or catch this store's copy up), then take the lease; its epoch.

        Raises:
            LeaseHeldError: another host still holds the lease after the wait.
            LeaseError: this store's copy and the replica's forked.
        """
        gate = _lease_gate(self, "take")
        leases = gate.leases
        if leases is None:
            raise ValueError("take needs lease=True")
        if session_id in leases.held():
            return leases.epoch(session_id)
        deadline = time.monotonic() + (leases.wait if wait is None else wait)
        for _ in range(_TAKE_ATTEMPTS):
            _wait_until_free(leases, session_id, deadline)
            _catch_up(self, gate.shipper.store, session_id)
            try:
                return gate.acquire(session_id, 0.0)
            except LeaseBehindError:
                continue  # the replica grew meanwhile: catch up again
            except LeaseHeldError:
                if time.monotonic() >= deadline:
                    raise
        raise LeaseError(f"{gate.shipper.store.url}/{lease_key(session_id)}", "the replica kept growing")


def _lease_gate(host: LeaseHost, what: str) -> LeaseGate:
    gate = host._gate
    if not isinstance(gate, LeaseGate):
        raise ValueError(f"{what} needs a replica with lease=True or replica_sync=True")
    return gate


def _wait_until_free(leases: Leases, session_id: str, deadline: float) -> None:
    """Return once no other host holds a live lease on the session, or raise `LeaseHeldError`."""
    while True:
        found = read_lease(leases.store, session_id)
        if found is None or not found[0].live(time.time()):
            return
        record = found[0]
        if time.monotonic() >= deadline:
            where = f"{leases.store.url}/{lease_key(session_id)}"
            raise LeaseHeldError(where, str(record.holder), record.expires_at)
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0.001)))


def _catch_up(host: LeaseHost, store: ObjectStore, session_id: str) -> None:
    """Bring this store's copy of the session up to the replica's: restore it if missing; if
    it is behind and a prefix of the replica's history (its last record is the replica's
    record at that seq, checksum for checksum), append the records it lacks in place, byte
    for byte (`catchup`); a copy that forked is left untouched for `first_seq` to refuse."""
    from .catchup import MISSING, catch_up_session
    from .chain import head
    from .restore import restore_session

    fenced = lease_fence(store)
    state = host.state(session_id)
    if state is not None:
        if state.last_seq >= head(store, naming.encode_id(session_id), session_id, fenced)[0]:
            return  # not behind (one object read): `first_seq` judges a copy ahead
        if catch_up_session(host, store, session_id, fence=fenced).status != MISSING:
            return
    restore_session(host, store, session_id, fence=fenced)
    host.reopen(session_id)
