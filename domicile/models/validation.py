"""Turn caller-supplied feature data into a float32 matrix, or say exactly what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from domicile.errors import InputError

MATRIX_RANK = 2  # [batch, features]

# Open Inference Protocol datatypes we accept for numeric features, and their numpy types.
OIP_NUMERIC_DATATYPES: dict[str, type[np.generic]] = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
}


def features_matrix(
    data: Any, n_features: int, field: str = "features", shape: Sequence[int] | None = None
) -> NDArray[np.float32]:
    """Validate `data` as rows of `n_features` finite numbers and return an (N, n_features) array.

    `data` may be flat (then `shape` says how to read it, as in OIP v2) or nested.
    """
    if data is None:
        raise InputError(field, "is missing")
    if isinstance(data, (str, bytes, dict)):
        raise InputError(field, f"must be an array of numbers, not {type(data).__name__}")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise InputError(field, f"rows have different lengths ({exc.__class__.__name__})") from exc
    if array.dtype == object:
        raise InputError(field, "rows have different lengths or hold non-numbers")
    if array.size == 0:
        raise InputError(field, "is empty")
    if array.dtype.kind not in "biuf":
        raise InputError(field, f"must hold numbers, found {array.dtype.kind!r} values")
    if array.dtype.kind == "b":
        raise InputError(field, "must hold numbers, not booleans")
    if shape is not None:
        if array.size != int(np.prod(shape)):
            raise InputError(field, f"has {array.size} values but shape {list(shape)} needs {int(np.prod(shape))}")
        array = array.reshape(tuple(shape))
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != MATRIX_RANK:
        raise InputError(field, f"must be 2-D [batch, {n_features}], got {array.ndim}-D")
    if array.shape[1] != n_features:
        raise InputError(field, f"each row needs {n_features} features, got {array.shape[1]}")
    with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
        matrix = array.astype(np.float32)
    if not np.isfinite(matrix).all():
        bad_row = int(np.argwhere(~np.isfinite(matrix))[0][0])
        raise InputError(field, f"row {bad_row} holds NaN or infinity (or a value too large for float32)")
    return matrix
