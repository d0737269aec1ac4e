"""Reading and writing one export file in bounded memory: JSON (optionally zstd-compressed)
read incrementally, and a file published atomically, never over another.

Strategy: an export is one JSON object that may be far larger than memory, but each of its
conversations is small enough to hold. `read_members` walks the top-level object itself and
hands out the members of the containers it is told to stream (``"conversations"``,
``"sessions"``) one at a time, each decoded by `json.JSONDecoder.raw_decode` over a text
buffer. A value cut by the buffer's end is retried after the unread text at least doubles, so
a value of n bytes costs O(n) however it falls across chunks, and garbage is reported where it
is, without reading on. Writing goes to a unique temp file beside the target (mode 0600, opened
O_EXCL|O_NOFOLLOW), fsynced, then hard-linked to the target name, which fails if anything
exists there, so a file journal did not create is never replaced, even one created meanwhile.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import zstandard

from ..errors import ExportError, InvalidArchiveError, UnsafePathError
from ..log.fs import temp_name

CHUNK = 1 << 20  # bytes read (or written) at a time
_ZSTD_CHUNK = 1 << 16  # compressed bytes fed at a time: bounds one call's output
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NOT_SPACE = re.compile(r"[^ \t\n\r]")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class BadJson(Exception):
    """Internal: the text is not the JSON expected; `reason` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Member(NamedTuple):
    """One step of `read_members`: a top-level member read whole (`sub` is None), the opening
    of a streamed container (`sub` is ``OPEN``), or one member of it (`sub`: its key or index)."""

    key: str
    sub: str | int | None
    value: Any


OPEN = -1


# -- reading ------------------------------------------------------------------------------------


class _Text:
    """Decoded text arriving in chunks, and a cursor into it."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks, self.buf, self.pos, self.base, self.eof = chunks, "", 0, 0, False
        self.decoder = json.JSONDecoder(parse_constant=_refuse_constant)

    def more(self, least: int = 1) -> bool:
        """Read on until at least `least` characters are unread (or the end), dropping what
        was consumed; False if nothing more was read. The new text is joined once: adding
        chunk after chunk to a long buffer would copy it again for every chunk."""
        parts = [self.buf[self.pos :]]
        unread = len(parts[0])
        while not self.eof and (unread < least or len(parts) == 1):
            chunk = next(self.chunks, None)
            if chunk is None:
                self.eof = True
            else:
                parts.append(chunk)
                unread += len(chunk)
        if len(parts) == 1:
            return False
        self.buf, self.base, self.pos = "".join(parts), self.base + self.pos, 0
        return True

    def peek(self) -> str:
        """The next character that is not white space, not consumed; "" at the end."""
        while True:
            match = _NOT_SPACE.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.more():
                return ""

    def take(self, expected: str) -> str:
        """Consume the next character, which must be one of `expected`."""
        found = self.peek()
        if not found or found not in expected:
            shown = repr(found) if found else "the end of the file"
            wanted = " or ".join(repr(c) for c in expected)
            raise BadJson(f"expected {wanted} at character {self.where()}, found {shown}")
        self.pos += 1
        return found

    def value(self) -> Any:
        """Decode the JSON value at the cursor, reading on while it is cut by the buffer's end."""
        if not self.peek():
            raise BadJson(f"expected a value at character {self.where()}, found the end of the file")
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or not self._cut(exc):
                    raise BadJson(f"not JSON: {exc.msg} at character {self.base + exc.pos}") from None
                self._grow()
                continue
            except RecursionError:
                raise BadJson(f"nested too deeply at character {self.where()}") from None
            except ValueError as exc:  # NaN, Infinity, a number of too many digits
                raise BadJson(f"not JSON: {exc} at character {self.where()}") from None
            if end == len(self.buf) and not self.eof:  # a number may go on in the next chunk
                self._grow()
                continue
            self.pos = end
            return value

    def _cut(self, exc: json.JSONDecodeError) -> bool:
        """Does the error come from the buffer's end (not from bad text before it)?"""
        return exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 16

    def _grow(self) -> None:
        self.more(2 * (len(self.buf) - self.pos) + CHUNK)

    def where(self) -> int:
        return self.base + self.pos


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_members(chunks: Iterator[str], streamed: dict[str, str]) -> Iterator[Member]:
    """The members of the JSON object in `chunks`, in order. A key of `streamed` must hold the
    container its value names ("{" or "[") and is handed out member by member; any other is
    decoded whole. Raises `BadJson` for anything else, including a repeated top-level key and
    text after the object."""
    text = _Text(chunks)
    if text.peek() == "\ufeff":  # a byte order mark some editors write
        text.pos += 1
    text.take("{")
    seen: set[str] = set()
    if text.peek() == "}":
        text.pos += 1
    else:
        while True:
            key = _key(text)
            if key in seen:
                raise BadJson(f"the key {key!r} appears twice")
            seen.add(key)
            yield from _member(text, key, streamed.get(key))
            if text.take(",}") == "}":
                break
    if text.peek():
        raise BadJson(f"data after the JSON object at character {text.where()}")


def _key(text: _Text) -> str:
    if text.peek() != '"':
        raise BadJson(f"expected a key at character {text.where()}")
    key = text.value()
    text.take(":")
    return str(key)


def _member(text: _Text, key: str, container: str | None) -> Iterator[Member]:
    if container is None:
        yield Member(key, None, text.value())
        return
    found = text.peek()
    if found != container:
        kind = "an object" if container == "{" else "an array"
        raise BadJson(f"{key!r} is not {kind} (it starts with {found or 'nothing'!r})")
    text.pos += 1
    yield Member(key, OPEN, None)
    closing = "}" if container == "{" else "]"
    if text.peek() == closing:
        text.pos += 1
        return
    index = 0
    while True:
        sub: str | int = _key(text) if container == "{" else index
        yield Member(key, sub, text.value())
        index += 1
        if text.take("," + closing) == closing:
            return


def open_source(path: str) -> int:
    """A descriptor of the export at `path`, which must be a regular file (a link is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise UnsafePathError(path, "a symbolic link: journal does not follow one") from exc
        raise InvalidArchiveError(path, f"cannot open it: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArchiveError(path, "not a regular file")
    return fd


def text_chunks(fd: int, path: str) -> Iterator[str]:
    """The file's text from its start (zstd-compressed or not, told by its first bytes), read
    by `pread` so that each pass over one descriptor is independent."""
    head = os.pread(fd, len(ZSTD_MAGIC), 0)
    raw = _raw_chunks(fd, _ZSTD_CHUNK if head == ZSTD_MAGIC else CHUNK)
    data = _unzstd(raw, path) if head == ZSTD_MAGIC else raw
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in data:
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text ({exc.reason})") from None


def _raw_chunks(fd: int, size: int) -> Iterator[bytes]:
    offset = 0
    while chunk := os.pread(fd, size, offset):
        offset += len(chunk)
        yield chunk


def _unzstd(raw: Iterator[bytes], path: str) -> Iterator[bytes]:
    """Decompress zstd frames one after the other; a stream that ends inside a frame (a file
    cut short) is an error, never a shorter text."""
    decompressor, started = zstandard.ZstdDecompressor().decompressobj(), False
    try:
        for chunk in raw:
            while chunk:
                started = True
                out = decompressor.decompress(chunk)
                if out:
                    yield out
                chunk = decompressor.unused_data if decompressor.eof else b""
                if decompressor.eof:
                    decompressor, started = zstandard.ZstdDecompressor().decompressobj(), False
    except zstandard.ZstdError as exc:
        raise BadJson(f"a broken zstd stream ({exc})") from None
    if started:
        raise BadJson("the zstd stream ends inside a frame: the file was cut short")


# -- writing ------------------------------------------------------------------------------------


class ExportFile:
    """An export being written to a temp file beside `path`; `publish` puts it at `path`.

    Raises:
        ExportError: something exists at `path`, its directory does not, or a write failed.
    """

    def __init__(self, path: str, compress: bool) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.lexists(path):
            raise ExportError(path, "it exists: journal never writes over a file (choose a new name)")
        if not os.path.isdir(directory):
            raise ExportError(path, f"no such directory {directory}")
        self.tmp = temp_name(path)
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except OSError as exc:
            raise ExportError(path, f"cannot create a file beside it: {exc.strerror or exc}") from exc
        self.raw: IO[bytes] = os.fdopen(fd, "wb", buffering=CHUNK)
        self.zstd = zstandard.ZstdCompressor(level=3, write_checksum=True) if compress else None
        self.out: Any = self.zstd.stream_writer(self.raw, closefd=False) if self.zstd else self.raw
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        """Add `data`; handed on in pieces of about `CHUNK` (one compressor call per piece).
        Copied into one buffer at once: each `orjson.dumps` result holds 4 KiB or more of
        memory whatever its length, so a list of them would hold ten times the data."""
        self.pending += data
        if len(self.pending) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        try:
            self.out.write(self.pending)
        except OSError as exc:
            raise ExportError(self.path, f"writing failed: {exc.strerror or exc}") from exc
        self.pending.clear()

    def publish(self) -> int:
        """Make the file durable and give it its name; return its size in bytes."""
        self._flush()
        try:
            if self.zstd is not None:
                self.out.flush(zstandard.FLUSH_FRAME)
            self.raw.flush()
            os.fsync(self.raw.fileno())
            size = os.fstat(self.raw.fileno()).st_size
            self.raw.close()
            linked = _link(self.tmp, self.path)
        except OSError as exc:
            raise ExportError(self.path, f"writing failed: {exc.strerror or exc}") from exc
        if linked:  # published: a temp name that cannot be removed is only clutter
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
        _sync_dir(os.path.dirname(os.path.abspath(self.path)))
        return size

    def discard(self) -> None:
        """Remove the temp file (ours: created with O_EXCL); the target was never touched."""
        with contextlib.suppress(OSError, ValueError, zstandard.ZstdError):
            self.raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _link(tmp: str, path: str) -> bool:
    """Give the complete file its name without replacing anything: link(2) fails on any
    existing name. True if linked (the temp name is still to remove); on a file system without
    hard links, False after a rename that follows a last check (not atomic with it)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ExportError(path, "it exists: journal never writes over a file (choose a new name)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            raise ExportError(path, "it exists: journal never writes over a file") from None
        os.rename(tmp, path)
        return False
    return True


def _sync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
