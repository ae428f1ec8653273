"""Cut the ONNX graph at a named tensor: a head (input -> cut) and a tail (cut -> outputs), proven equivalent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.project import registry_dir
from domicile.errors import ConfigError, DomicileError
from domicile.models.registry import Manifest, ModelEntry, SplitSpec, load_manifest, write_manifest
from domicile.split.model import CUTS, INPUT, NAME, OUTPUTS, digits_seed, part_entry, split_entry, upscale

TOLERANCE = 1e-5


class PartitionError(DomicileError):
    pass


def _load(blob: bytes) -> Any:
    import onnx

    return onnx.load_from_string(blob)


@dataclass(frozen=True)
class Graph:
    """What a cut needs to know of a model: its input, its outputs (label first, if any) and its cuts."""

    input: str = INPUT
    outputs: tuple[str, ...] = OUTPUTS
    cuts: tuple[str, ...] = CUTS
    scores: str = OUTPUTS[1]  # the output compared to prove a cut
    label: str | None = OUTPUTS[0]

    @classmethod
    def of(cls, entry: ModelEntry, spec: SplitSpec) -> Graph:
        outputs = (*([entry.label_output] if entry.label_output else []), entry.probabilities_output)
        return cls(entry.input.name, outputs, spec.cuts, entry.probabilities_output, entry.label_output)

    def tail_outputs(self, cut: str) -> tuple[str, ...]:
        return tuple(o for o in self.outputs if o != cut)


DIGITS = Graph()


def split_at(whole: bytes, cut: str, graph: Graph = DIGITS) -> tuple[bytes | None, bytes]:
    """(head, tail) as ONNX bytes; no head when the cut is the input (everything runs in the cloud)."""
    import onnx.utils

    if cut not in graph.cuts:
        raise ConfigError(f"cut: unknown tensor {cut!r}; the cuts are {', '.join(graph.cuts)}")
    if cut == graph.input:
        return None, whole
    extractor = onnx.utils.Extractor(with_shapes(whole, (cut,)))
    head = extractor.extract_model([graph.input], [cut])
    tail = extractor.extract_model([cut], list(graph.tail_outputs(cut)))
    for part, name in ((head, "head"), (tail, "tail")):
        part.graph.name = f"{cut}-{name}"
    needs = sorted({i for node in tail.graph.node for i in node.input if i} - _produced(tail))
    if needs:  # a path around the cut: the tail would need the device's tensors too
        raise PartitionError(f"cut {cut}: does not separate the graph; after it, {', '.join(needs)} is still needed")
    return head.SerializeToString(deterministic=True), tail.SerializeToString(deterministic=True)


def with_shapes(whole: bytes, names: tuple[str, ...]) -> Any:
    """The model with these tensors' shapes declared, as onnx.utils.Extractor needs them.

    Shape inference runs only when one is missing: a model built here declares its cuts, and
    inferring would change the bytes of its parts.
    """
    import onnx.shape_inference

    model = _load(whole)
    declared = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    return model if set(names) <= declared else onnx.shape_inference.infer_shapes(model)


def _produced(model: Any) -> set[str]:
    graph = model.graph
    return ({o for node in graph.node for o in node.output} | {i.name for i in graph.input}
            | {t.name for t in graph.initializer})  # fmt: skip


class Parts:
    """ORT sessions for a head and a tail, run one after the other."""

    def __init__(self, head: bytes | None, tail: bytes, case_shape: tuple[int, ...] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.head = ort.InferenceSession(head, options, providers=["CPUExecutionProvider"]) if head else None
        self.tail = ort.InferenceSession(tail, options, providers=["CPUExecutionProvider"])
        self.cut = self.tail.get_inputs()[0].name
        self.case_shape = case_shape  # the tail's input case shape, when the flat activation needs reshaping

    def activation(self, batch: np.ndarray) -> np.ndarray:
        """The flat (N, width) float32 activation at the cut: what a device sends."""
        if self.head is None:
            return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)
        head_input = self.head.get_inputs()[0].name
        out = np.asarray(self.head.run(None, {head_input: batch})[0], dtype=np.float32)
        return out.reshape(len(out), -1)

    def finish(self, activation: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.tail.get_outputs()]
        feed = activation.reshape(len(activation), *self.case_shape) if self.case_shape else activation
        if self.head is None:  # the whole model: its own input dtype
            feed = feed.astype(_NUMPY_OF_ORT.get(self.tail.get_inputs()[0].type, np.float32))
        out = dict(zip(names, self.tail.run(names, {self.cut: feed}), strict=True))
        out.setdefault("probabilities", activation)  # the digits' last cut sends the probabilities themselves
        return out


_NUMPY_OF_ORT: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
}  # fmt: skip


def check_equivalence(whole: bytes, parts: Parts, batch: np.ndarray, graph: Graph = DIGITS) -> float:
    """Largest difference in scores between head-then-tail and the whole model; raises over 1e-5."""
    import onnxruntime as ort

    session = ort.InferenceSession(whole, providers=["CPUExecutionProvider"])
    expected = dict(zip(graph.outputs, session.run(list(graph.outputs), {graph.input: batch}), strict=True))
    split = parts.finish(parts.activation(batch))
    worst = float(np.max(np.abs(np.asarray(split[graph.scores]) - expected[graph.scores])))
    same_labels = graph.label is None or np.array_equal(split[graph.label], expected[graph.label])
    if worst > TOLERANCE or not same_labels:
        raise PartitionError(f"cut {parts.cut}: head then tail differs from the whole model by {worst:.2e}")
    return worst


def model_cases(entry: ModelEntry, model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The cases a split model is proven and profiled on, with their class indexes.

    Its registered validation data, else (the digits model) the digits test split.
    """
    from domicile.models.add import registered_validation

    registered = registered_validation(entry, model_dir)
    if registered is not None:
        return registered
    from domicile.models.datasets import load_digits_splits

    test = load_digits_splits(digits_seed(entry)).test
    return upscale(test.x), test.y


def partition(cut: str, model_dir: Path | None = None, name: str = NAME, version: str | None = None) -> ModelEntry:
    """Write `<model>.<cut>.head.onnx` and `.tail.onnx`, proven on `model_cases`, into the version's entry.

    The deployed version unless `version` is given (a new version is partitioned before it is promoted).
    """
    from domicile.models.runtime import verified_model_bytes

    model_dir = registry_dir(model_dir)
    manifest = load_manifest(model_dir)
    entry, spec = split_entry(manifest, name, version)
    whole = verified_model_bytes(model_dir / entry.file, entry.sha256)
    graph = Graph.of(entry, spec)
    head, tail = split_at(whole, cut, graph)
    cases, _ = model_cases(entry, model_dir)
    check_equivalence(whole, Parts(head, tail, spec.case_shape(cut)), cases, graph)
    stem = entry.file.removesuffix(".onnx")
    parts = dict(spec.parts)
    if head is not None:
        (model_dir / f"{stem}.{cut}.head.onnx").write_bytes(head)
        parts[f"{cut}/head"] = part_entry(model_dir / f"{stem}.{cut}.head.onnx", (graph.input,), (cut,))
    (model_dir / f"{stem}.{cut}.tail.onnx").write_bytes(tail)
    parts[f"{cut}/tail"] = part_entry(model_dir / f"{stem}.{cut}.tail.onnx", (cut,), graph.tail_outputs(cut))
    # The parts are derived from the version's own bytes: adding them leaves the version what it was.
    updated = entry.model_copy(update={"split": spec.model_copy(update={"parts": dict(sorted(parts.items()))})})
    versions = {**manifest.versions, name: {**manifest.versions[name], entry.version: updated}}
    write_manifest(Manifest(versions=versions, stages=manifest.stages), model_dir)
    return updated
