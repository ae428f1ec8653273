"""Batch inference over a JSON-lines document: one output line per input line, errors included.

Input line:  {"id": "optional", "features": one case of the model's input (nested, or flat row-major)}
Output line: {"line": 1, "id": ..., "model": ..., "label": "3", "confidence": 0.98}
         or: {"line": 2, "id": ..., "error": {"field": "features", "reason": "..."}}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from domicile.errors import InputError
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import input_batch

if TYPE_CHECKING:
    from domicile.models.views import EntryView


@dataclass
class LineOutcome:
    line: int
    record_id: str | None
    result: dict[str, Any] | None = None
    error: InputError | None = None

    def to_json(self) -> str:
        out: dict[str, Any] = {"line": self.line, "id": self.record_id}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        else:
            out.update(self.result or {})
        return json.dumps(out, separators=(",", ":"))


def _parse_line(raw: str, entry: EntryView) -> tuple[str | None, np.ndarray]:
    """Return (id, row); an InputError carries the id it could read in `record_id`."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError("line", f"is not valid JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise InputError("line", "must be a JSON object with a `features` array")
    raw_id = obj.get("id")
    record_id = None if raw_id is None else str(raw_id)
    try:
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            raise InputError("id", "must be a string or an integer")
        unknown = sorted(set(obj) - {"id", "features"})
        if unknown:
            raise InputError(unknown[0], "is not a known field (expected `id` and `features`)")
        batch = input_batch(obj.get("features"), entry.input, "features")
        if batch.shape[0] != 1:
            raise InputError("features", "must be one row per line")
    except InputError as err:
        err.record_id = record_id  # type: ignore[attr-defined]
        raise
    return record_id, batch[0]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            yield number, raw


def infer_jsonlines(text: str, runtime: ModelRuntime[EntryView], model: str) -> list[LineOutcome]:
    """Validate every line, run the good ones in one vectorized call, keep input order."""
    entry = runtime.entry(model)
    outcomes: list[LineOutcome] = []
    good_rows: list[np.ndarray] = []
    good_index: list[int] = []
    for number, raw in _lines(text):
        try:
            record_id, row = _parse_line(raw, entry)
        except InputError as err:
            outcomes.append(LineOutcome(number, getattr(err, "record_id", None), error=err))
            continue
        good_index.append(len(outcomes))
        good_rows.append(row)
        outcomes.append(LineOutcome(number, record_id))
    if good_rows:
        predictions = runtime.run(entry, np.stack(good_rows))
        for k, index in enumerate(good_index):
            outcomes[index].result = {
                "model": entry.name,
                "model_version": entry.version,
                **predictions.row(k),
            }
    return outcomes
