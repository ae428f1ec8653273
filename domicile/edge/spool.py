"""A bounded, durable, crash-safe on-disk queue of messages waiting for the link to come back.

Each entry is one file, written to a temporary name, fsync'd, renamed into place, and the folder
fsync'd: once `append` returns, the entry survives a crash or power loss. A crash mid-write leaves
only a `.tmp` file, which recovery deletes (it was never acknowledged). Entries carry a CRC, so a
torn or damaged file is set aside, never replayed as garbage. When full, the oldest entries are
evicted and counted.

An entry may carry the device's input cursor: the position of the first input case whose output
was not yet durable when the entry was written. The newest cursor, in an entry or in the
`cursor` file that keeps it once its entry is published and removed, is where a restarted device
resumes its input (`resume_point`); see `EdgeDevice.infer(positions=...)`.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC_V1 = b"DSP1"  # still read: entries spooled by an older release survive an upgrade
MAGIC = b"DSP2"
_HEADER_V1 = struct.Struct(">4sHI")  # magic, topic length, payload length
_HEADER = struct.Struct(">4sHIq")  # magic, topic length, payload length, input cursor (-1: none)
_CRC = struct.Struct(">I")
NO_CURSOR = -1
CURSOR_FILE = "cursor"


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    topic: str
    payload: bytes
    cursor: int | None = None


class SpoolError(Exception):
    pass


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    """Write a file and fsync it; the caller renames it into place. `mode`: O_EXCL or O_TRUNC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path | str, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.evicted = 0
        self.corrupt = 0
        self.torn_writes = 0  # `.tmp` files found at start: appends a crash interrupted
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        self._cursors: dict[int, int] = {}  # seq -> cursor, for entries read or written with one
        self._checkpoint = self._read_checkpoint()
        self._last_cursor: int | None = None
        self._recover()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.msg"

    def _recover(self) -> None:
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()  # a write that never completed was never acknowledged
            self.torn_writes += 1
        (self.directory / CURSOR_FILE).with_suffix(".partial").unlink(missing_ok=True)  # the old cursor stands
        for path in self.directory.glob("*.msg"):
            self._sizes[int(path.stem)] = path.stat().st_size
        self._next = max(self._sizes, default=0) + 1
        for seq in sorted(self._sizes, reverse=True):  # cursors only grow: the newest entry has the latest
            entry = self._read(seq)
            if entry is not None:
                self._last_cursor = entry.cursor
                break

    def _read_checkpoint(self) -> int | None:
        try:
            return int((self.directory / CURSOR_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None  # no cursor yet (a torn checkpoint is never seen: it is renamed into place)

    def resume_point(self) -> int:
        """Where a restarted device resumes its input: every case before it is spooled or published."""
        return max(self._checkpoint or 0, self._last_cursor or 0)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, topic: str, payload: bytes, cursor: int | None = None) -> int:
        """Store a message (and the input cursor after it) durably and return its sequence number."""
        encoded_topic = topic.encode()
        header = _HEADER.pack(MAGIC, len(encoded_topic), len(payload), NO_CURSOR if cursor is None else cursor)
        body = header + encoded_topic + payload
        blob = body + _CRC.pack(zlib.crc32(body))
        if len(blob) > self.max_bytes:
            raise SpoolError(f"a {len(blob)}-byte message cannot fit a {self.max_bytes}-byte spool")
        with self._lock:
            while self._sizes and (
                len(self._sizes) >= self.max_entries or sum(self._sizes.values()) + len(blob) > self.max_bytes
            ):
                oldest = min(self._sizes)
                self._path(oldest).unlink(missing_ok=True)
                del self._sizes[oldest]
                self._cursors.pop(oldest, None)
                self.evicted += 1
            seq = self._next
            self._next += 1
            final = self._path(seq)
            tmp = final.with_suffix(".tmp")
            _write_synced(tmp, blob, os.O_EXCL)  # a new seq: its file cannot exist yet
            self._place(tmp, final)
            self._sizes[seq] = len(blob)
            if cursor is not None:
                self._cursors[seq] = self._last_cursor = cursor
            return seq

    def _place(self, tmp: Path, final: Path) -> None:
        """Rename a written and fsync'd file into place, durably (the folder is fsync'd too)."""
        os.replace(tmp, final)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self, seq: int) -> SpoolEntry | None:
        blob = self._path(seq).read_bytes()
        try:
            if blob[:4] == MAGIC_V1:
                header, (_, topic_len, payload_len), cursor = _HEADER_V1, _HEADER_V1.unpack_from(blob), NO_CURSOR
            else:
                header = _HEADER
                magic, topic_len, payload_len, cursor = _HEADER.unpack_from(blob)
                if magic != MAGIC:
                    raise ValueError("bad magic")
            body_len = header.size + topic_len + payload_len
            (crc,) = _CRC.unpack_from(blob, body_len)
            if zlib.crc32(blob[:body_len]) != crc or len(blob) != body_len + _CRC.size:
                raise ValueError("bad length or CRC")
        except (struct.error, ValueError):
            corrupt_dir = self.directory / "corrupt"
            corrupt_dir.mkdir(exist_ok=True)
            os.replace(self._path(seq), corrupt_dir / self._path(seq).name)
            self._sizes.pop(seq, None)
            self.corrupt += 1
            return None
        topic = blob[header.size : header.size + topic_len].decode()
        if cursor != NO_CURSOR:
            self._cursors[seq] = cursor
        return SpoolEntry(seq, topic, blob[header.size + topic_len : body_len], None if cursor == NO_CURSOR else cursor)

    def pending(self) -> Iterator[SpoolEntry]:
        """Entries in the order they were appended."""
        for seq in sorted(self._sizes):
            with self._lock:
                if seq not in self._sizes:
                    continue
                entry = self._read(seq)
            if entry is not None:
                yield entry

    def remove(self, seq: int) -> None:
        """Forget a published entry; its cursor is checkpointed first, so a crash in between only resends it."""
        with self._lock:
            cursor = self._cursors.pop(seq, None)
            if cursor is not None and cursor > (self._checkpoint or 0):
                self._write_checkpoint(cursor)
            self._path(seq).unlink(missing_ok=True)
            self._sizes.pop(seq, None)

    def _write_checkpoint(self, cursor: int) -> None:
        final = self.directory / CURSOR_FILE
        partial = final.with_suffix(".partial")
        _write_synced(partial, str(cursor).encode(), os.O_TRUNC)
        os.replace(partial, final)
        self._fsync_dir()
        self._checkpoint = cursor
