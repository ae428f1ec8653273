"""Local device input (`domicile/local/<thing>/input`): each case answered or refused on its own.

An input is `{"case_id": "...", "features": one case of the model's input}` or `{"cases": [{...}, ...]}`, as a dict
(Greengrass decodes JSON payloads) or as JSON text. A bad case is refused with the field and the
reason, counted and logged; the good cases of the same input are still answered in one model run.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from domicile.edge.device import EdgeDevice
from domicile.errors import InputError
from domicile.models.registry import TensorSpec
from domicile.models.validation import input_batch
from domicile.wire.envelope import ID_PATTERN
from domicile.wire.json_object import json_object

MAX_CASES = 1024  # one input at most; a larger batch is refused whole, before any model run
_CASE_ID = re.compile(ID_PATTERN)  # a case id must fit the envelope it will travel in


_EVENT_SHAPE = "must be a JSON object with `case_id` and `features`, or `cases`"


def _event(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes | str):
        return json_object(raw, "event", _EVENT_SHAPE)
    if not isinstance(raw, dict):  # Greengrass hands over decoded JSON: it may be any JSON value
        raise InputError("event", _EVENT_SHAPE)
    return raw


def _case(case: Any, prefix: str, spec: TensorSpec) -> tuple[str, np.ndarray]:
    if not isinstance(case, dict):
        raise InputError(prefix.rstrip(".") or "event", "must be an object with `case_id` and `features`")
    unknown = sorted(set(case) - {"case_id", "features"})
    if unknown:
        raise InputError(f"{prefix}{unknown[0]}", "is not a known field (expected `case_id` and `features`)")
    case_id = case.get("case_id")
    if not isinstance(case_id, str) or not _CASE_ID.match(case_id):
        raise InputError(f"{prefix}case_id", "is missing, or not 1-128 letters, digits, '_', '.', ':' or '-'")
    matrix = input_batch(case.get("features"), spec, f"{prefix}features")
    if len(matrix) != 1:
        raise InputError(f"{prefix}features", "must be one row per case")
    return case_id, matrix[0]


def answer_device_input(device: EdgeDevice, raw: Any) -> dict[str, Any]:
    """Decisions for the good cases and an error (index, field, reason) for each bad one."""
    try:
        event = _event(raw)
        batched = "cases" in event
        cases = event["cases"] if batched else [event]
        if batched and (not isinstance(cases, list) or not cases):
            raise InputError("cases", "must be a non-empty array")
        if len(cases) > MAX_CASES:
            raise InputError("cases", f"{len(cases)} cases is over the limit of {MAX_CASES} per input")
    except InputError as err:
        device.stats.rejected += 1
        return {"decisions": [], "errors": [{"index": None, **err.to_dict()}]}
    ids: list[str] = []
    rows: list[np.ndarray] = []
    errors: list[dict[str, Any]] = []
    for i, case in enumerate(cases):
        try:
            case_id, row = _case(case, f"cases[{i}]." if batched else "", device.input)
        except InputError as err:
            errors.append({"index": i, **err.to_dict()})
            continue
        ids.append(case_id)
        rows.append(row)
    device.stats.rejected += len(errors)
    decisions = device.infer(ids, np.stack(rows)) if ids else []
    return {"decisions": decisions, "errors": errors}
