"""The deployed split: the head a device runs and the tail the cloud runs, at the topology's cut.

Both halves load only files whose sha256 matches the split model's registry entry. The tail refuses activations
from any head but its own (the envelope carries the head's sha256): a head from another build
produces numbers that this tail would turn into confident nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from domicile.cloud.answers import answer_envelope
from domicile.errors import ConfigError, InputError
from domicile.models.registry import ModelEntry, SplitPart, SplitSpec, TensorSpec, load_manifest
from domicile.models.runtime import verified_model_bytes
from domicile.models.validation import input_batch
from domicile.split.codec import from_payload, to_payload
from domicile.split.model import INPUT, split_entry, upscale
from domicile.wire.envelope import Encoding, ModelRef, ResultEnvelope, SplitEnvelope, SplitPayload

# What the device's sensor hands over: 8x8 digits, which the head reads at 32x32.
SENSOR_INPUT = TensorSpec(name=INPUT, shape=(-1, 64), dtype="float32")


def _part(entry: ModelEntry, spec: SplitSpec, cut: str, half: str) -> SplitPart:
    if cut not in spec.cuts:
        raise ConfigError(f"cut: unknown tensor {cut!r}; the cuts are {', '.join(spec.cuts)}")
    part = spec.parts.get(f"{cut}/{half}")
    if part is None:
        raise ConfigError(
            f"models.{entry.name} {entry.version}: no {half} for cut {cut!r}; "
            f"run `domicile split partition --model {entry.name} --cut {cut}`"
        )
    return part


def _session(model_dir: Path, part: SplitPart, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    blob = verified_model_bytes(model_dir / part.file, part.sha256)
    return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])


def head_sha256(entry: ModelEntry, spec: SplitSpec, cut: str) -> str:
    """What identifies the device half: its head's hash (the whole model's when the cut is the input)."""
    part = spec.parts.get(f"{cut}/head")
    return part.sha256 if part else entry.sha256


class SplitHead:
    """The device half: 8x8 digits in, one encoded activation per case out."""

    input = SENSOR_INPUT

    def __init__(self, model_dir: Path, name: str, cut: str, encoding: Encoding, intra_op_threads: int = 1) -> None:
        entry, spec = split_entry(load_manifest(Path(model_dir)), name)
        self.cut = cut
        self.encoding = encoding
        self.width = spec.cut_widths.get(cut, 0)
        # Cutting at the input leaves nothing to run on the device: it sends the 32x32 pixels.
        part = None if cut == INPUT else _part(entry, spec, cut, "head")
        self._session = _session(Path(model_dir), part, intra_op_threads) if part else None
        self.model_ref = ModelRef(name=entry.name, version=entry.version, sha256=head_sha256(entry, spec, cut))

    def activations(self, features: object) -> np.ndarray:
        """(N, width) float32 activations at the cut for N rows of 64 features."""
        pixels = upscale(input_batch(features, self.input, "features"))
        if self._session is None:
            return pixels
        return np.asarray(self._session.run([self.cut], {INPUT: pixels})[0], dtype=np.float32)

    def payloads(self, case_ids: Sequence[str], activations: np.ndarray) -> list[SplitPayload]:
        return [to_payload(c, self.cut, row, self.encoding) for c, row in zip(case_ids, activations, strict=True)]


class SplitTail:
    """The cloud half: finishes the cases a head started, in one vectorized run per batch."""

    def __init__(self, model_dir: Path, name: str, cut: str, intra_op_threads: int = 1) -> None:
        entry, spec = split_entry(load_manifest(Path(model_dir)), name)
        part = _part(entry, spec, cut, "tail")
        self.cut = cut
        self.width = spec.cut_widths[cut]
        self.class_labels = entry.class_labels
        self.head_sha256 = head_sha256(entry, spec, cut)
        self.model_ref = ModelRef(name=entry.name, version=entry.version, sha256=part.sha256)
        self._session = _session(Path(model_dir), part, intra_op_threads)
        self._outputs = list(part.outputs)

    def activation(self, envelope: SplitEnvelope) -> np.ndarray:
        """The envelope's (1, width) activation, or an InputError naming what this tail cannot finish."""
        if envelope.model.sha256 != self.head_sha256:
            raise InputError(
                "model.sha256",
                f"made by head {envelope.model.sha256[:12]}, but this tail ({self.model_ref.name} "
                f"{self.model_ref.version} at {self.cut}) finishes head {self.head_sha256[:12]} only",
            )
        return from_payload(envelope.payload, self.cut, self.width)

    def answer(self, requests: list[SplitEnvelope]) -> list[ResultEnvelope]:
        if not requests:
            return []
        matrix = np.vstack([self.activation(r) for r in requests])
        out = dict(zip(self._outputs, self._session.run(self._outputs, {self.cut: matrix}), strict=True))
        probabilities = np.asarray(out.get("probabilities", matrix), dtype=np.float32)  # the last cut sends them
        labels = np.asarray(out["label"])
        answers = []
        for i, request in enumerate(requests):
            answer = {"label": self.class_labels[int(labels[i])], "confidence": round(float(probabilities[i].max()), 6)}
            answers.append(answer_envelope(request, self.model_ref, answer, "split", escalated=False))
        return answers
