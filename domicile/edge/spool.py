"""A bounded, durable, crash-safe on-disk queue of messages waiting for the link to come back.

Each entry is one file, written to a temporary name, fsync'd, renamed into place, and the folder
fsync'd: once `append` returns, the entry survives a crash or power loss. A crash mid-write leaves
only a `.tmp` file, which recovery deletes (it was never acknowledged). Entries carry a CRC, so a
torn or damaged file is set aside, never replayed as garbage. When full, the oldest entries are
evicted and counted.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"DSP1"
_HEADER = struct.Struct(">4sHI")  # magic, topic length, payload length
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    topic: str
    payload: bytes


class SpoolError(Exception):
    pass


class Spool:
    def __init__(self, directory: Path | str, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.evicted = 0
        self.corrupt = 0
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        self._recover()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.msg"

    def _recover(self) -> None:
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()  # a write that never completed was never acknowledged
        for path in self.directory.glob("*.msg"):
            self._sizes[int(path.stem)] = path.stat().st_size
        self._next = max(self._sizes, default=0) + 1

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, topic: str, payload: bytes) -> int:
        """Store a message durably and return its sequence number."""
        encoded_topic = topic.encode()
        body = _HEADER.pack(MAGIC, len(encoded_topic), len(payload)) + encoded_topic + payload
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
                self.evicted += 1
            seq = self._next
            self._next += 1
            final = self._path(seq)
            tmp = final.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._fsync_dir()
            self._sizes[seq] = len(blob)
            return seq

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self, seq: int) -> SpoolEntry | None:
        blob = self._path(seq).read_bytes()
        try:
            magic, topic_len, payload_len = _HEADER.unpack_from(blob)
            body_len = _HEADER.size + topic_len + payload_len
            (crc,) = _CRC.unpack_from(blob, body_len)
            if magic != MAGIC or zlib.crc32(blob[:body_len]) != crc or len(blob) != body_len + _CRC.size:
                raise ValueError("bad magic, length or CRC")
        except (struct.error, ValueError):
            corrupt_dir = self.directory / "corrupt"
            corrupt_dir.mkdir(exist_ok=True)
            os.replace(self._path(seq), corrupt_dir / self._path(seq).name)
            self._sizes.pop(seq, None)
            self.corrupt += 1
            return None
        topic = blob[_HEADER.size : _HEADER.size + topic_len].decode()
        return SpoolEntry(seq, topic, blob[_HEADER.size + topic_len : body_len])

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
        with self._lock:
            self._path(seq).unlink(missing_ok=True)
            self._sizes.pop(seq, None)
