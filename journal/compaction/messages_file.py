"""messages.json under construction, for the compactor's fold (FORMAT.md, "Compaction").

Strategy: the file is written as the fold goes, one line per message, in flushes of about
`_FLUSH_BYTES`, and hashed as it is flushed so the view's checksum needs no second read. The
last message is held back until the next one comes, so an "edit" record can still change it;
a "pop" or a dropping edit takes the line before it back from the buffer (or the file). Lines
the fold spliced a run at a time (`splice.splice_run`) come as columns of parts, joined once.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any

import xxhash

from ..log import snapshot
from ..log.edit import applies, apply_edit
from ..log.fs import FileSystem
from ..log.pop import pop_applies
from ..log.record import Header, Record
from ..log.splice import LINE_END

_FLUSH_BYTES = 1024 * 1024
_SEPARATOR = b",\n    "  # between two lines of the message array (snapshot.separator)
_LINE_END_SEPARATOR = LINE_END + _SEPARATOR


class MessagesFile:
    """messages.json under construction: one line per message, restarted at a "clear".

    The last message is held back (`last`) until the next one comes, so an edit record can
    still change it (`log.edit`): as its line, or as a record once an edit has parsed it. When
    a pop (`log.pop`) or a dropping edit removes it, the line written before it is taken back
    from the file and held back in its place."""

    def __init__(self, fs: FileSystem, path: str, mode: int) -> None:
        self.fs, self.fd = fs, fs.open(path, create=True, mode=mode)
        self.buffer, self.flushed, self.count, self.written = bytearray(snapshot.HEAD), 0, 0, 0
        self.last: bytes | Record | None = None
        # The xxh3 of the bytes flushed so far, so the view's hash needs no second read of a
        # file as big as the log; None once bytes were taken back from the file.
        self.hasher: Any = xxhash.xxh3_64()

    def add(self, line: bytes) -> None:
        last, self.last = self.last, line
        self.count += 1
        if last is None:
            return
        # `_write_last` inline: a compaction adds every message of the history here.
        buffer = self.buffer
        buffer += b",\n    " if self.written else b"\n    "  # snapshot.separator
        buffer += last if isinstance(last, bytes) else snapshot.encode_message(last)
        self.written += 1
        if len(buffer) >= _FLUSH_BYTES:
            self._flush(bytes(buffer))
            self.buffer = bytearray()

    def add_spliced(self, columns: list[Sequence[bytes]]) -> None:
        """`add` each line `splice.splice_run` gave in parts, in order, joined once."""
        last, self.last = self.last, b"".join([column[-1] for column in columns] + [LINE_END])
        count = len(columns[0])
        self.count += count
        rest = [column[:-1] for column in columns]
        pieces = list(chain.from_iterable(zip(*rest, repeat(_LINE_END_SEPARATOR))))
        if last is not None:
            pieces[:0] = (last if isinstance(last, bytes) else snapshot.encode_message(last), _SEPARATOR)
        if not pieces:
            return
        pieces[-1] = LINE_END if count > 1 else b""  # no separator after the last line written
        first = _SEPARATOR if self.written else _SEPARATOR[1:]  # snapshot.separator
        self.written += count - 1 + (last is not None)
        joined = b"".join([self.buffer, first, *pieces])  # the one copy of these bytes
        if len(joined) >= _FLUSH_BYTES:
            self._flush(joined)
            self.buffer = bytearray()
        else:
            self.buffer = bytearray(joined)

    def edit(self, header: Header, edit: Any) -> None:
        """Fold one edit record into the held-back last message, if it applies to it."""
        if self.last is None and self.written:  # a drop or a pop made the line before it last
            self._take_back()
        if self.last is None:
            return
        last = self.last if isinstance(self.last, Record) else snapshot.decode_message(self.last)
        if not applies(edit, last):
            return
        edited = apply_edit(edit, last, header.ts)
        self.last = edited
        if edited is None:
            self.count -= 1

    def pop(self, pop: Any) -> None:
        """Fold one pop record (`log.pop`): the last message goes if it is the one it names,
        and the message before it, already written, is held back again in its place."""
        if self.last is None and self.written:
            self._take_back()
        if self.last is None:
            return
        last = self.last if isinstance(self.last, Record) else snapshot.decode_message(self.last)
        if pop_applies(pop, last):
            self.last = None
            self.count -= 1

    def _take_back(self) -> None:
        """Un-write the last written line and hold it back again. Lines hold no raw newline
        (compact JSON), so it starts after the last newline, that of its separator (a comma
        before it but for the first line); flushed bytes are read back from the file until
        the buffer holds that separator (at most a line and a flush)."""
        while self.flushed and b"\n" not in self.buffer[1:]:
            take = min(self.flushed, _FLUSH_BYTES)
            self.buffer[:0] = self.fs.pread(self.fd, take, self.flushed - take)
            self.flushed -= take
            self.hasher = None
            self.fs.truncate(self.fd, self.flushed)
        start = self.buffer.rindex(b"\n")
        self.last = bytes(self.buffer[start + len(snapshot.separator(0)) :])
        self.written -= 1
        del self.buffer[start - (1 if self.written else 0) :]  # and its separator's comma

    def _write_last(self) -> None:
        last, self.last = self.last, None
        if last is None:
            return
        self.buffer += snapshot.separator(self.written)
        self.buffer += last if isinstance(last, bytes) else snapshot.encode_message(last)
        self.written += 1
        if len(self.buffer) >= _FLUSH_BYTES:
            self._flush(bytes(self.buffer))
            self.buffer = bytearray()

    def _flush(self, data: bytes) -> None:
        self.fs.append(self.fd, data)
        self.flushed += len(data)
        if self.hasher is not None:
            self.hasher.update(data)

    def restart(self) -> None:
        if self.flushed:
            self.fs.truncate(self.fd, 0)
            self.flushed = 0
        self.buffer, self.count, self.written, self.last = bytearray(snapshot.HEAD), 0, 0, None
        self.hasher = xxhash.xxh3_64()

    def finish(self, tail: bytes) -> tuple[int, str | None]:
        """Write the rest and `tail`, durably; return the file's size and its xxh3 (None if
        it must be read back to know it)."""
        self._write_last()
        self._flush(bytes(self.buffer) + tail)
        self.fs.sync(self.fd)
        self.close()
        return self.flushed, None if self.hasher is None else str(self.hasher.hexdigest())

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            self.fs.close(fd)
