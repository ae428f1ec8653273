"""The AWS event stream wire format, server side (what the nucleus's IPC server speaks).

A message is a prelude (total length, headers length, CRC32 of those 8 bytes), headers, payload,
and a CRC32 of everything before it; each header is a name, a type byte and a typed value
(aws-c-event-stream, `aws_event_stream_message`; the client is awscrt's, as awsiotsdk uses).
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

# header value types
BOOL_TRUE, BOOL_FALSE, BYTE, INT16, INT32, INT64, BYTES, STRING, TIMESTAMP, UUID = range(10)
# RPC message types and flags (awscrt.eventstream.rpc.MessageType / MessageFlag)
APPLICATION_MESSAGE, APPLICATION_ERROR, PING, PING_RESPONSE, CONNECT, CONNECT_ACK = range(6)
PROTOCOL_ERROR, INTERNAL_ERROR = 6, 7
CONNECTION_ACCEPTED, TERMINATE_STREAM = 1, 2


@dataclass
class Message:
    headers: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def message_type(self) -> int:
        return int(self.headers.get(":message-type", APPLICATION_MESSAGE))

    @property
    def stream_id(self) -> int:
        return int(self.headers.get(":stream-id", 0))


def encode(message: Message) -> bytes:
    headers = b""
    for name, value in message.headers.items():
        raw = name.encode()
        headers += bytes([len(raw)]) + raw
        if isinstance(value, bool):
            headers += bytes([BOOL_TRUE if value else BOOL_FALSE])
        elif isinstance(value, int):
            headers += bytes([INT32]) + struct.pack(">i", value)
        else:
            text = str(value).encode()
            headers += bytes([STRING]) + struct.pack(">H", len(text)) + text
    total = 12 + len(headers) + len(message.payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + message.payload
    return body + struct.pack(">I", zlib.crc32(body))


def _value(kind: int, data: bytes, at: int) -> tuple[Any, int]:
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return kind == BOOL_TRUE, at
    sizes = {BYTE: ">b", INT16: ">h", INT32: ">i", INT64: ">q", TIMESTAMP: ">q"}
    if kind in sizes:
        fmt = sizes[kind]
        return struct.unpack_from(fmt, data, at)[0], at + struct.calcsize(fmt)
    if kind == UUID:
        return data[at : at + 16], at + 16
    (length,) = struct.unpack_from(">H", data, at)
    raw = data[at + 2 : at + 2 + length]
    return (raw.decode() if kind == STRING else raw), at + 2 + length


def decode(frame: bytes) -> Message:
    total, headers_length = struct.unpack_from(">II", frame, 0)
    if zlib.crc32(frame[:8]) != struct.unpack_from(">I", frame, 8)[0]:
        raise ValueError("event stream prelude CRC mismatch")
    if zlib.crc32(frame[:-4]) != struct.unpack_from(">I", frame, total - 4)[0]:
        raise ValueError("event stream message CRC mismatch")
    headers: dict[str, Any] = {}
    at, end = 12, 12 + headers_length
    while at < end:
        length = frame[at]
        name = frame[at + 1 : at + 1 + length].decode()
        headers[name], at = _value(frame[at + 1 + length], frame, at + 2 + length)
    return Message(headers, frame[end : total - 4])


def read_message(sock: socket.socket) -> Message | None:
    """The next message, or None when the peer closed the connection."""
    prelude = _read_exactly(sock, 12)
    if prelude is None:
        return None
    (total,) = struct.unpack_from(">I", prelude, 0)
    rest = _read_exactly(sock, total - 12)
    return None if rest is None else decode(prelude + rest)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks
