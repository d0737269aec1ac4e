"""Runs: the objects a replica is made of, their names and their format (FORMAT.md, "Replicas").

Strategy: a *run* is a stretch of one session's record lines, copied byte for byte from its
log (seals included), always whole batches, shipped once. Its object is

    sessions/<session dir name>/log/<first seq:020d>.e<epoch:010d>.jsonl.zst

one zstd frame (content size and checksum set) whose content is a header line, then the
lines. The name carries the first seq and the writer's lease epoch (0 without a lease), not
the last seq: the name is the slot a create-only put claims, so two writers of one session
that start a run at the same seq collide on it, whatever each has to ship. The header holds
the range, the epoch, the record checksum of the line before the run (`prev`: runs chain, so
a restore never splices two histories) and the XXH3-64 of the lines; decoding checks all of
it and every line by the log's own rules. A retention pass (`compact.py`) adds *merged*
runs, `<first:020d>.e<epoch:010d>.m<last:020d>.jsonl.zst`: the same lines as the runs they
cover, under a `"format":2` header; name and header must agree. Pure encode/decode plus
listing; no local files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash
import zstandard

from ..errors import CorruptionError, UnsupportedFormatError
from ..log import naming
from ..log.archive_file import RunChecker
from .objects import ObjectStore, ReplicaCorruptionError

RUN_FORMAT = 1  # a run as the replicator ships it
MERGED_FORMAT = 2  # a merged run (`compact.py`); a reader of this version reads both
SESSIONS_DIR = "sessions"
RUN_SUFFIX = ".jsonl.zst"
MAX_CONTENT = 1 << 31  # a frame declaring more is refused before it is decompressed
_RUN_NAME = re.compile(r"(\d{20})\.e(\d{10})(?:\.m(\d{20}))?\.jsonl\.zst")
_HEADER_KEYS = ("format", "session_id", "first", "last", "epoch", "prev", "bytes", "xxh3")
_CHECKSUM = slice(9, 25)  # the 16 hex digits of a record line's "xxh3" field


@dataclass(frozen=True)
class RunRef:
    """A run object as listed: its key, the first seq and epoch its name gives, and for a
    merged run (`<first>.e<epoch>.m<last>`) the last seq (0: a shipped run, whose name does
    not say); `modified` as the listing gave it (0.0 when not listed)."""

    key: str
    first: int
    epoch: int
    last: int = 0
    modified: float = 0.0


@dataclass(frozen=True)
class Run:
    """A run object decoded and checked. `raw` is the record lines exactly as in the log;
    `last_checksum` is the xxh3 field of its last line (the next run's `prev`)."""

    session_id: str
    first: int
    last: int
    epoch: int
    prev: str
    raw: bytes
    last_checksum: str


def session_prefix(dir_name: str) -> str:
    return f"{SESSIONS_DIR}/{dir_name}/"


def run_key(dir_name: str, first: int, epoch: int) -> str:
    return f"{session_prefix(dir_name)}log/{first:020d}.e{epoch:010d}{RUN_SUFFIX}"


def line_checksum(line: bytes) -> str:
    """The xxh3 field of a record line (checked already by whoever read the line)."""
    return line[_CHECKSUM].decode("ascii")


def merged_key(dir_name: str, first: int, epoch: int, last: int) -> str:
    """The name of a merged run of records `first`..`last` (FORMAT.md, "Retention")."""
    return f"{session_prefix(dir_name)}log/{first:020d}.e{epoch:010d}.m{last:020d}{RUN_SUFFIX}"


def list_runs(store: ObjectStore, dir_name: str) -> list[RunRef]:
    """The session's run objects, by first seq, then epoch, then last seq (a shipped run
    before the merged ones that start there). Other names are not runs."""
    prefix = f"{session_prefix(dir_name)}log/"
    refs = []
    for info in store.list(prefix):
        match = _RUN_NAME.fullmatch(info.key[len(prefix) :])
        if match is None or int(match[1]) == 0:
            continue
        last = int(match[3]) if match[3] is not None else 0
        if match[3] is None or last >= int(match[1]):
            refs.append(RunRef(info.key, int(match[1]), int(match[2]), last, info.modified))
    return sorted(refs, key=lambda ref: (ref.first, ref.epoch, ref.last))


def list_session_dirs(store: ObjectStore) -> list[str]:
    """The directory names of every session the replica holds a run of, sorted."""
    names = set()
    for info in store.list(f"{SESSIONS_DIR}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[2] == "log" and naming.decode_id(parts[1]) is not None:
            names.add(parts[1])
    return sorted(names)


def encode_run(
    session_id: str, first: int, epoch: int, prev: str, raw: bytes, level: int = 3, merged: bool = False
) -> bytes:
    """The object of a run of whole record lines `raw` numbered from `first` (`merged`: of a
    merged run, format 2)."""
    last = first + raw.count(b"\n") - 1
    header = {
        "format": MERGED_FORMAT if merged else RUN_FORMAT,
        "session_id": session_id,
        "first": first,
        "last": last,
        "epoch": epoch,
        "prev": prev,
        "bytes": len(raw),
        "xxh3": xxhash.xxh3_64_hexdigest(raw),
    }
    content = orjson.dumps(header) + b"\n" + raw
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(content)


def decode_run(where: str, blob: bytes, ref: RunRef | None = None) -> Run:
    """Decode and check a run object (`where` names it in errors).

    Raises:
        ReplicaCorruptionError: the frame, the header, the checksum, a line, the numbering,
            or the name does not check out; nothing of it may be used.
        UnsupportedFormatError: a header of another format version.
    """
    content = _decompress(where, blob)
    newline = content.find(b"\n")
    header = _header(where, content[: max(newline, 0)])
    raw = content[newline + 1 :]
    if len(raw) != header["bytes"] or xxhash.xxh3_64_hexdigest(raw) != header["xxh3"]:
        raise ReplicaCorruptionError(where, "checksum mismatch: the lines are not what was uploaded")
    if ref is not None and (ref.first, ref.epoch) != (header["first"], header["epoch"]):
        raise ReplicaCorruptionError(where, "the header's first seq or epoch is not the name's")
    if ref is not None and (ref.last != 0) != (header["format"] == MERGED_FORMAT):
        raise ReplicaCorruptionError(where, "a merged run's name on a shipped run, or the reverse")
    if ref is not None and ref.last not in (0, header["last"]):
        raise ReplicaCorruptionError(where, "the header's last seq is not the name's")
    last_line = _check_lines(where, raw, header["first"], header["last"])
    return Run(
        header["session_id"],
        header["first"],
        header["last"],
        header["epoch"],
        header["prev"],
        raw,
        line_checksum(last_line),
    )


def _decompress(where: str, blob: bytes) -> bytes:
    try:
        declared = zstandard.get_frame_parameters(blob).content_size
        if declared == zstandard.CONTENTSIZE_UNKNOWN or declared > MAX_CONTENT:
            raise ReplicaCorruptionError(where, f"zstd frame declares {declared} bytes of content")
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        content = decompressor.decompress(blob)
        if not decompressor.eof or decompressor.unused_data or len(content) != declared:
            raise ReplicaCorruptionError(where, "zstd frame cut short, or bytes after it")
        return content
    except zstandard.ZstdError as exc:
        raise ReplicaCorruptionError(where, f"not a zstd frame that decompresses: {exc}") from None


def _header(where: str, line: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ReplicaCorruptionError(where, "the header line is not JSON") from None
    if not isinstance(header, dict):
        raise ReplicaCorruptionError(where, "the header line is not an object")
    if header.get("format") not in (RUN_FORMAT, MERGED_FORMAT):
        raise UnsupportedFormatError(where, header.get("format"))
    ints = ("first", "last", "epoch", "bytes")
    if (
        sorted(header) != sorted(_HEADER_KEYS)
        or any(type(header[k]) is not int or header[k] < 0 for k in ints)
        or not all(isinstance(header[k], str) for k in ("session_id", "prev", "xxh3"))
        or header["first"] < 1
        or header["last"] < header["first"]
    ):
        raise ReplicaCorruptionError(where, f"not a run header: {line[:200]!r}")
    return header


def _check_lines(where: str, raw: bytes, first: int, last: int) -> bytes:
    """Check every line as the log does (checksum, numbering, whole batches); the last one."""
    checker = RunChecker(where, first, payloads=False)
    pos, line = 0, b""
    try:
        while pos < len(raw):
            end = raw.find(b"\n", pos) + 1 or len(raw)
            line = raw[pos:end]
            checker.check(line)
            pos = end
    except CorruptionError as exc:
        raise ReplicaCorruptionError(where, exc.reason) from None
    if checker.batch_left or checker.next_seq != last + 1 or not line:
        raise ReplicaCorruptionError(where, f"the lines do not end in a whole batch at seq {last}")
    return line
