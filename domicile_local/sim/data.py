"""What each fleet's simulated devices send: the user's data for the fleet, its model's validation data, or digits.

Per fleet, in this order: the file given with `--data FLEET=DATA.npz` (arrays `x` and `y`, as for
`domicile models add`); else the validation data the registry keeps for the fleet's model (its edge
model, or for a split fleet its split model; hash-checked); else the digits' held-out test split.
Labels are kept as the model's class labels, so the report's accuracy compares what aggregation
counted with what the data says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domicile.config.topology import Fleet, FleetMode, Topology
from domicile.errors import DomicileError, InputError
from domicile.models.add import label_indexes, load_validation, registered_validation
from domicile.models.registry import Manifest, ModelEntry
from domicile.models.validation import input_batch
from domicile.split.runtime import reads_digits_sensor


@dataclass(frozen=True)
class FleetCases:
    x: np.ndarray  # the cases, shaped as the fleet's model input (batch first)
    labels: np.ndarray  # each case's class label (str)
    source: str  # where they came from, for the report


def _from_file(path: Path, entry: ModelEntry, what: str) -> FleetCases:
    try:
        data = load_validation(path)
        x = input_batch(data.x, entry.input, "x")
        y = label_indexes(data.y, entry.class_labels, len(x))
    except InputError as exc:
        field = exc.field.removeprefix("--validation").strip() or "file"
        raise DomicileError(f"{what}: {field}: {exc.reason}") from exc
    return FleetCases(x, np.asarray(entry.class_labels, dtype=object)[y], str(path))


def _registered(entry: ModelEntry, model_dir: Path) -> FleetCases | None:
    registered = registered_validation(entry, model_dir)  # hash-checked against the registry
    if registered is None:
        return None
    x, y = registered
    source = str(model_dir / entry.validation_data.file) if entry.validation_data else entry.name
    return FleetCases(x, np.asarray(entry.class_labels, dtype=object)[y], source)


def _digits(seed: int) -> FleetCases:
    from domicile.models.datasets import load_digits_splits

    test = load_digits_splits(seed).test
    return FleetCases(test.x, np.asarray([str(v) for v in test.y], dtype=object), "digits test split")


def fleet_cases(
    topology: Topology, manifest: Manifest, model_dir: Path, data: dict[str, Path], seed: int
) -> dict[str, FleetCases]:
    """Each fleet's cases (see the module's docstring for the order)."""
    unknown = sorted(set(data) - set(topology.fleets))
    if unknown:
        raise DomicileError(f"--data: unknown fleet {unknown[0]!r}; known: {', '.join(topology.fleets)}")
    out: dict[str, FleetCases] = {}
    digits: FleetCases | None = None
    for fleet in topology.fleets.values():
        entry = _fleet_entry(topology, manifest, fleet)
        cases = None
        if fleet.name in data:
            cases = _from_file(data[fleet.name], entry, f"--data {fleet.name}")
        elif not reads_digits_sensor(entry):
            cases = _registered(entry, model_dir)
        if cases is None:
            digits = digits or _digits(seed)
            cases = digits
        out[fleet.name] = cases
    return out


def _fleet_entry(topology: Topology, manifest: Manifest, fleet: Fleet) -> ModelEntry:
    """The model whose input a fleet's devices read: the split model for a split fleet, else its edge model."""
    split = topology.split_model() if fleet.mode is FleetMode.SPLIT else None
    name = split.name if split else topology.edge_model_of(fleet)
    entry = manifest.get(name)
    if entry is None:
        raise DomicileError(f"fleets.{fleet.name}: model {name!r} is not in the registry")
    return entry
