"""A full disk: appends fail with `DurabilityError`, nothing earlier is lost, and appends
succeed again once space is freed.

Strategy: the scenario runs on the simulated disk with a 64 KiB capacity, and on a real 64 KiB
tmpfs that the test mounts (we run as root in CI). Whether mounting works is found out once, at
collection: where it does not, the second run is named `simulated-because-mount-failed` (never
`tmpfs`) and a warning in pytest's summary gives mount's reason, so the fallback cannot pass
for the real disk. Either way a ballast file takes part of the space so that deleting it
frees room, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from simdisk import SimDisk

from journal import DurabilityError, Journal
from journal.log.fs import FileSystem, OsFileSystem

SID = "chat"
SIZE = 64 * 1024


def mount_tmpfs(mount_point: str) -> str | None:
    """Mount a 64 KiB tmpfs at `mount_point`; None, or why it could not."""
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", mount_point],
            capture_output=True,
            check=False,
        )
    except OSError as exc:  # no mount binary
        return str(exc)
    return None if mounted.returncode == 0 else mounted.stderr.decode(errors="replace").strip() or "failed"


def _probe_mount() -> str | None:
    with tempfile.TemporaryDirectory() as probe:
        reason = mount_tmpfs(probe)
        if reason is None:
            subprocess.run(["umount", "-l", probe], check=False)
    return reason


MOUNT_FAILS = _probe_mount()
REAL = "tmpfs" if MOUNT_FAILS is None else "simulated-because-mount-failed"
if MOUNT_FAILS is not None:
    warnings.warn(
        f"test_disk_full: mount failed ({MOUNT_FAILS}); no real tmpfs run", UserWarning, stacklevel=1
    )


@pytest.fixture(params=[REAL, "simulated"])
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, FileSystem]]:
    """(directory on a 64 KiB file system, the FileSystem to reach it through)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if request.param == "tmpfs":
        reason = mount_tmpfs(str(mount_point))
        assert reason is None, f"mount worked at collection, not now: {reason}"
        print(f"disk full: ran on a real {SIZE // 1024} KiB tmpfs at {mount_point}")
        try:
            yield str(mount_point), OsFileSystem()
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)
        return
    print(f"disk full: ran on the simulated disk (capacity {SIZE} bytes)")
    disk = SimDisk(capacity=SIZE)
    disk.mkdir("/disk", 0o700)
    yield "/disk", disk


def fill_file(fs: FileSystem, path: str, size: int) -> None:
    fd = fs.open(path, create=True, mode=0o600)
    try:
        fs.append(fd, b"b" * size)
        fs.sync(fd)
    finally:
        fs.close(fd)


def test_appends_on_a_full_disk_fail_cleanly_and_resume_once_space_is_freed(
    small_disk: tuple[str, FileSystem],
) -> None:
    directory, fs = small_disk
    ballast = os.path.join(directory, "ballast")
    fill_file(fs, ballast, 16 * 1024)
    journal = Journal(os.path.join(directory, "store"), durability="always", segment_bytes=16 * 1024, fs=fs)
    acknowledged: list[str] = []
    failure: DurabilityError | None = None
    for i in range(10 * SIZE // 500):
        text = f"{i}:" + "x" * 500
        try:
            journal.append(SID, {"role": "user", "content": text})
        except DurabilityError as exc:
            failure = exc
            break
        acknowledged.append(text)
    assert failure is not None, "the disk never filled up"
    assert acknowledged, "not one append fitted"
    print(f"disk full after {len(acknowledged)} appends: {failure}")

    def contents(j: Journal) -> list[str]:
        return [r.data["content"] for r in j.read(SID) if r.kind == "message"]

    with pytest.raises(DurabilityError):  # still full: still refused, still nothing lost
        journal.append(SID, {"role": "user", "content": "y" * 500})
    assert contents(journal) == acknowledged
    assert Journal(os.path.join(directory, "store"), fs=fs).verify(SID).ok

    fs.unlink(ballast)
    journal.append(SID, {"role": "user", "content": "after"})
    assert contents(journal) == [*acknowledged, "after"]
    reopened = Journal(os.path.join(directory, "store"), fs=fs)
    assert contents(reopened) == [*acknowledged, "after"]
    assert reopened.verify(SID).ok
    journal.close()
    reopened.close()
