"""`CloudStore`: the `ObjectStore` contract over S3, GCS and Azure Blob, through `obstore`.

Strategy: `obstore` (Rust's object_store) gives create-only puts (`mode="create"`: S3's
`If-None-Match: *`) and compare-and-swap puts on the ETag (`mode={"e_tag": ...}`: `If-Match`),
which is all replication needs. It is an optional dependency (`pip install journal[s3]`),
imported here only, when a bucket URL is opened, so `import journal` never loads it.
Credentials and endpoint come from obstore's usual sources (for S3 the standard `AWS_*`
environment variables, `AWS_ENDPOINT_URL` included) or from the options, passed through to
`obstore.store.from_url` as keyword arguments. Two defaults are added for S3:
`conditional_put="etag"` (without it S3Store refuses compare-and-swap puts) and, when the
endpoint is a plain `http://` URL the user gave (a local MinIO or moto), `allow_http`.
obstore's errors are mapped to `ObjectExists` / `PreconditionFailed` / `ObjectMissing`, any
other to `ReplicaError` with the first line of obstore's message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .objects import ObjectExists, ObjectInfo, ObjectMissing, PreconditionFailed, ReplicaError

T = TypeVar("T")

# obstore's default retries for up to 180 s; a replicator that is told to sync within a
# timeout must hear of a bucket that is down sooner. Options may set their own.
_RETRY: dict[str, Any] = {"max_retries": 4, "retry_timeout": timedelta(seconds=20)}


class CloudStore:
    """A bucket (with an optional prefix) named by an `s3://`, `gs://` or `az://` URL."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        try:
            import obstore
            import obstore.exceptions
            from obstore.store import from_url
        except ImportError as exc:
            raise ReplicaError(url, "needs the obstore package: pip install 'journal[s3]'") from exc
        self.url = url.rstrip("/")
        self._ob = obstore
        self._errors = obstore.exceptions
        kwargs = _with_defaults(url, dict(options or {}))
        try:
            self._store = from_url(url, **kwargs)
        except Exception as exc:  # obstore raises its own errors and ValueError for bad config
            raise ReplicaError(url, f"cannot open the bucket: {_first_line(exc)}") from exc

    def _call(self, key: str, action: Callable[[], T]) -> T:
        errors = self._errors
        where = f"{self.url}/{key}"
        try:
            return action()
        except errors.AlreadyExistsError as exc:
            raise ObjectExists(where, "an object exists under this name") from exc
        except errors.PreconditionError as exc:
            raise PreconditionFailed(where, _first_line(exc)) from exc
        except FileNotFoundError as exc:
            raise ObjectMissing(where, "no such object") from exc
        except (errors.BaseError, OSError, ValueError) as exc:
            raise ReplicaError(where, _first_line(exc)) from exc

    def put_new(self, key: str, data: bytes) -> str:
        """Create `key` with `data` (`If-None-Match: *`); its ETag. Raises `ObjectExists`."""
        result = self._call(key, lambda: self._ob.put(self._store, key, data, mode="create"))
        return result["e_tag"] or ""

    def put_if(self, key: str, data: bytes, etag: str | None) -> str:
        """Replace `key` only if its ETag is `etag` (None: only if it does not exist)."""
        if etag is None:
            try:
                return self.put_new(key, data)
            except ObjectExists as exc:
                raise PreconditionFailed(exc.path, "an object exists under this name") from exc
        mode: Any = {"e_tag": etag}
        result = self._call(key, lambda: self._ob.put(self._store, key, data, mode=mode))
        return result["e_tag"] or ""

    def get(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag. Raises `ObjectMissing`."""

        def fetch() -> tuple[bytes, str]:
            result = self._ob.get(self._store, key)
            return bytes(result.bytes()), result.meta["e_tag"] or ""

        return self._call(key, fetch)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self._call(key, lambda: self._ob.head(self._store, key))
        except ObjectMissing:
            return None
        return _info(meta)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key. (obstore lists whole
        path segments, so the directory above `prefix` is listed and filtered.)"""
        base = prefix.rpartition("/")[0] or None

        def listing() -> list[ObjectInfo]:
            found = [_info(meta) for batch in self._ob.list(self._store, base) for meta in batch]
            return sorted((i for i in found if i.key.startswith(prefix)), key=lambda i: i.key)

        return self._call(prefix, listing)

    def delete(self, key: str) -> None:
        """Remove `key`; no error if it is gone."""
        try:
            self._call(key, lambda: self._ob.delete(self._store, key))
        except ObjectMissing:
            return


def _info(meta: Any) -> ObjectInfo:
    return ObjectInfo(meta["path"], int(meta["size"]), meta["e_tag"] or "", meta["last_modified"].timestamp())


def _with_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    options.setdefault("retry_config", _RETRY)
    if not url.startswith(("s3://", "s3a://")):
        return options
    config = options.get("config") or {}
    if "conditional_put" not in config:
        options.setdefault("conditional_put", "etag")
    endpoint = (
        options.get("endpoint")
        or config.get("endpoint")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT")
        or ""
    )
    if str(endpoint).startswith("http://"):
        client = dict(options.get("client_options") or {})
        client.setdefault("allow_http", True)
        options["client_options"] = client
    return options


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
