"""What the planner needs, measured here: each segment's latency, and each encoding's bytes and accuracy cost."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.project import registry_dir
from domicile.models.registry import load_manifest
from domicile.split.codec import ENCODINGS, decode, encode, to_payload
from domicile.split.model import NAME, split_entry
from domicile.split.partition import Graph, PartitionError, Parts, model_cases, split_at, with_shapes
from domicile.wire.envelope import Encoding, ModelRef, SplitEnvelope


def envelope_bytes(width: int, encoding: Encoding) -> int:
    """Size of the split envelope that carries one case's activation (what IoT Core meters and limits)."""
    envelope = SplitEnvelope(
        device="munich-line-0", fleet="munich-line", jurisdiction="eu", home_region="eu-central-1",
        model=ModelRef(name="digits-deep", version="1.0.0", sha256="0" * 64),
        payload=to_payload("munich-line-0-12345", "hidden1", np.ones(width, np.float32), encoding),
    )  # fmt: skip
    return len(envelope.model_dump_json(exclude_none=True))


@dataclass(frozen=True)
class ModelProfile:
    """Measured on this machine. Segment i runs from cut i to cut i+1; the label step follows the last cut."""

    cuts: tuple[str, ...]
    segment_ms: tuple[float, ...]  # len(cuts) - 1
    label_ms: float
    widths: tuple[int, ...]
    accuracy: float  # of the whole model on the test split
    accuracy_loss_pts: dict[tuple[str, Encoding], float]  # (cut, encoding) -> points lost against the whole model


def _median_ms(run: Callable[[None, dict[str, np.ndarray]], Any], feeds: dict[str, np.ndarray], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(None, feeds)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(model_dir: Path | None = None, repeat: int = 200, name: str = NAME) -> ModelProfile:
    """Time every segment on one case (as a device runs it), and every encoding's accuracy on the model's cases.

    Only cuts that separate the graph are profiled (a cut with a path around it cannot be deployed).
    """
    import onnx.utils
    import onnxruntime as ort

    from domicile.models.runtime import Predictions, verified_model_bytes

    model_dir = registry_dir(model_dir)
    entry, spec = split_entry(load_manifest(model_dir), name)
    whole = verified_model_bytes(model_dir / entry.file, entry.sha256)
    cases, truth = model_cases(entry, model_dir)
    graph = Graph.of(entry, spec)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    # One pass over the cuts: each cut's head and tail, its activations on the cases, and what every
    # encoding of them costs in accuracy; the timings below reuse those activations.
    parts: dict[str, Parts] = {}
    for cut in graph.cuts:
        try:
            parts[cut] = Parts(*split_at(whole, cut, graph), spec.case_shape(cut))
        except PartitionError:
            continue  # a path around this cut: not a place to split
    cuts = tuple(parts)
    activations = {cut: parts[cut].activation(cases) for cut in cuts}
    losses: dict[tuple[str, Encoding], float] = {}
    for cut in cuts:
        for encoding in ENCODINGS:
            blob, scale = encode(activations[cut], encoding)
            out = parts[cut].finish(decode(blob, encoding, activations[cut].shape, scale))
            labels = Predictions.from_outputs(
                entry, out[entry.probabilities_output], out.get(entry.label_output or "")
            ).labels
            losses[(cut, encoding)] = float(np.mean(labels == truth))
    whole_accuracy = losses[(cuts[0], "float32")]  # the input's float32 tail is the whole model

    def timed(session: Any, cut: str) -> float:
        one = activations[cut][:1].reshape(1, *spec.case_shape(cut))  # one case, as a device runs it
        feeds = {session.get_inputs()[0].name: one.astype(cases.dtype) if cut == graph.input else one}
        _median_ms(session.run, feeds, 20)  # warm-up
        return _median_ms(session.run, feeds, repeat)

    extractor = onnx.utils.Extractor(with_shapes(whole, cuts))
    segment_ms = []
    for start, end in pairwise(cuts):
        segment = extractor.extract_model([start], [end]).SerializeToString()
        segment_ms.append(timed(ort.InferenceSession(segment, options, providers=["CPUExecutionProvider"]), start))
    label_ms = timed(parts[cuts[-1]].tail, cuts[-1])  # the last cut's tail: the rest of the model
    losses = {k: round((whole_accuracy - v) * 100, 3) for k, v in losses.items()}
    return ModelProfile(cuts, tuple(segment_ms), label_ms, tuple(spec.cut_widths[c] for c in cuts),
                        whole_accuracy, losses)  # fmt: skip
