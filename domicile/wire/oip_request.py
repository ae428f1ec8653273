"""The OIP v2 infer request object, read from parsed JSON with every problem named by its JSON path.

The shape follows the KServe Open Inference Protocol REST spec ("Inference Request JSON Object":
`id`, `parameters`, `inputs`, `outputs`; each input `name`, `shape`, `datatype`, `parameters`,
`data`; each requested output `name`, `parameters`), plus `model_name` and `model_version`, which
the KServe SDK and Triton's examples send. Unknown members are refused.

Plain code rather than pydantic models on purpose: this is the only schema the HTTP function's
request path reads, and importing pydantic cost that function more cold-start time than
onnxruntime and its sessions together (BENCHMARKS.md, cold init). The messages keep pydantic's
wording, which callers already saw. The records are NamedTuples: cheaper to define and to build
than frozen dataclasses, on a path where both count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from domicile.errors import InputError

MAX_ID_LENGTH = 256
MAX_RANK = 8
T = TypeVar("T")


class InferInput(NamedTuple):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None  # validated as a whole by numpy later; absent when the tensor is binary
    parameters: dict[str, Any] | None = None


class RequestedOutput(NamedTuple):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(NamedTuple):
    inputs: list[InferInput]
    id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key or any(c in key for c in '.[]"'):  # an unknown member with an odd name: quote it
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key


def _dictionary(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(path, "Input should be a valid dictionary")
    return value


def _members(value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    members = _dictionary(value, path or "body")
    for key in members:
        if key not in allowed:
            raise InputError(_at(path, key), "Extra inputs are not permitted")
    for key in required:
        if key not in members:
            raise InputError(_at(path, key), "Field required")
    return members


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InputError(path, "Input should be a valid string")
    return value


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(path, "Input should be a valid integer")
    return value


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _list(value: Any, path: str, low: int | None = None, high: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(path, "Input should be a valid list")
    if low is not None and len(value) < low:
        raise InputError(path, f"List should have at least {_items(low)} after validation, not {len(value)}")
    if high is not None and len(value) > high:
        raise InputError(path, f"List should have at most {_items(high)} after validation, not {len(value)}")
    return value


def _optional(members: dict[str, Any], key: str, path: str, read: Callable[[Any, str], T]) -> T | None:
    value = members.get(key)
    return None if value is None else read(value, _at(path, key))


def _input(value: Any, path: str) -> InferInput:
    members = _members(value, path, ("name", "shape", "datatype", "data", "parameters"), ("name", "shape", "datatype"))
    shape = _list(members["shape"], _at(path, "shape"), 1, MAX_RANK)
    data = members.get("data")
    if data is not None and not isinstance(data, list):
        raise InputError(_at(path, "data"), "Value error, must be an array")
    return InferInput(
        name=_string(members["name"], _at(path, "name")),
        shape=[_integer(d, _at(_at(path, "shape"), i)) for i, d in enumerate(shape)],
        datatype=_string(members["datatype"], _at(path, "datatype")),
        data=data,
        parameters=_optional(members, "parameters", path, _dictionary),
    )


def _output(value: Any, path: str) -> RequestedOutput:
    members = _members(value, path, ("name", "parameters"), ("name",))
    return RequestedOutput(
        name=_string(members["name"], _at(path, "name")),
        parameters=_optional(members, "parameters", path, _dictionary),
    )


def _id(value: Any, path: str) -> str:
    text = _string(value, path)
    if len(text) > MAX_ID_LENGTH:
        raise InputError(path, f"String should have at most {MAX_ID_LENGTH} characters")
    return text


def read_infer_request(value: Any) -> InferRequest:
    """The request object of a parsed JSON body, or an InputError naming the first bad member."""
    allowed = ("id", "model_name", "model_version", "parameters", "inputs", "outputs")
    members = _members(value, "", allowed, ("inputs",))
    inputs = _list(members["inputs"], "inputs", 1, 1)  # one input: the models served here take one
    outputs = _optional(members, "outputs", "", _list)
    return InferRequest(
        inputs=[_input(tensor, f"inputs[{i}]") for i, tensor in enumerate(inputs)],
        id=_optional(members, "id", "", _id),
        model_name=_optional(members, "model_name", "", _string),
        model_version=_optional(members, "model_version", "", _string),
        parameters=_optional(members, "parameters", "", _dictionary),
        outputs=None if outputs is None else [_output(o, f"outputs[{i}]") for i, o in enumerate(outputs)],
    )
