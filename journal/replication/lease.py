"""Leases: one writer per session across hosts, through a lease object in the bucket.

Strategy: FORMAT.md, "Replicas" > "Leases". The lease of a session is one small JSON object,
`leases/<dir name>.json`, created create-only and then only ever replaced by a compare-and-swap
on its ETag, so of two hosts that race for it exactly one put succeeds. It names its holder, an
epoch that grows with every acquisition, and an expiry; a thread renews every held lease at a
third of the TTL. The holder trusts its lease until `ttl - margin` after the start of its last
successful put (the monotonic clock: no call to the bucket per append); after that, or once a
renewal is refused because another host took the lease, the session is *lost* and its appends
raise `LeaseLostError` until taken again. The epochs history in the lease object fences the
uploads: records of epoch e count only below the first seq of the next epoch (`fence`), so a
stalled writer's late upload is ignored by a restore and never resurrects anything.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import orjson

from ..errors import JournalError, UnsupportedFormatError
from ..log import naming
from .objects import ObjectExists, ObjectMissing, ObjectStore, PreconditionFailed, ReplicaError

LEASE_FORMAT = 1
LEASE_DIR = "leases"
DEFAULT_TTL = 30.0
POLL_SECONDS = 0.1  # how often a waiting acquire looks at the lease again (at most)

# (epoch, first seq written under it); epoch 0 stands for writes made without a lease.
Epoch = tuple[int, int]


class LeaseError(JournalError):
    """A lease cannot be taken, kept or used; `path` is the lease object's URL."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LeaseHeldError(LeaseError):
    """Another host holds the session's lease: `holder` until `expires_at` (epoch seconds)."""

    def __init__(self, path: str, holder: str, expires_at: float) -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
        super().__init__(path, f"the session is leased by {holder} until {when}")
        self.holder = holder
        self.expires_at = expires_at


class LeaseLostError(LeaseError):
    """This host no longer holds the session's lease (another host took it, or it expired
    before it could be renewed); nothing more is acknowledged for the session."""


@dataclass(frozen=True)
class LeaseRecord:
    """The content of a lease object (FORMAT.md, "Leases")."""

    session_id: str
    holder: str | None  # None: released
    epoch: int
    expires_at: float  # seconds since the epoch, the holder's clock
    synced_seq: int = 0  # the replica held the session through this seq at the last release
    epochs: tuple[Epoch, ...] = ()
    place: str = ""  # the store the holder writes: "host:/absolute/root"

    def live(self, now: float) -> bool:
        """Held by someone and not expired at `now`."""
        return self.holder is not None and now < self.expires_at


# Given the lease record before an acquisition (None: never leased), the seq the first write
# under the new epoch will get; raises if this host's copy cannot go on from there.
FirstSeq = Callable[["LeaseRecord | None"], int]


def lease_key(session_id: str) -> str:
    """The key of the session's lease object, relative to the replica's prefix."""
    return f"{LEASE_DIR}/{naming.encode_id(session_id)}.json"


def encode(record: LeaseRecord) -> bytes:
    """The lease object's bytes (keys sorted, one line)."""
    body = {
        "format": LEASE_FORMAT,
        "session_id": record.session_id,
        "holder": record.holder,
        "epoch": record.epoch,
        "expires_at": record.expires_at,
        "synced_seq": record.synced_seq,
        "epochs": [list(e) for e in record.epochs],
        "place": record.place,
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode(data: bytes, path: str) -> LeaseRecord:
    """A lease object's record.

    Raises:
        UnsupportedFormatError: another format version than 1.
        LeaseError: bytes that are not a lease object.
    """
    try:
        body = orjson.loads(data)
        version = body["format"]
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise LeaseError(path, f"not a lease object: {exc}") from None
    if version != LEASE_FORMAT:
        raise UnsupportedFormatError(path, version)
    try:
        epochs = tuple((int(e), int(first)) for e, first in body["epochs"])
        holder = body["holder"]
        return LeaseRecord(
            str(body["session_id"]),
            None if holder is None else str(holder),
            int(body["epoch"]),
            float(body["expires_at"]),
            int(body["synced_seq"]),
            epochs,
            str(body["place"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LeaseError(path, f"not a lease object: {exc!r}") from None


def fence(record: LeaseRecord | None, epoch: int, first: int, last: int) -> tuple[int, int] | None:
    """The records `first..last` of an object uploaded under `epoch` that a restore may use, or
    None: records of epoch e count from the first seq of e (epoch 0: 1) up to, not including,
    the first seq of the next epoch in the lease's history; an epoch the history does not know
    (a writer that never held the lease, or one newer than the lease read) counts for nothing."""
    history: list[Epoch] = [(0, 1), *(record.epochs if record is not None else ())]
    for i, (e, start) in enumerate(history):
        if e != epoch:
            continue
        end = history[i + 1][1] - 1 if i + 1 < len(history) else last
        low, high = max(first, start), min(last, end)
        return (low, high) if low <= high else None
    return None


def read_lease(store: ObjectStore, session_id: str) -> tuple[LeaseRecord, str] | None:
    """The session's lease record and its ETag, or None if it has never been leased."""
    key = lease_key(session_id)
    try:
        data, etag = store.get(key)
    except ObjectMissing:
        return None
    return decode(data, _url(store, key)), etag


def lease_fence(
    store: ObjectStore, cached: bool = True
) -> Callable[[str, int, int, int], tuple[int, int] | None]:
    """`fence` as a restore calls it, `(session_id, epoch, first, last)`: each session's lease
    object is read once, when the restore first asks about the session (`cached=False`: on
    every call, for a long-lived replicator that must see takeovers)."""
    leases: dict[str, LeaseRecord | None] = {}

    def apply(session_id: str, epoch: int, first: int, last: int) -> tuple[int, int] | None:
        if session_id not in leases or not cached:
            found = read_lease(store, session_id)
            leases[session_id] = None if found is None else found[0]
        return fence(leases[session_id], epoch, first, last)

    return apply


def make_holder() -> str:
    """A holder id unique to this process and call: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _url(store: ObjectStore, key: str) -> str:
    return f"{store.url.rstrip('/')}/{key}"


@dataclass
class Held:
    """A lease this process holds (or held: `lost` says why not any more)."""

    record: LeaseRecord
    etag: str
    valid_until: float  # time.monotonic(): trusted until then
    lost: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one put at a time


class Leases:
    """The leases one `Journal` holds in one replica, and the thread that renews them.

    Args:
        store: the replica's object store.
        ttl: seconds a lease lasts without renewal; renewed every `ttl / 3`.
        wait: seconds an acquire waits for another host's lease to end (0: fail at once).
        margin: the holder stops trusting its lease this long before the TTL ends (default
            `ttl / 5`): the most the hosts' clocks may disagree by.
        place: the store this process writes, "host:/absolute/root" (recorded in the lease).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float = 0.0,
        margin: float | None = None,
        place: str = "",
    ) -> None:
        if not 0 < ttl < float("inf") or not 0 <= wait < float("inf"):
            raise ValueError(f"lease_ttl must be > 0 and lease_wait >= 0, not {ttl!r}, {wait!r}")
        self.store, self.ttl, self.wait = store, ttl, wait
        self.margin = ttl / 5 if margin is None else margin
        self.holder, self.place = make_holder(), place
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()  # guards `_held`
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the hot path --------------------------------------------------------------------------

    def check(self, session_id: str) -> bool:
        """Raise `LeaseLostError` if the session's lease was held and is lost (or its trust
        ran out); True if held and trusted, False if never taken here. No bucket call."""
        held = self._held.get(session_id)
        if held is None:
            return False
        if held.lost is None and time.monotonic() >= held.valid_until:
            held.lost = "it expired before it could be renewed"
        if held.lost is not None:
            raise LeaseLostError(_url(self.store, lease_key(session_id)), f"lease lost: {held.lost}")
        return True

    def epoch(self, session_id: str) -> int:
        """The epoch of the session's lease held here; 0 if none (the name of uploads)."""
        held = self._held.get(session_id)
        return 0 if held is None else held.record.epoch

    # -- taking, renewing, releasing -------------------------------------------------------------

    def acquire(self, session_id: str, first_seq: FirstSeq, wait: float | None = None) -> LeaseRecord:
        """Take the session's lease: create it, or replace a released or expired one with a
        new epoch; wait up to `wait` (default: the `lease_wait`) for a live one to end.
        `first_seq(previous record or None)` is the seq the first write under the new epoch
        will get; it raises (a `LeaseError`) if this host's copy of the session cannot go on
        from there (it is behind the replica).

        Raises:
            LeaseHeldError: another host holds it past the wait.
        """
        key = lease_key(session_id)
        deadline = time.monotonic() + (self.wait if wait is None else wait)
        while True:
            started, now = time.monotonic(), time.time()
            found = read_lease(self.store, session_id)
            if found is not None and found[0].live(now) and found[0].holder != self.holder:
                record = found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LeaseHeldError(_url(self.store, key), str(record.holder), record.expires_at)
                time.sleep(min(left, POLL_SECONDS, max(record.expires_at - now, 0.001)))
                continue
            old = None if found is None else found[0]
            record = self._next(session_id, old, now, first_seq(old))
            try:
                if found is None:
                    etag = self.store.put_new(key, encode(record))
                else:
                    etag = self.store.put_if(key, encode(record), found[1])
            except (ObjectExists, PreconditionFailed):
                continue  # another host got in first: look again
            with self._lock:
                self._held[session_id] = Held(record, etag, started + self.ttl - self.margin)
            self._start()
            return record

    def _next(self, session_id: str, old: LeaseRecord | None, now: float, first_seq: int) -> LeaseRecord:
        epoch = 1 if old is None else old.epoch + 1
        history = () if old is None else old.epochs
        synced = 0 if old is None else old.synced_seq
        history = (*history, (epoch, first_seq))
        return LeaseRecord(session_id, self.holder, epoch, now + self.ttl, synced, history, self.place)

    def renew(self, session_id: str) -> bool:
        """Extend the session's lease by a TTL; False (and the lease lost) if another host
        took it or it could not be renewed in time. A failed request is tried again later."""
        held = self._held.get(session_id)
        if held is None or held.lost is not None:
            return False
        with held.lock:
            started, now = time.monotonic(), time.time()
            if started >= held.valid_until:
                held.lost = "it expired before it could be renewed"
                return False
            record = replace(held.record, expires_at=now + self.ttl)
            try:
                etag = self.store.put_if(lease_key(session_id), encode(record), held.etag)
            except PreconditionFailed:
                held.lost = "another host took it"
                return False
            except (ReplicaError, OSError):
                return True  # the bucket did not answer: try again before the trust runs out
            held.record, held.etag = record, etag
            held.valid_until = started + self.ttl - self.margin
        return True

    def release(self, session_id: str, synced_seq: int | None = None) -> bool:
        """Give the session's lease up (the replica holds it through `synced_seq`); False if
        it was not held or already lost."""
        with self._lock:
            held = self._held.pop(session_id, None)
        if held is None or held.lost is not None:
            return False
        with held.lock:
            synced = held.record.synced_seq if synced_seq is None else synced_seq
            record = replace(held.record, holder=None, expires_at=time.time(), synced_seq=synced)
            try:
                self.store.put_if(lease_key(session_id), encode(record), held.etag)
            except PreconditionFailed:
                return False
        return True

    def release_all(self) -> None:
        """Release every lease held (at close, after the final sync)."""
        for session_id in list(self._held):
            with contextlib.suppress(ReplicaError, OSError):  # else it expires after the TTL
                self.release(session_id)

    def held(self) -> list[str]:
        """The sessions whose lease is held, not lost and still trusted."""
        now = time.monotonic()
        return [sid for sid, held in list(self._held.items()) if held.lost is None and now < held.valid_until]

    def forget(self, session_id: str) -> None:
        """Stop holding (or remembering a lost) lease without touching the bucket."""
        with self._lock:
            self._held.pop(session_id, None)

    # -- the renewal thread ----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._renew_loop, name="journal-lease", daemon=True)
                self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            for session_id in self.held():
                try:
                    self.renew(session_id)
                except Exception:  # never let the thread die: the trust then runs out
                    continue

    def close(self, release: bool = True) -> None:
        """Stop renewing; with `release`, give every held lease up."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if release:
            self.release_all()

    def forked(self) -> Leases:
        """In a child of `fork()`: a keeper that holds nothing (the parent's leases stay the
        parent's), with a holder id of its own."""
        return Leases(
            self.store,
            ttl=self.ttl,
            wait=self.wait,
            margin=self.margin,
            place=self.place,
        )
