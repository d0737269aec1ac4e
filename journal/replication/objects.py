"""The object store a replica lives in: a bucket (S3, GCS, Azure, MinIO, ...) or a directory.

Strategy: the replication layer needs five operations of a bucket, each with the guarantee
S3 gives today: a create-only put (`If-None-Match: *`), a compare-and-swap put on the ETag
(`If-Match`), get, list by prefix, delete. `ObjectStore` is that contract; `open_store(url)`
picks the backend (`file://` a directory, journal's own code; `s3://`, `gs://`, `az://`
through the optional `obstore` package, imported only here and only when such a URL is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import JournalError


class ReplicaError(JournalError):
    """The replica cannot be used: an unknown URL scheme, a missing client package, a bucket
    that refuses the request. `reason` says which."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.path = url
        self.reason = reason


class ObjectExists(ReplicaError):
    """A create-only put found an object under that key already."""


class PreconditionFailed(ReplicaError):
    """A compare-and-swap put found another ETag than the one it was given (or none)."""


class ObjectMissing(ReplicaError):
    """No object under that key."""


class ReplicaConflictError(ReplicaError):
    """Two writers: the bucket holds other records than this store under the same session
    (different bytes under an existing name, or a history this store's log does not extend)."""


class ReplicaCorruptionError(ReplicaError):
    """An object that does not check out (checksum, header, numbering): never used."""


class ReplicaTimeout(ReplicaError):
    """`sync` gave up before the bucket held everything asked for; `reason` says why."""


class RestoreConflictError(ReplicaError):
    """A restore would write over a session this store already has: nothing was written."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    """A bucket (or a directory standing in for one), keys relative to the replica's prefix."""

    url: str

    def put_new(self, key: str, data: bytes) -> str:
        """Create `key` with `data`; its ETag. Raises `ObjectExists` if it exists."""
        ...

    def put_if(self, key: str, data: bytes, etag: str | None) -> str:
        """Replace `key` only if its ETag is `etag` (None: only if it does not exist); the new
        ETag. Raises `PreconditionFailed` otherwise."""
        ...

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag. Raises `ObjectMissing`."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; no error if it is gone."""
        ...
