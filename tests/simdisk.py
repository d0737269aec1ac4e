"""A simulated disk for crash tests: an in-memory `journal.fs.FileSystem` that can lose power.

Strategy: the ideas of SQLite's crash VFS and LevelDB's fault-injection env. Every file is an
inode with three views: `data` (what reads see: the OS page cache), `durable` (what the platter
holds as of the file's last `sync`) and `pending`, the writes and truncates since that sync, in
order. Every directory likewise has live `entries`, `durable` entries (as of its last
`sync_dir`) and `ops`, the link/unlink/rename operations since then.

`crash(rng)` is a power loss. For every directory, each unsynced operation is kept or lost
independently (a rename is one operation, so it is atomic), replayed in order over the durable
entries; whatever is not reachable from "/" afterwards is gone, so a file whose directory entry
was lost is gone even if its data was synced. For every file, a prefix of its pending operations
is replayed over its durable bytes; a truncate in that prefix may still be lost (its size change
never reached the disk while later writes did), and the last kept write may be torn: cut short,
then padded with zeros, with garbage, or left as whatever was there before. `sync(fd)` makes a
file's bytes and size durable but not its name; `sync_dir(path)` makes the names in `path`
durable. `crash_process()` is a process crash (kill -9, or an OS crash that still flushes the
page cache): every handle and lock is gone, every written byte is kept.

Faults: `fail_sync()` makes a chosen coming `sync` raise EIO (nothing becomes durable; the bytes
stay pending, so a later crash may keep or lose them), `fail_append()` makes a chosen coming
`append` write a prefix and raise ENOSPC, and `capacity` bounds the bytes all files may hold.
`pwrite` (through `open_positional`, as a preallocating writer uses it) writes at an offset,
pending like an append, with the same faults (a failed zero fill counts in `fills_failed`, not
`appends_failed`: the writer goes on without it); a torn write into a zero-filled tail leaves the
cut, then zeros, garbage or the old (zero) bytes.
`fail_call()` makes a chosen coming `sync_dir`, `rename` or `unlink` raise EIO or ENOSPC
without doing anything (a failed directory fsync leaves its operations pending): non-fatal
faults, after which the code under test goes on. `sync_hook` runs at the start of every `sync`
(a test can `cut_power_now()` from it, e.g. inside a group commit's fsync), and
`crash_losing_unsynced()` is the power loss that keeps exactly what was synced.
Locks live in memory: one process, so a lock held by another handle fails at once.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from journal.errors import LockTimeout
from journal.log.fs import FileStat

SECTOR = 512  # a torn write garbles at most the rest of one sector after its cut point


@dataclass
class _Inode:
    is_dir: bool
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)  # ("write"|"truncate", at, data)
    entries: dict[str, int] = field(default_factory=dict)
    durable_entries: dict[str, int] = field(default_factory=dict)
    ops: list[_DirOp] = field(default_factory=list)


@dataclass(eq=False)
class _DirOp:
    """One unsynced change to a directory: `name` -> `ino` (ino None: remove), or a rename."""

    name: str
    ino: int | None
    old_name: str | None = None  # set for a rename within one directory


class PowerCut(BaseException):
    """The simulated power went off in the middle of an operation (see `cut_power_after`).

    A BaseException, like KeyboardInterrupt, so no `except OSError` in the code under test
    mistakes it for an I/O error; every later call raises it too, until `crash`."""


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class SimDisk:
    """An in-memory `journal.fs.FileSystem` with power-loss and fault injection."""

    def __init__(self, capacity: int | None = None) -> None:
        self.inodes: dict[int, _Inode] = {0: _Inode(is_dir=True)}
        self.handles: dict[int, int] = {}  # fd -> inode number
        self.locks: dict[int, int] = {}  # inode number -> fd holding its lock
        self.capacity = capacity
        self._next_ino = 1
        self._next_fd = 3
        self._clock = 0.0
        self._sync_faults: list[int] = []  # countdowns: fail the sync that finds 0
        self._append_faults: list[tuple[int, int]] = []  # (countdown, bytes written first)
        self._ops_left: int | None = None  # file system calls until the power goes off
        self.syncs = self.syncs_failed = self.appends_failed = 0
        self.fills_failed = 0  # zero fills ahead of a segment's end that failed (not records)
        self.power_losses = self.process_crashes = 0
        self._call_faults: list[tuple[str, int, int]] = []  # (call, countdown, errno)
        self.dir_syncs = self.calls_failed = 0
        self.failed_calls: list[tuple[str, str]] = []  # (call, path) of every injected failure
        self.sync_hook: Callable[[int], None] | None = None  # runs at the start of `sync(fd)`

    # -- paths -------------------------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        return [p for p in os.path.abspath(path).split("/") if p]

    def _lookup(self, path: str) -> int | None:
        ino = 0
        for part in self._parts(path):
            node = self.inodes[ino]
            if not node.is_dir or part not in node.entries:
                return None
            ino = node.entries[part]
        return ino

    def _parent(self, path: str) -> tuple[_Inode, str]:
        parts = self._parts(path)
        if not parts:
            raise _err(errno.EBUSY, path)
        parent = self._lookup("/" + "/".join(parts[:-1]))
        if parent is None or not self.inodes[parent].is_dir:
            raise _err(errno.ENOENT, path)
        return self.inodes[parent], parts[-1]

    def _new_inode(self, is_dir: bool) -> int:
        ino, self._next_ino = self._next_ino, self._next_ino + 1
        self.inodes[ino] = _Inode(is_dir=is_dir)
        return ino

    @staticmethod
    def _link(directory: _Inode, op: _DirOp) -> None:
        _apply(directory.entries, op)
        directory.ops.append(op)

    def _file(self, fd: int) -> tuple[int, _Inode]:
        if fd not in self.handles:
            raise _err(errno.EBADF, f"fd {fd}")
        ino = self.handles[fd]
        return ino, self.inodes[ino]

    # -- FileSystem: files -------------------------------------------------------------------

    def open(self, path: str, *, create: bool, mode: int) -> int:
        self._tick()
        directory, name = self._parent(path)
        ino = directory.entries.get(name)
        if ino is None:
            if not create:
                raise _err(errno.ENOENT, path)
            ino = self._new_inode(is_dir=False)
            self._link(directory, _DirOp(name, ino))
        elif self.inodes[ino].is_dir:
            raise _err(errno.EISDIR, path)
        fd, self._next_fd = self._next_fd, self._next_fd + 1
        self.handles[fd] = ino
        return fd

    def append(self, fd: int, data: bytes) -> None:
        self._tick()
        _, node = self._file(fd)
        room = len(data) if self.capacity is None else max(0, self.capacity - self.used())
        fault = _countdown_pairs(self._append_faults)
        keep = min(len(data), room, len(data) if fault is None else fault)
        if keep:
            node.pending.append(("write", len(node.data), bytes(data[:keep])))
            node.data += data[:keep]
            self._clock += 1
        if keep < len(data):
            self.appends_failed += 1
            raise _err(errno.ENOSPC, f"fd {fd}")

    def open_positional(self, path: str, *, create: bool, mode: int) -> int:
        """The descriptor `pwrite` writes through (the real one has no O_APPEND)."""
        return self.open(path, create=create, mode=mode)

    def pwrite(self, fd: int, data: bytes, offset: int) -> None:
        """Write at `offset` (a preallocated segment's end, or its zero fill); the same
        faults as `append`: a chosen write keeps a prefix and raises ENOSPC, and bytes past
        the file's end count against `capacity`."""
        self._tick()
        _, node = self._file(fd)
        grows = max(0, offset + len(data) - len(node.data))
        room = len(data) if self.capacity is None else len(data) - grows + max(0, self.capacity - self.used())
        fault = _countdown_pairs(self._append_faults)
        keep = max(0, min(len(data), room, len(data) if fault is None else fault))
        if keep:
            node.pending.append(("write", offset, bytes(data[:keep])))
            if len(node.data) < offset:
                node.data += bytes(offset - len(node.data))
            node.data[offset : offset + keep] = data[:keep]
            self._clock += 1
        if keep < len(data):
            if data.count(0) == len(data):  # a zero fill (no record line holds a NUL byte)
                self.fills_failed += 1
            else:
                self.appends_failed += 1
            raise _err(errno.ENOSPC, f"fd {fd}")

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._tick()
        return bytes(self._file(fd)[1].data[offset : offset + size])

    def size(self, fd: int) -> int:
        self._tick()
        return len(self._file(fd)[1].data)

    def truncate(self, fd: int, size: int) -> None:
        self._tick()
        _, node = self._file(fd)
        node.data = node.data[:size] + bytes(max(0, size - len(node.data)))
        node.pending.append(("truncate", size, b""))
        self._clock += 1

    def sync(self, fd: int) -> None:
        self._tick()
        _, node = self._file(fd)
        if self.sync_hook is not None:
            self.sync_hook(fd)
        self.syncs += 1
        if _countdown(self._sync_faults):
            self.syncs_failed += 1
            raise _err(errno.EIO, f"fd {fd}")
        node.durable = bytes(node.data)
        node.pending.clear()

    def close(self, fd: int) -> None:
        self._tick()
        ino, _ = self._file(fd)
        del self.handles[fd]
        if self.locks.get(ino) == fd:
            del self.locks[ino]

    def lock(self, fd: int, timeout: float) -> None:
        self._tick()
        ino, _ = self._file(fd)
        holder = self.locks.setdefault(ino, fd)
        if holder != fd:
            raise LockTimeout(f"simulated lock held by fd {holder}")

    def unlock(self, fd: int) -> None:
        self._tick()
        ino, _ = self._file(fd)
        if self.locks.get(ino) == fd:
            del self.locks[ino]

    # -- FileSystem: directories -------------------------------------------------------------

    def stat(self, path: str) -> FileStat | None:
        self._tick()
        ino = self._lookup(path)
        if ino is None:
            return None
        node = self.inodes[ino]
        return FileStat(is_dir=node.is_dir, size=len(node.data), mtime=self._clock)

    def same_file(self, fd: int, path: str) -> bool:
        self._tick()
        return self._file(fd)[0] == self._lookup(path)

    def listdir(self, path: str) -> list[str]:
        self._tick()
        ino = self._lookup(path)
        if ino is None or not self.inodes[ino].is_dir:
            return []
        return sorted(self.inodes[ino].entries)

    def mkdir(self, path: str, mode: int) -> bool:
        self._tick()
        directory, name = self._parent(path)
        if name in directory.entries:
            if not self.inodes[directory.entries[name]].is_dir:
                raise _err(errno.EEXIST, path)
            return False
        self._link(directory, _DirOp(name, self._new_inode(is_dir=True)))
        return True

    def rename(self, src: str, dst: str) -> None:
        self._tick()
        self._call_fault("rename", src)
        src_dir, src_name = self._parent(src)
        dst_dir, dst_name = self._parent(dst)
        ino = src_dir.entries.get(src_name)
        if ino is None:
            raise _err(errno.ENOENT, src)
        target = dst_dir.entries.get(dst_name)
        if target is not None and self.inodes[target].is_dir and self.inodes[target].entries:
            raise _err(errno.ENOTEMPTY, dst)
        if src_dir is dst_dir:
            self._link(src_dir, _DirOp(dst_name, ino, old_name=src_name))
        else:  # two directories, two independent entries: as on a real disk without fsync
            self._link(dst_dir, _DirOp(dst_name, ino))
            self._link(src_dir, _DirOp(src_name, None))

    def unlink(self, path: str) -> None:
        self._tick()
        self._call_fault("unlink", path)
        directory, name = self._parent(path)
        ino = directory.entries.get(name)
        if ino is None:
            raise _err(errno.ENOENT, path)
        if self.inodes[ino].is_dir:
            raise _err(errno.EISDIR, path)
        self._link(directory, _DirOp(name, None))

    def rmdir(self, path: str) -> None:
        self._tick()
        directory, name = self._parent(path)
        ino = directory.entries.get(name)
        if ino is None:
            raise _err(errno.ENOENT, path)
        if not self.inodes[ino].is_dir:
            raise _err(errno.ENOTDIR, path)
        if self.inodes[ino].entries:
            raise _err(errno.ENOTEMPTY, path)
        self._link(directory, _DirOp(name, None))

    def sync_dir(self, path: str) -> None:
        self._tick()
        self.dir_syncs += 1
        self._call_fault("sync_dir", path)  # before anything becomes durable: all stays pending
        ino = self._lookup(path)
        if ino is None or not self.inodes[ino].is_dir:
            raise _err(errno.ENOENT, path)
        node = self.inodes[ino]
        node.durable_entries = dict(node.entries)
        node.ops.clear()

    # -- faults ------------------------------------------------------------------------------

    def fail_sync(self, after: int = 0) -> None:
        """Make the sync `after` syncs from now raise EIO."""
        self._sync_faults.append(after)

    def fail_append(self, after: int = 0, written: int = 0) -> None:
        """Make the append `after` appends from now write `written` bytes, then raise ENOSPC."""
        self._append_faults.append((after, written))

    def fail_call(self, call: str, after: int = 0, code: int = errno.EIO) -> None:
        """Make the `call` ("sync_dir", "rename" or "unlink") `after` such calls from now raise
        `code` (EIO, ENOSPC) and do nothing: a fault the code under test survives."""
        if call not in ("sync_dir", "rename", "unlink"):
            raise ValueError(f"no fault injection for {call!r}")
        self._call_faults.append((call, after, code))

    def _call_fault(self, call: str, path: str) -> None:
        hit = next((code for name, n, code in self._call_faults if name == call and n == 0), None)
        self._call_faults = [
            (name, n - 1 if name == call else n, code)
            for name, n, code in self._call_faults
            if not (name == call and n == 0)
        ]
        if hit is not None:
            self.calls_failed += 1
            self.failed_calls.append((call, path))
            raise _err(hit, path)

    def cut_power_now(self) -> None:
        """The power goes off during the current call: it and every later one raise `PowerCut`."""
        self._ops_left = 0
        raise PowerCut()

    def cut_power_after(self, calls: int) -> None:
        """Let `calls` more file system calls run, then raise `PowerCut` from every call until
        `crash` picks what the disk holds: a power loss in the middle of an operation."""
        self._ops_left = calls

    def _tick(self) -> None:
        if self._ops_left is not None:
            if self._ops_left <= 0:
                raise PowerCut()
            self._ops_left -= 1

    def clear_faults(self) -> None:
        self._sync_faults.clear()
        self._append_faults.clear()
        self._call_faults.clear()

    def used(self) -> int:
        return sum(len(n.data) for n in self._reachable_files())

    # -- crashes -----------------------------------------------------------------------------

    def crash_process(self) -> None:
        """The process died: handles and locks are gone, every written byte stays."""
        self.process_crashes += 1
        self.handles.clear()
        self.locks.clear()
        self.clear_faults()
        self._ops_left = None

    def crash(self, rng: random.Random) -> None:
        """Power loss: reset this disk in place to one state the platter may hold afterwards."""
        self.power_losses += 1
        self.crash_process()
        for node in self.inodes.values():
            if node.is_dir:
                entries = dict(node.durable_entries)
                for op in node.ops:
                    if rng.random() < 0.5:
                        _apply(entries, op)
                node.entries, node.durable_entries = entries, dict(entries)
                node.ops = []
        for node in self.inodes.values():
            if not node.is_dir:
                node.data = _replay(node, rng)
                node.durable, node.pending = bytes(node.data), []

    def crash_losing_unsynced(self) -> None:
        """Power loss that keeps exactly what was synced: every unsynced byte, truncate and
        name is lost (the worst case `crash(rng)` may draw, as LevelDB's fault injection)."""
        self.power_losses += 1
        self.crash_process()
        for node in self.inodes.values():
            node.entries, node.ops = dict(node.durable_entries), []
            node.data, node.pending = bytearray(node.durable), []

    def sync_all(self) -> None:
        """The OS wrote everything back (no crash): every file and directory is durable."""
        for node in self.inodes.values():
            node.durable, node.pending = bytes(node.data), []
            node.durable_entries, node.ops = dict(node.entries), []

    # -- test helpers ------------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        ino = self._lookup(path)
        if ino is None:
            raise _err(errno.ENOENT, path)
        return bytes(self.inodes[ino].data)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Change a file's bytes at rest (bit rot): durable at once, no operation recorded."""
        ino = self._lookup(path)
        if ino is None:
            raise _err(errno.ENOENT, path)
        node = self.inodes[ino]
        node.data, node.durable, node.pending = bytearray(data), bytes(data), []

    def _reachable_files(self) -> list[_Inode]:
        out, todo = [], [0]
        while todo:
            node = self.inodes[todo.pop()]
            if node.is_dir:
                todo.extend(node.entries.values())
            else:
                out.append(node)
        return out


def _apply(entries: dict[str, int], op: _DirOp) -> None:
    if op.old_name is not None:
        if entries.get(op.old_name) != op.ino:  # the source's own link was lost: nothing to move
            return
        del entries[op.old_name]
    if op.ino is None:
        entries.pop(op.name, None)
    else:
        entries[op.name] = op.ino


def _replay(node: _Inode, rng: random.Random) -> bytearray:
    """A file's bytes after power loss: durable bytes, then a prefix of the pending operations."""
    data = bytearray(node.durable)
    kept = node.pending[: rng.randint(0, len(node.pending))]
    for index, (kind, at, payload) in enumerate(kept):
        if kind == "truncate":
            if rng.random() < 0.75:  # the size change may never have reached the disk
                data = data[:at] + bytes(max(0, at - len(data)))
            continue
        if index == len(kept) - 1 and rng.random() < 0.5:
            payload = _tear(payload, rng)
        if len(data) < at:
            data += bytes(at - len(data))
        data[at : at + len(payload)] = payload
    return data


def _tear(payload: bytes, rng: random.Random) -> bytes:
    """Cut a write short; the sector after the cut holds zeros, garbage, or its old bytes."""
    cut = rng.randint(0, len(payload) - 1)
    pad = rng.randint(0, min(SECTOR, len(payload) - cut))
    filler = rng.choice(["zeros", "garbage", "old"])
    if filler == "zeros":
        return payload[:cut] + bytes(pad)
    if filler == "garbage":
        return payload[:cut] + rng.randbytes(pad)
    return payload[:cut]


def _countdown(faults: list[int]) -> bool:
    """Tick every armed countdown; True if one reached this operation (and disarm it)."""
    hit = 0 in faults
    faults[:] = [n - 1 for n in faults if n != 0]
    return hit


def _countdown_pairs(faults: list[tuple[int, int]]) -> int | None:
    hit = next((w for n, w in faults if n == 0), None)
    faults[:] = [(n - 1, w) for n, w in faults if n != 0]
    return hit
