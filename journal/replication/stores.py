"""`open_store(url, options)`: the `ObjectStore` a replica URL names.

Strategy: the scheme picks the backend. `file://` is journal's own directory store
(`filestore`); `s3://`, `s3a://`, `gs://`, `az://` (and Azure's `abfs://`, `abfss://`,
`adl://`, `azure://`) go through obstore (`cloud`), imported only when such a URL is opened.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from .cloud import CloudStore
from .filestore import FileStore
from .objects import ObjectStore, ReplicaError

CLOUD_SCHEMES = frozenset({"s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure"})


def open_store(url: str, options: dict[str, Any] | None = None) -> ObjectStore:
    """The object store of a replica URL.

    Args:
        url: `file:///abs/dir` (a directory), `s3://bucket/prefix`, `gs://bucket/prefix`,
            `az://container/prefix` (obstore's URL forms).
        options: for bucket URLs, keyword arguments for `obstore.store.from_url` (e.g.
            `{"endpoint": ..., "region": ..., "access_key_id": ..., "client_options": {...}}`);
            without them obstore reads its usual environment variables (`AWS_*` for S3).

    Raises:
        ReplicaError: an unknown scheme, a file URL with a host, obstore not installed.
    """
    if not isinstance(url, str):
        raise TypeError(f"a replica URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ReplicaError(url, "a file:// URL names a local directory: file:///path")
        if options:
            raise ReplicaError(url, f"a file:// replica takes no options, not {sorted(options)}")
        path = unquote(parts.path)
        if not path:
            raise ReplicaError(url, "no directory in the URL")
        return FileStore(path, f"file://{os.path.abspath(path)}")
    if scheme in CLOUD_SCHEMES:
        return CloudStore(url, options)
    raise ReplicaError(url, "unknown replica URL scheme (file, s3, gs, az)")
