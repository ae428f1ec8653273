"""onnxruntime sessions: one per model per process, loaded only after the sha256 matches.

The runtime reads its models through the protocols of domicile.models.views: given no manifest it
loads the registry's (pydantic) one, and the HTTP function hands it the pydantic-free reading of
domicile.models.serving.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from domicile.errors import ModelIntegrityError, ModelNotFoundError
from domicile.models.scores import softmax
from domicile.models.validation import input_batch

if TYPE_CHECKING:
    from domicile.models.registry import ModelEntry
    from domicile.models.views import EntryView, ManifestView

# Covariant: a runtime over the registry's ModelEntry serves wherever any entry view will do.
E = TypeVar("E", bound="EntryView", covariant=True)


@dataclass(frozen=True)
class Predictions:
    model: EntryView
    labels: NDArray[np.int64]  # class indexes into model.class_labels
    probabilities: NDArray[np.float32]
    scores: NDArray[np.float32]  # the model's own scores output (the probabilities, or its logits)

    @classmethod
    def from_outputs(cls, entry: EntryView, scores: Any, label: Any | None) -> Predictions:
        """Class indexes and probabilities from a model's outputs, as its registry entry describes them."""
        raw = np.asarray(scores, dtype=np.float32).reshape(len(scores), -1)
        probabilities = softmax(raw) if entry.scores == "logits" else raw
        if label is None:
            labels = np.argmax(probabilities, axis=1).astype(np.int64)
        else:
            labels = _label_indexes(entry, np.asarray(label))
        return cls(entry, labels, probabilities, raw)

    @property
    def confidence(self) -> NDArray[np.float32]:
        return np.asarray(self.probabilities.max(axis=1), dtype=np.float32)

    def row(self, i: int) -> dict[str, Any]:
        label = int(self.labels[i])
        return {
            "label": self.model.class_labels[label],
            "confidence": round(float(self.probabilities[i].max()), 6),
        }


def _label_indexes(entry: EntryView, labels: NDArray[Any]) -> NDArray[np.int64]:
    """A label output's values as class indexes: integers are indexes already, strings are class labels."""
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    index = {label: i for i, label in enumerate(entry.class_labels)}
    try:
        return np.asarray([index[str(v)] for v in labels], dtype=np.int64)
    except KeyError as exc:
        raise ModelIntegrityError(f"{entry.name} {entry.version} answered label {exc.args[0]!r}, not one of its "
                                  f"class labels") from exc  # fmt: skip


def verified_model_bytes(path: Path, expected_sha256: str) -> bytes:
    """Read a model file and return its bytes only if they hash to the expected digest."""
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"refusing to load {path.name}: sha256 {actual} does not match the manifest's {expected_sha256}"
        )
    return blob


class ModelRuntime(Generic[E]):
    """Serves the edge and cloud models of one registry; sessions are created on first use and then reused.

    Split models are served in parts (domicile.split.runtime), never whole from here.
    """

    @overload
    def __init__(
        self: ModelRuntime[ModelEntry], model_dir: Path, manifest: None = None, intra_op_threads: int = 1
    ) -> None: ...
    @overload
    def __init__(self, model_dir: Path, manifest: ManifestView[E], intra_op_threads: int = 1) -> None: ...
    def __init__(self, model_dir: Path, manifest: ManifestView[Any] | None = None, intra_op_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        if manifest is None:
            from domicile.models.registry import load_manifest  # pydantic: only callers that want all of it

            manifest = load_manifest(self.model_dir)
        self.manifest = cast("ManifestView[E]", manifest)  # E is what the overload it came through says
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = intra_op_threads
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()
        self._pinned: dict[str, E] = {}  # a name served by another version than the deployed one
        self._served = self.manifest.served  # looked up on every request: computed once

    def entry(self, name: str) -> E:
        entry = self._pinned.get(name) or self._served.get(name)
        if entry is None:
            raise ModelNotFoundError(name, list(self._served))
        return entry

    def load_or_fall_back(self, name: str) -> str | None:
        """Load the deployed version; if it will not load, the newest earlier version that does.

        Returns None when the deployed version loaded, else what happened (for the device to report).
        A device mid-rollout keeps answering with the model it had rather than stopping.
        """
        try:
            self.session(name)
            return None
        except (ModelIntegrityError, OSError, RuntimeError) as exc:  # hash mismatch, missing file, ORT load error
            failed, reason = self.entry(name), f"{type(exc).__name__}: {exc}"
        stages = self.manifest.stages[name]
        earlier = ([stages.live] if stages.canary else []) + list(reversed(stages.history))
        for version in earlier:
            self._pinned[name] = self.manifest.versions[name][version]
            try:
                self.session(name)
            except (ModelIntegrityError, OSError, RuntimeError):
                continue
            return f"{name} {failed.version} failed to load ({reason}); serving {version}"
        self._pinned.pop(name, None)
        raise ModelIntegrityError(f"{name} {failed.version} failed to load and no earlier version loads: {reason}")

    def session(self, name: str) -> ort.InferenceSession:
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                session = self._sessions.get(name)
                if session is None:
                    entry = self.entry(name)
                    # Hash and load the same bytes, so the file cannot change in between.
                    blob = verified_model_bytes(self.model_dir / entry.file, entry.sha256)
                    session = ort.InferenceSession(blob, self._options, providers=["CPUExecutionProvider"])
                    self._sessions[name] = session
        return session

    def warm(self, *names: str) -> None:
        for name in names or tuple(self._served):
            self.session(name)

    def predict(self, name: str, features: Any, field: str = "features") -> Predictions:
        """Validate `features` for model `name` and run them in one vectorized call."""
        entry = self.entry(name)
        return self.run(entry, input_batch(features, entry.input, field))

    def run(self, entry: EntryView, batch: NDArray[Any]) -> Predictions:
        """One vectorized run over a batch already validated for `entry`'s input."""
        if entry.label_output is None:
            (scores,) = self.session(entry.name).run([entry.probabilities_output], {entry.input.name: batch})
            return Predictions.from_outputs(entry, scores, None)
        label, scores = self.session(entry.name).run(
            [entry.label_output, entry.probabilities_output], {entry.input.name: batch}
        )
        return Predictions.from_outputs(entry, scores, label)
