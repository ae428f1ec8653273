"""Turn caller-supplied input data into a batch of a model's input tensor, or say exactly what is wrong.

A model's input is declared in the registry (`TensorSpec`: name, shape with the batch axis first,
dtype). Data may come nested (`[[...], ...]`) or flat with a shape (OIP v2), as one case (without
the batch axis) or as a batch, and each case may be flat (row-major, as envelopes and JSON lines
carry it) when the model's input has more than two axes. The result has the input's own dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from domicile.errors import InputError

if TYPE_CHECKING:
    from domicile.models.views import TensorView

MATRIX_RANK = 2  # [batch, features]: the classic tabular input

# Open Inference Protocol datatypes we accept for numeric inputs, and their numpy types.
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
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


def _numeric_array(data: Any, field: str) -> np.ndarray:
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
    return array


def _shape_text(dims: Sequence[int]) -> str:
    return "[" + ", ".join("batch" if d < 0 else str(d) for d in dims) + "]"


def _fit_cases(array: np.ndarray, case_shape: tuple[int, ...], field: str) -> np.ndarray:
    """A batch of cases of `case_shape` from one case, a batch, or flat (row-major) cases."""
    rank = len(case_shape) + 1
    if array.ndim == 1 and rank > MATRIX_RANK:  # one flat case
        if array.size != math.prod(case_shape):
            need = math.prod(case_shape)
            raise InputError(
                field, f"a flat case needs {need} values (a {_shape_text(case_shape)} case), got {array.size}"
            )
        array = array.reshape(1, -1)
    flat_cases = array.ndim == MATRIX_RANK and rank > MATRIX_RANK and array.shape[1] == math.prod(case_shape)
    if flat_cases and array.shape != case_shape:  # (else it is one case without its batch axis, below)
        array = array.reshape(len(array), *case_shape)
    if array.ndim == rank - 1:
        array = array.reshape(1, *array.shape)  # one case, no batch axis
    if array.ndim != rank:
        if rank == MATRIX_RANK:
            raise InputError(field, f"must be 2-D [batch, {case_shape[0]}], got {array.ndim}-D")
        raise InputError(field, f"must be {rank}-D {_shape_text((-1, *case_shape))}, got {array.ndim}-D")
    if array.shape[1:] != case_shape:
        if rank == MATRIX_RANK:
            raise InputError(field, f"each row needs {case_shape[0]} features, got {array.shape[1]}")
        got = _shape_text(array.shape[1:])
        raise InputError(field, f"each case must be shaped {_shape_text(case_shape)}, got {got}")
    return array


def _first_bad(bad: np.ndarray) -> str:
    """Where the first bad value is: its row in a batch, or its place in flat data."""
    index = int(np.argwhere(bad)[0][0])
    return f"value {index}" if bad.ndim == 1 else f"row {index}"


def _convert(array: np.ndarray, dtype: np.dtype[Any], field: str, taker: str = "the model") -> np.ndarray:
    """`array` in the model's dtype: finite floats, or whole numbers in the integer type's range."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(field, f"{_first_bad(~np.isfinite(array))} holds NaN or infinity")
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
            out = array.astype(dtype)
        if not np.isfinite(out).all():
            bad = _first_bad(~np.isfinite(out))
            raise InputError(field, f"{bad} holds NaN or infinity (or a value too large for {dtype.name})")
        return out
    if array.dtype.kind == "f" and not np.equal(np.mod(array, 1), 0).all():
        bad = _first_bad(np.mod(array, 1) != 0)
        raise InputError(field, f"{bad} holds a fraction, but {taker} takes whole numbers ({dtype.name})")
    info = np.iinfo(dtype)
    outside = (array < info.min) | (array > info.max)
    if outside.any():
        bad = _first_bad(outside)
        raise InputError(field, f"{bad} holds a value outside {dtype.name}'s range {info.min}..{info.max}")
    return array.astype(dtype)


def as_datatype(data: Any, numpy_type: type[np.generic], field: str) -> NDArray[Any]:
    """`data` as the type its sender declared (OIP `datatype`): a fraction for an integer type, a value
    outside the type's range, NaN or infinity is refused, as the type cannot hold it."""
    return _convert(_numeric_array(data, field), np.dtype(numpy_type), field, "the declared datatype")


def input_batch(
    data: Any, spec: TensorView, field: str = "features", shape: Sequence[int] | None = None
) -> NDArray[Any]:
    """Validate `data` as a batch of the model input `spec` and return it in the input's dtype.

    `shape` (OIP v2) says how to read flat data.
    """
    array = _numeric_array(data, field)
    if shape is not None:
        if array.size != int(np.prod(shape)):
            raise InputError(field, f"has {array.size} values but shape {list(shape)} needs {int(np.prod(shape))}")
        array = array.reshape(tuple(shape))
    return _convert(_fit_cases(array, spec.case_shape, field), np.dtype(spec.dtype), field)
