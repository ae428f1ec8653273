"""The activation on the wire: one case's tensor at the cut, encoded into a split payload and back.

float32 and float16 are little-endian raw bytes; int8 is symmetric per-tensor quantization with
its scale sent along. Decoding checks everything a device (or an attacker) could get wrong and
names the field, because the tail function must refuse what it cannot finish.
"""

from __future__ import annotations

import base64
import binascii
from typing import get_args

import numpy as np

from domicile.errors import InputError
from domicile.wire.envelope import Encoding, SplitPayload

ENCODINGS: tuple[Encoding, ...] = get_args(Encoding)
_ITEMSIZE = {"float32": 4, "float16": 2, "int8": 1}


def encode(activation: np.ndarray, encoding: str) -> tuple[bytes, float | None]:
    """The activation as sent: raw little-endian bytes, plus the scale for int8 (symmetric, per tensor)."""
    if encoding == "float32":
        return activation.astype("<f4").tobytes(), None
    if encoding == "float16":
        return activation.astype("<f2").tobytes(), None
    if encoding != "int8":
        raise ValueError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    scale = float(np.max(np.abs(activation))) / 127 or 1.0
    return np.clip(np.rint(activation / scale), -127, 127).astype(np.int8).tobytes(), scale


def decode(blob: bytes, encoding: str, shape: tuple[int, ...], scale: float | None) -> np.ndarray:
    if encoding == "int8":
        return (np.frombuffer(blob, np.int8).astype(np.float32) * (scale or 1.0)).reshape(shape)
    dtype = "<f4" if encoding == "float32" else "<f2"
    return np.frombuffer(blob, dtype).astype(np.float32).reshape(shape)


def to_payload(case_id: str, tensor: str, row: np.ndarray, encoding: Encoding) -> SplitPayload:
    """One case's activation (a 1-D row) as a split payload."""
    blob, scale = encode(row[None, :], encoding)
    return SplitPayload(case_id=case_id, tensor=tensor, shape=[1, int(row.shape[-1])], dtype=encoding,
                        data_b64=base64.b64encode(blob).decode(), scale=scale)  # fmt: skip


def from_payload(payload: SplitPayload, tensor: str, width: int) -> np.ndarray:
    """The (1, width) float32 activation a payload carries, or an InputError naming what is wrong."""
    if payload.tensor != tensor:
        raise InputError("payload.tensor", f"this tail starts at {tensor!r}, not {payload.tensor!r}")
    if payload.shape != [1, width]:
        raise InputError("payload.shape", f"must be [1, {width}] for tensor {tensor!r}, got {payload.shape}")
    if payload.dtype == "int8" and not (payload.scale is not None and np.isfinite(payload.scale) and payload.scale > 0):
        raise InputError("payload.scale", "int8 activations need a positive, finite scale")
    try:
        blob = base64.b64decode(payload.data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("payload.data_b64", "is not valid base64") from exc
    expected = width * _ITEMSIZE[payload.dtype]
    if len(blob) != expected:
        raise InputError("payload.data_b64", f"holds {len(blob)} bytes; {width} {payload.dtype} values take {expected}")
    activation = decode(blob, payload.dtype, (1, width), payload.scale)
    if not np.isfinite(activation).all():
        raise InputError("payload.data_b64", "holds NaN or infinite values")
    return activation
