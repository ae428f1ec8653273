"""Open Inference Protocol v2 (KServe/Triton REST) request decoding and response encoding.

Follows the KServe Open Inference Protocol REST specification and Triton's binary tensor data
extension (server/docs/protocol/extension_binary_data.md), which KServe mirrors:
- a body may be a JSON object followed by raw tensors; the `Inference-Header-Content-Length`
  header then gives the JSON's length, and each binary input carries `binary_data_size`. Raw
  tensors are little-endian, row-major, without padding, in the order of the inputs;
- an output is answered in binary when its `binary_data` parameter is true, or when the request's
  `binary_data_output` is and the output does not say otherwise; it then carries
  `binary_data_size` and no `data`, and its bytes follow the JSON in the order of the outputs.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from domicile.errors import InputError
from domicile.models.runtime import Predictions
from domicile.models.validation import OIP_NUMERIC_DATATYPES, as_datatype, input_batch
from domicile.wire.json_object import json_object
from domicile.wire.oip_request import InferInput, InferRequest, read_infer_request

if TYPE_CHECKING:
    from domicile.models.views import EntryView

PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data",)  # what server metadata advertises: the extensions served here
HEADER_LENGTH = "Inference-Header-Content-Length"


class InferResponse(NamedTuple):
    """The response object, and the binary outputs' bytes that follow it (empty when all are JSON)."""

    header: dict[str, Any]
    binary: bytes = b""

    def body(self) -> bytes:
        return json.dumps(self.header, separators=(",", ":")).encode() + self.binary


def datatype_of(dtype: str) -> str:
    """The OIP datatype of a numpy dtype name (float32 -> FP32)."""
    return next(name for name, numpy_type in OIP_NUMERIC_DATATYPES.items() if np.dtype(numpy_type).name == dtype)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON object and the binary tensors after it, as `Inference-Header-Content-Length` divides them."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise InputError(HEADER_LENGTH, f"must be a whole number of bytes, not {header_length!r}") from None
    if length < 0 or length > len(body):
        raise InputError(HEADER_LENGTH, f"{length} is past the end of the {len(body)}-byte body")
    return body[:length], body[length:]


def _binary_size(tensor: InferInput, field: str) -> int | None:
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InputError(f"{field}.parameters.binary_data_size", f"must be a whole number of bytes, not {size!r}")
    if tensor.data is not None:
        raise InputError(f"{field}.data", "must be absent when binary_data_size says the tensor is binary")
    return size


def _binary_tensor(tensor: InferInput, size: int, binary: bytes, offset: int, field: str) -> NDArray[Any]:
    """The tensor's `size` bytes at `offset`, read as its datatype (little-endian) in its shape."""
    dtype = np.dtype(OIP_NUMERIC_DATATYPES[tensor.datatype]).newbyteorder("<")
    if size % dtype.itemsize:
        raise InputError(
            f"{field}.parameters.binary_data_size",
            f"{size} bytes is not a whole number of {tensor.datatype} elements ({dtype.itemsize} bytes each)",
        )
    need = math.prod(tensor.shape) * dtype.itemsize
    if size != need:
        raise InputError(
            f"{field}.parameters.binary_data_size",
            f"is {size} bytes, but shape {tensor.shape} of {tensor.datatype} needs {need}",
        )
    if offset + size > len(binary):
        raise InputError(
            f"{field}.parameters.binary_data_size",
            f"{size} bytes at offset {offset} run past the {len(binary)} bytes of binary data after the JSON",
        )
    return np.frombuffer(binary, dtype=dtype, count=size // dtype.itemsize, offset=offset)


def _check_names(request: InferRequest, entry: EntryView) -> None:
    if request.model_name is not None and request.model_name != entry.name:
        raise InputError("model_name", f"is {request.model_name!r}, but the path names model {entry.name!r}")
    if request.model_version is not None and request.model_version != entry.version:
        raise InputError(
            "model_version", f"is {request.model_version!r}, but model {entry.name} serves version {entry.version!r}"
        )


def _check_tensor(tensor: InferInput, entry: EntryView) -> None:
    if tensor.name != entry.input.name:
        raise InputError("inputs[0].name", f"model {entry.name} takes input {entry.input.name!r}, not {tensor.name!r}")
    if tensor.datatype not in OIP_NUMERIC_DATATYPES:
        raise InputError(
            "inputs[0].datatype",
            f"{tensor.datatype!r} is not a numeric type ({', '.join(OIP_NUMERIC_DATATYPES)})",
        )
    if any(d < 0 for d in tensor.shape):
        raise InputError("inputs[0].shape", "dimensions must be non-negative")


def _check_outputs(request: InferRequest, entry: EntryView) -> None:
    known = {name for name in (entry.label_output, entry.probabilities_output) if name}
    for i, out in enumerate(request.outputs or ()):
        if out.name not in known:
            raise InputError(f"outputs[{i}].name", f"unknown output {out.name!r}; known: {sorted(known)}")
        wants = (out.parameters or {}).get("binary_data")
        if wants is not None and not isinstance(wants, bool):
            raise InputError(f"outputs[{i}].parameters.binary_data", f"must be true or false, not {wants!r}")


def decode_infer_request(
    body: str | bytes, entry: EntryView, max_rows: int, header_length: str | None = None
) -> tuple[InferRequest, NDArray[Any]]:
    """Parse and validate an infer request for `entry`; errors name the JSON path of the problem.

    `header_length` is the `Inference-Header-Content-Length` header, when the request has one.
    """
    raw = body.encode() if isinstance(body, str) else body
    header, binary = split_body(raw, header_length)
    parsed = json_object(header, "body", "must be a JSON object with an `inputs` array")
    request = read_infer_request(parsed)
    _check_names(request, entry)
    tensor = request.inputs[0]
    _check_tensor(tensor, entry)
    size = _binary_size(tensor, "inputs[0]")
    if size is None:
        if binary:
            raise InputError(HEADER_LENGTH, f"{len(binary)} bytes follow the JSON, but no input says binary_data_size")
        if tensor.data is None:
            raise InputError("inputs[0].data", "Field required (or binary_data_size, for binary data)")
        data: Any = as_datatype(tensor.data, OIP_NUMERIC_DATATYPES[tensor.datatype], "inputs[0].data")
    else:
        data = _binary_tensor(tensor, size, binary, 0, "inputs[0]")
        if size != len(binary):
            raise InputError(
                "inputs[0].parameters.binary_data_size",
                f"is {size} bytes, but {len(binary)} bytes of binary data follow the JSON",
            )
    batch = input_batch(data, entry.input, "inputs[0].data", shape=tensor.shape)
    if batch.shape[0] > max_rows:
        raise InputError("inputs[0].shape", f"batch of {batch.shape[0]} rows is over the limit of {max_rows}")
    _check_outputs(request, entry)
    return request, batch


def _wants_binary(request: InferRequest, name: str) -> bool:
    default = bool((request.parameters or {}).get("binary_data_output", False))
    for out in request.outputs or ():
        if out.name == name:
            return bool((out.parameters or {}).get("binary_data", default))
    return default


def _outputs(request: InferRequest, predictions: Predictions) -> list[tuple[str, str, NDArray[Any]]]:
    entry = predictions.model
    wanted = {o.name for o in request.outputs} if request.outputs else None
    out = []
    if entry.label_output and (wanted is None or entry.label_output in wanted):
        out.append((entry.label_output, "INT64", predictions.labels.astype(np.int64)))
    if wanted is None or entry.probabilities_output in wanted:
        out.append((entry.probabilities_output, "FP32", predictions.scores.astype(np.float32)))
    if request.outputs:  # in the order the request asked for them
        order = [o.name for o in request.outputs]
        out.sort(key=lambda o: order.index(o[0]))
    return out


def encode_infer_response(request: InferRequest, predictions: Predictions) -> InferResponse:
    entry = predictions.model
    outputs, binary = [], []
    for name, datatype, values in _outputs(request, predictions):
        tensor: dict[str, Any] = {"name": name, "shape": list(values.shape), "datatype": datatype}
        if _wants_binary(request, name):
            raw = values.astype(values.dtype.newbyteorder("<")).tobytes(order="C")
            tensor["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        elif datatype == "FP32":  # what the model's output holds: probabilities, or logits
            tensor["data"] = np.round(values.astype(np.float64), 6).ravel().tolist()
        else:
            tensor["data"] = values.ravel().tolist()
        outputs.append(tensor)
    header: dict[str, Any] = {"model_name": entry.name, "model_version": entry.version, "outputs": outputs}
    if request.id is not None:
        header["id"] = request.id
    return InferResponse(header, b"".join(binary))


def model_metadata(entry: EntryView) -> dict[str, Any]:
    n_classes = len(entry.class_labels)
    return {
        "name": entry.name,
        "versions": [entry.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": entry.input.name, "datatype": datatype_of(entry.input.dtype), "shape": list(entry.input.shape)}
        ],
        "outputs": [
            *([{"name": entry.label_output, "datatype": "INT64", "shape": [-1]}] if entry.label_output else []),
            {"name": entry.probabilities_output, "datatype": "FP32", "shape": [-1, n_classes]},
        ],
        "parameters": {"sha256": entry.sha256, "class_labels": list(entry.class_labels), "scores": entry.scores},
    }
