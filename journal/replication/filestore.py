"""`FileStore`: a directory standing in for a bucket (`file:///path`), journal's own code.

Strategy: each key is a file under the directory (its `/`-separated parts are directories).
A create-only put writes the whole object to a unique temp name beside the final one
(`<name>.tmp-<pid>-<hex>`, `O_EXCL`), fsyncs it, then hard-links it to the final name: the
link fails if that name exists, so a put never writes over an object, and the final name only
ever shows a complete, durable file (a crash leaves at most a temp, which `list` and `get`
never show). The temp name is then removed and the directory fsynced. Compare-and-swap puts
(`put_if`, rare: leases) are serialized by an `flock` on `<dir>/.lock` and publish with
temp -> fsync -> rename. The ETag is the XXH3-64 of the bytes, so it is the same for equal
content, as S3's is. Names starting with `.` and temps are never keys.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator

import portalocker
import xxhash

from ..log.fs import TEMP_MARK
from .objects import ObjectExists, ObjectInfo, ObjectMissing, PreconditionFailed, ReplicaError

_LOCK_NAME = ".lock"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def etag_of(data: bytes) -> str:
    """A file object's ETag: the XXH3-64 of its bytes, in lower-case hex."""
    return xxhash.xxh3_64_hexdigest(data)


class FileStore:
    """The `ObjectStore` contract over the directory `root` (created on the first put)."""

    def __init__(self, root: str, url: str | None = None) -> None:
        self.root = os.path.abspath(root)
        self.url = url if url is not None else f"file://{self.root}"

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        parts = key.split("/")
        for part in parts:
            if part in ("", ".", "..") or part.startswith(".") or TEMP_MARK in part:
                raise ReplicaError(f"{self.url}/{key}", "not a valid object key")
        return os.path.join(self.root, *parts)

    def _where(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _make_parents(self, path: str) -> None:
        """Create the directories above `path`, each made durable in its parent."""
        parent = os.path.dirname(path)
        if os.path.isdir(parent):
            return
        self._make_parents(parent)
        try:
            os.mkdir(parent, 0o700)
        except FileExistsError:
            return
        _sync_dir(os.path.dirname(parent))

    # -- writing ---------------------------------------------------------------------------

    def _write_temp(self, path: str, data: bytes) -> str:
        self._make_parents(path)
        temp = f"{path}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        return temp

    def _link_new(self, temp: str, path: str) -> bool:
        """Publish `temp` at `path` unless something is there; False if it was."""
        try:
            os.link(temp, path, follow_symlinks=False)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        _sync_dir(os.path.dirname(path))
        return True

    def put_new(self, key: str, data: bytes) -> str:
        """Create `key` with `data`; its ETag. Raises `ObjectExists` if it exists."""
        path = self._path(key)
        try:
            if not self._link_new(self._write_temp(path, data), path):
                raise ObjectExists(self._where(key), "an object exists under this name")
        except OSError as exc:
            raise ReplicaError(self._where(key), f"cannot write: {exc}") from exc
        return etag_of(data)

    def put_if(self, key: str, data: bytes, etag: str | None) -> str:
        """Replace `key` only if its ETag is `etag` (None: only if it does not exist)."""
        path = self._path(key)
        try:
            with self._locked():
                current = _read(path)
                found = None if current is None else etag_of(current)
                if found != etag:
                    raise PreconditionFailed(self._where(key), f"ETag is {found}, not {etag}")
                temp = self._write_temp(path, data)
                if etag is None:
                    if not self._link_new(temp, path):
                        raise PreconditionFailed(self._where(key), "an object exists under this name")
                else:
                    os.replace(temp, path)
                    _sync_dir(os.path.dirname(path))
        except OSError as exc:
            raise ReplicaError(self._where(key), f"cannot write: {exc}") from exc
        return etag_of(data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.root, 0o700, exist_ok=True)
        with open(os.path.join(self.root, _LOCK_NAME), "ab") as handle:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE)
            yield  # closing the file releases the lock

    def delete(self, key: str) -> None:
        """Remove `key`; no error if it is gone."""
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ReplicaError(self._where(key), f"cannot delete: {exc}") from exc
        _sync_dir(os.path.dirname(path))

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag. Raises `ObjectMissing`."""
        try:
            data = _read(self._path(key))
        except OSError as exc:
            raise ReplicaError(self._where(key), f"cannot read: {exc}") from exc
        if data is None:
            raise ObjectMissing(self._where(key), "no such object")
        return data, etag_of(data)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            data, etag = self.get(key)
        except ObjectMissing:
            return None
        return ObjectInfo(key, len(data), etag, os.stat(self._path(key)).st_mtime)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key. (Each ETag costs a read
        of the object: listings are for one session's objects, not for a hot path.)"""
        base, _, _ = prefix.rpartition("/")
        start = os.path.join(self.root, *base.split("/")) if base else self.root
        found: list[ObjectInfo] = []
        for key in sorted(self._keys(start, base)):
            if key.startswith(prefix):
                info = self.head(key)
                if info is not None:  # deleted meanwhile
                    found.append(info)
        return found

    def _keys(self, directory: str, key_base: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(".") or TEMP_MARK in entry.name:
                continue
            key = f"{key_base}/{entry.name}" if key_base else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._keys(entry.path, key)
            elif entry.is_file(follow_symlinks=False):
                yield key


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ReplicaError(path, "a symbolic link where an object belongs") from exc
        raise
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
