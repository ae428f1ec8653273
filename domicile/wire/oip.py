"""Open Inference Protocol v2 (KServe/Triton REST) request decoding and response encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domicile.errors import InputError
from domicile.models.registry import ModelEntry
from domicile.models.runtime import Predictions
from domicile.models.validation import OIP_NUMERIC_DATATYPES, input_batch
from domicile.wire.json_object import json_object

PLATFORM = "onnxruntime_onnx"


class InferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int] = Field(min_length=1, max_length=4)
    datatype: str
    # Validated as a whole by input_batch (numpy), not item by item: a case is many values.
    data: Any
    parameters: dict[str, Any] | None = None

    @field_validator("data")
    @classmethod
    def _is_list(cls, data: Any) -> Any:
        if not isinstance(data, list):
            raise ValueError("must be an array")
        return data


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestedOutput] | None = None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def datatype_of(dtype: str) -> str:
    """The OIP datatype of a numpy dtype name (float32 -> FP32)."""
    return next(name for name, numpy_type in OIP_NUMERIC_DATATYPES.items() if np.dtype(numpy_type).name == dtype)


def decode_infer_request(body: str | bytes, entry: ModelEntry, max_rows: int) -> tuple[InferRequest, NDArray[Any]]:
    """Parse and validate an infer request for `entry`; errors name the JSON path of the problem."""
    parsed = json_object(body, "body", "must be a JSON object with an `inputs` array")
    try:
        request = InferRequest.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(_loc(first["loc"]), first["msg"]) from exc
    tensor = request.inputs[0]
    if tensor.name != entry.input.name:
        raise InputError("inputs[0].name", f"model {entry.name} takes input {entry.input.name!r}, not {tensor.name!r}")
    if tensor.datatype not in OIP_NUMERIC_DATATYPES:
        raise InputError(
            "inputs[0].datatype",
            f"{tensor.datatype!r} is not a numeric type ({', '.join(OIP_NUMERIC_DATATYPES)})",
        )
    if any(d < 0 for d in tensor.shape):
        raise InputError("inputs[0].shape", "dimensions must be non-negative")
    batch = input_batch(tensor.data, entry.input, "inputs[0].data", shape=tensor.shape)
    if batch.shape[0] > max_rows:
        raise InputError("inputs[0].shape", f"batch of {batch.shape[0]} rows is over the limit of {max_rows}")
    if request.outputs:
        known = {name for name in (entry.label_output, entry.probabilities_output) if name}
        for i, out in enumerate(request.outputs):
            if out.name not in known:
                raise InputError(f"outputs[{i}].name", f"unknown output {out.name!r}; known: {sorted(known)}")
    return request, batch


def encode_infer_response(request: InferRequest, predictions: Predictions) -> dict[str, Any]:
    entry = predictions.model
    wanted = {o.name for o in request.outputs} if request.outputs else None
    outputs = []
    if entry.label_output and (wanted is None or entry.label_output in wanted):
        outputs.append(
            {
                "name": entry.label_output,
                "shape": [len(predictions.labels)],
                "datatype": "INT64",
                "data": predictions.labels.tolist(),
            }
        )
    if wanted is None or entry.probabilities_output in wanted:
        scores = predictions.scores  # what the model's output holds: probabilities, or logits
        outputs.append(
            {
                "name": entry.probabilities_output,
                "shape": list(scores.shape),
                "datatype": "FP32",
                "data": np.round(scores.astype(np.float64), 6).ravel().tolist(),
            }
        )
    response: dict[str, Any] = {"model_name": entry.name, "model_version": entry.version, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    return response


def model_metadata(entry: ModelEntry) -> dict[str, Any]:
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
