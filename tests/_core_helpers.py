"""Shared helpers for the journal core tests.

Strategy: faults and counts are injected through the one narrow `FileSystem` interface, by
subclassing the real `OsFileSystem`, so the code under test runs unchanged on real files.
Everything else here reads a store's bytes back for assertions.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from journal import Journal, Record
from journal.log.fs import OsFileSystem
from journal.log.naming import LOG_DIR, QUARANTINE_DIR


def message(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


def contents(records: Iterator[Record] | list[Record]) -> list[Any]:
    return [r.data.get("content") if isinstance(r.data, dict) else None for r in records]


def segment_paths(session_dir: str | Path) -> list[Path]:
    """The log segments of a session directory, oldest first."""
    return sorted((Path(session_dir) / LOG_DIR).glob("*.jsonl"))


def active_segment(session_dir: str | Path) -> Path:
    return segment_paths(session_dir)[-1]


def quarantined(session_dir: str | Path) -> list[bytes]:
    """The content of every file kept in the session's quarantine directory."""
    directory = Path(session_dir) / QUARANTINE_DIR
    if not directory.is_dir():
        return []
    return [p.read_bytes() for p in sorted(directory.iterdir())]


def snapshot(directory: str | Path) -> dict[str, bytes]:
    """Every file under `directory` by relative path, with its bytes: compare for identity."""
    root = Path(directory)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def line_ends(data: bytes) -> list[int]:
    """Offsets just past each newline: the ends of complete lines."""
    return [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]


class CountingFileSystem(OsFileSystem):
    """The real OS, counting file fsyncs and appends (thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self._count_lock = threading.Lock()
        self.syncs = 0
        self.appends = 0

    def sync(self, fd: int) -> None:
        with self._count_lock:
            self.syncs += 1
        super().sync(fd)

    def append(self, fd: int, data: bytes) -> None:
        with self._count_lock:
            self.appends += 1
        super().append(fd, data)


class SlowSyncFileSystem(OsFileSystem):
    """The real OS with an fsync that takes at least a millisecond, as on a slow disk: it
    widens the window in which batch appenders wait on a group commit."""

    def sync(self, fd: int) -> None:
        time.sleep(0.001)
        super().sync(fd)


class FaultyFileSystem(OsFileSystem):
    """The real OS, with switchable faults: fsync fails with EIO, or a write stores only
    half of its bytes and then fails with ENOSPC (what a full disk does)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_sync = False
        self.fail_write = False

    def sync(self, fd: int) -> None:
        if self.fail_sync:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().sync(fd)

    def append(self, fd: int, data: bytes) -> None:
        if self.fail_write:
            super().append(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().append(fd, data)


def append_worker(root: str, session_id: str, worker: int, count: int, writers: int) -> list[int]:
    """A process that appends `count` messages "w<worker>:<i>" and returns their seqs.

    It starts appending once all `writers` processes are up (a barrier made of files next to
    the store), so they really contend for the lock. Lives at module level so
    `multiprocessing` can start it with the spawn method.
    """
    with Journal(root, durability="batch") as journal:
        gate = Path(root).parent / "ready"
        gate.mkdir(exist_ok=True)
        (gate / str(worker)).touch()
        deadline = time.monotonic() + 60
        while len(list(gate.iterdir())) < writers and time.monotonic() < deadline:
            time.sleep(0.001)
        return [journal.append(session_id, message(f"w{worker}:{i}")) for i in range(count)]
