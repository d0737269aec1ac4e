"""Session id <-> directory name, and the file names inside a session (FORMAT.md, "Layout").

Strategy: a plain id (letters, digits, ``-``, ``_``, and ``.`` not first or last, not a
Windows reserved name) is its own directory name, so a listing of the store root shows the
ids. Anything else is percent-encoded over its UTF-8 bytes with upper-case hex; a plain name
never contains ``%``, so the two forms cannot meet, and `decode_id(encode_id(x)) == x`
makes the mapping injective. No encoded name contains a separator, starts with ``.`` or is
a reserved device name, so none can leave the root.
"""

from __future__ import annotations

import re

from ..errors import InvalidSessionIdError

MAX_NAME_BYTES = 240  # below every common file system's 255-byte name limit

_PLAIN = re.compile(r"[A-Za-z0-9_\-.]+")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"]
)

IDENTITY_FILE = "identity.json"
LOCK_FILE = "lock"
# The last bytes of a deleted session's lock file. Several bytes, not one: every other write to
# the lock file is one "." byte, and a write torn by a power loss may leave one byte of garbage,
# which must never read as a delete (a one-byte mark once did: the next open deleted a live
# session).
DELETED_MARK = b"<deleted>"
LOG_DIR = "log"
QUARANTINE_DIR = "quarantine"
SEGMENT_SUFFIX = ".jsonl"


def _is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].upper() in _RESERVED


def _is_plain(session_id: str) -> bool:
    return (
        _PLAIN.fullmatch(session_id) is not None
        and not session_id.startswith(".")
        and not session_id.endswith(".")
        and not _is_reserved(session_id)
    )


def encode_id(session_id: str) -> str:
    """The directory name for `session_id`; raise `InvalidSessionIdError` if it has none."""
    if not isinstance(session_id, str):
        raise TypeError(f"session id must be a str, not {type(session_id).__name__}")
    if not session_id:
        raise InvalidSessionIdError("session id is empty")
    if _is_plain(session_id):
        name = session_id
    else:
        try:
            raw = session_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidSessionIdError("session id is not valid UTF-8 (lone surrogate)") from None
        name = "".join(_escape(raw, i) for i in range(len(raw)))
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidSessionIdError(
            f"session id is too long: its directory name would be {len(name.encode())} bytes,"
            f" over {MAX_NAME_BYTES}"
        )
    return name


def _escape(raw: bytes, i: int) -> str:
    byte = raw[i]
    # The first byte is escaped too when it would make a plain-looking but unsafe name
    # (leading ".", reserved device name); the last when it is a "." Windows would strip.
    first_unsafe = i == 0 and (byte == ord(".") or _is_reserved(raw.decode("utf-8", "replace")))
    last_dot = i == len(raw) - 1 and byte == ord(".")
    if byte in _SAFE and not first_unsafe and not last_dot:
        return chr(byte)
    return f"%{byte:02X}"


def decode_id(name: str) -> str | None:
    """The session id a directory name stands for, or None if no id encodes to it."""
    if "%" not in name:
        return name if _is_plain(name) else None
    try:
        raw = bytearray()
        i = 0
        while i < len(name):
            if name[i] == "%":
                raw.append(int(name[i + 1 : i + 3], 16))
                i += 3
            else:
                raw.extend(name[i].encode("ascii"))
                i += 1
        session_id = raw.decode("utf-8")
    except (ValueError, UnicodeError, IndexError):
        return None
    try:
        return session_id if encode_id(session_id) == name else None
    except (InvalidSessionIdError, TypeError):
        return None


def segment_name(first_seq: int) -> str:
    """Log segments are named by the sequence number of their first record."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def segment_first_seq(name: str) -> int | None:
    stem = name[: -len(SEGMENT_SUFFIX)] if name.endswith(SEGMENT_SUFFIX) else ""
    if len(stem) == 20 and stem.isdigit() and int(stem) > 0:
        return int(stem)
    return None
