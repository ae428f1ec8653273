"""Cut the ONNX graph at a named tensor: a head (input -> cut) and a tail (cut -> outputs), proven equivalent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.project import registry_dir
from domicile.errors import ConfigError, DomicileError
from domicile.models.registry import Manifest, ModelEntry, load_manifest, write_manifest
from domicile.split.model import CUTS, INPUT, NAME, OUTPUTS, digits_seed, part_entry, split_entry, upscale

TOLERANCE = 1e-5


class PartitionError(DomicileError):
    pass


def _load(blob: bytes) -> Any:
    import onnx

    return onnx.load_from_string(blob)


def tail_outputs(cut: str) -> tuple[str, ...]:
    return tuple(o for o in OUTPUTS if o != cut)


def split_at(whole: bytes, cut: str) -> tuple[bytes | None, bytes]:
    """(head, tail) as ONNX bytes; no head when the cut is the input (everything runs in the cloud)."""
    import onnx.utils

    if cut not in CUTS:
        raise ConfigError(f"cut: unknown tensor {cut!r}; the cuts are {', '.join(CUTS)}")
    if cut == INPUT:
        return None, whole
    extractor = onnx.utils.Extractor(_load(whole))
    head = extractor.extract_model([INPUT], [cut])
    tail = extractor.extract_model([cut], list(tail_outputs(cut)))
    for part, name in ((head, "head"), (tail, "tail")):
        part.graph.name = f"{cut}-{name}"
    return head.SerializeToString(deterministic=True), tail.SerializeToString(deterministic=True)


class Parts:
    """ORT sessions for a head and a tail, run one after the other."""

    def __init__(self, head: bytes | None, tail: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.head = ort.InferenceSession(head, options, providers=["CPUExecutionProvider"]) if head else None
        self.tail = ort.InferenceSession(tail, options, providers=["CPUExecutionProvider"])
        self.cut = self.tail.get_inputs()[0].name

    def activation(self, pixels: np.ndarray) -> np.ndarray:
        if self.head is None:
            return pixels
        return np.asarray(self.head.run(None, {INPUT: pixels})[0], dtype=np.float32)

    def finish(self, activation: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.tail.get_outputs()]
        out = dict(zip(names, self.tail.run(names, {self.cut: activation}), strict=True))
        out.setdefault("probabilities", activation)  # the last cut sends the probabilities themselves
        return out


def check_equivalence(whole: bytes, parts: Parts, pixels: np.ndarray) -> float:
    """Largest difference in probabilities between head-then-tail and the whole model; raises over 1e-5."""
    import onnxruntime as ort

    session = ort.InferenceSession(whole, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(list(OUTPUTS), {INPUT: pixels})
    split = parts.finish(parts.activation(pixels))
    worst = float(np.max(np.abs(np.asarray(split["probabilities"]) - probabilities)))
    if worst > TOLERANCE or not np.array_equal(split["label"], labels):
        raise PartitionError(f"cut {parts.cut}: head then tail differs from the whole model by {worst:.2e}")
    return worst


def partition(cut: str, model_dir: Path | None = None, name: str = NAME, version: str | None = None) -> ModelEntry:
    """Write `<model>.<cut>.head.onnx` and `.tail.onnx`, checked on the test split, into the version's entry.

    The deployed version unless `version` is given (a new version is partitioned before it is promoted).
    """
    from domicile.models.datasets import load_digits_splits
    from domicile.models.runtime import verified_model_bytes

    model_dir = registry_dir(model_dir)
    manifest = load_manifest(model_dir)
    entry, spec = split_entry(manifest, name, version)
    whole = verified_model_bytes(model_dir / entry.file, entry.sha256)
    head, tail = split_at(whole, cut)
    check_equivalence(whole, Parts(head, tail), upscale(load_digits_splits(digits_seed(entry)).test.x))
    stem = entry.file.removesuffix(".onnx")
    parts = dict(spec.parts)
    if head is not None:
        (model_dir / f"{stem}.{cut}.head.onnx").write_bytes(head)
        parts[f"{cut}/head"] = part_entry(model_dir / f"{stem}.{cut}.head.onnx", (INPUT,), (cut,))
    (model_dir / f"{stem}.{cut}.tail.onnx").write_bytes(tail)
    parts[f"{cut}/tail"] = part_entry(model_dir / f"{stem}.{cut}.tail.onnx", (cut,), tail_outputs(cut))
    # The parts are derived from the version's own bytes: adding them leaves the version what it was.
    updated = entry.model_copy(update={"split": spec.model_copy(update={"parts": dict(sorted(parts.items()))})})
    versions = {**manifest.versions, name: {**manifest.versions[name], entry.version: updated}}
    write_manifest(Manifest(versions=versions, stages=manifest.stages), model_dir)
    return updated
