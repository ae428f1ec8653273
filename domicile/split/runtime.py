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
from domicile.models.runtime import Predictions, verified_model_bytes
from domicile.models.validation import input_batch
from domicile.split.codec import from_payload, to_payload
from domicile.split.model import INPUT, N_INPUT, NAME, split_entry, upscale
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


def reads_digits_sensor(entry: ModelEntry) -> bool:
    """The digits split model reads the 8x8 sensor at 32x32 (see split.model); any other model reads its input."""
    return entry.name == NAME and entry.input.case_shape == (N_INPUT,)


class SplitHead:
    """The device half: the model's input in (the digits model: 8x8 digits), one encoded activation per case out."""

    def __init__(self, model_dir: Path, name: str, cut: str, encoding: Encoding, intra_op_threads: int = 1) -> None:
        entry, spec = split_entry(load_manifest(Path(model_dir)), name)
        self.cut = cut
        self.encoding = encoding
        self.width = spec.cut_widths.get(cut, 0)
        self._upscale = reads_digits_sensor(entry)
        self.input = SENSOR_INPUT if self._upscale else entry.input  # what the device's cases look like
        self._model_input = entry.input.name
        # Cutting at the input leaves nothing to run on the device: it sends the input itself.
        part = None if cut == entry.input.name else _part(entry, spec, cut, "head")
        self._session = _session(Path(model_dir), part, intra_op_threads) if part else None
        self.model_ref = ModelRef(name=entry.name, version=entry.version, sha256=head_sha256(entry, spec, cut))

    def activations(self, features: object) -> np.ndarray:
        """(N, width) float32 activations at the cut, flat, for N cases."""
        batch = input_batch(features, self.input, "features")
        if self._upscale:
            batch = upscale(batch)
        if self._session is not None:
            batch = self._session.run([self.cut], {self._model_input: batch})[0]
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)

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
        self._entry = entry
        self._case_shape = spec.case_shape(cut)
        # At the input cut the tail is the whole model, which takes its own input dtype.
        self._dtype = np.dtype(entry.input.dtype) if cut == entry.input.name else np.dtype(np.float32)

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
        feed = matrix.reshape(len(matrix), *self._case_shape).astype(self._dtype)
        out = dict(zip(self._outputs, self._session.run(self._outputs, {self.cut: feed}), strict=True))
        entry = self._entry
        scores = out.get(entry.probabilities_output, matrix)  # the digits' last cut sends the probabilities
        predictions = Predictions.from_outputs(entry, scores, out.get(entry.label_output or ""))
        return [
            answer_envelope(request, self.model_ref, predictions.row(i), "split", escalated=False)
            for i, request in enumerate(requests)
        ]
