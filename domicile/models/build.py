"""Reproducible model builds: same seed and library versions give byte-identical ONNX files.

The edge model is a small linear classifier (fast, tiny, a few KB); the cloud model is a
multi-layer perceptron (slower, more accurate). Both get a scaler in front, inside the graph,
so callers send raw pixel values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.topology import ModelRole, Topology, load_topology
from domicile.errors import ConfigError
from domicile.models.datasets import CLASS_LABELS, N_FEATURES, DigitsSplits, load_digits_splits
from domicile.models.drift import InputBaseline
from domicile.models.registry import EscalationPolicy, Manifest, ModelEntry, ModelMetrics, TensorSpec, load_manifest

TARGET_OPSET = 17
INPUT_NAME = "pixels"
# An edge answer kept on the device must be right this often (on validation); below it, escalate.
CONFIDENT_ACCURACY_TARGET = 0.998


@dataclass(frozen=True)
class ModelRecipe:
    name: str
    version: str
    role: ModelRole
    description: str

    def estimator(self, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.role is ModelRole.EDGE:
            return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        return make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=500, random_state=seed)
        )


RECIPES = {
    ModelRole.EDGE: ModelRecipe("digits-edge", "1.0.0", ModelRole.EDGE, "logistic regression, 64->10"),
    ModelRole.CLOUD: ModelRecipe("digits-cloud", "1.0.0", ModelRole.CLOUD, "MLP 64->256->128->10"),
}


def _to_onnx_bytes(estimator: Any, name: str) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = to_onnx(
        estimator,
        initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
        target_opset=TARGET_OPSET,
        options={id(estimator): {"zipmap": False}},
    )
    onnx_model.graph.name = name
    onnx_model.doc_string = ""
    return bytes(onnx_model.SerializeToString(deterministic=True))


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float = CONFIDENT_ACCURACY_TARGET
) -> EscalationPolicy:
    """The lowest confidence threshold whose kept (confident) answers are at least `target` accurate."""
    for threshold in np.unique(np.round(confidence, 3)):
        kept = confidence >= threshold
        if kept.any() and float(np.mean(correct[kept])) >= target:
            return EscalationPolicy(
                threshold=round(float(threshold), 3),
                confident_accuracy_target=target,
                validation_confident_accuracy=round(float(np.mean(correct[kept])), 6),
                validation_escalation_rate=round(float(np.mean(~kept)), 6),
            )
    return EscalationPolicy(
        threshold=1.0,
        confident_accuracy_target=target,
        validation_confident_accuracy=1.0,
        validation_escalation_rate=1.0,
    )


def build_model(recipe: ModelRecipe, splits: DigitsSplits, topology: Topology, out_dir: Path) -> ModelEntry:
    from domicile.models.blas import reproducible_blas

    estimator = recipe.estimator(splits.seed)
    with reproducible_blas():  # the same kernels and one thread: the same bytes on any machine
        estimator.fit(splits.train.x, splits.train.y)
    blob = _to_onnx_bytes(estimator, recipe.name)
    file_name = f"{recipe.name}-{recipe.version}.onnx"
    (out_dir / file_name).write_bytes(blob)

    import onnxruntime as ort

    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        labels = session.run(["label"], {INPUT_NAME: x})[0]
        return round(float(np.mean(labels == y)), 6)

    escalation = None
    if recipe.role is ModelRole.EDGE:
        labels, probabilities = session.run(["label", "probabilities"], {INPUT_NAME: splits.validation.x})
        escalation = choose_threshold(np.asarray(probabilities).max(axis=1), labels == splits.validation.y)
    placement = topology.models[recipe.name]
    return ModelEntry(
        escalation=escalation,
        baseline=InputBaseline.from_training(splits.train.x),
        name=recipe.name,
        version=recipe.version,
        role=recipe.role.value,
        file=file_name,
        sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
        input=TensorSpec(name=INPUT_NAME, shape=(-1, N_FEATURES), dtype="float32"),
        label_output="label",
        probabilities_output="probabilities",
        class_labels=CLASS_LABELS,
        metrics=ModelMetrics(
            validation_accuracy=accuracy(splits.validation.x, splits.validation.y),
            test_accuracy=accuracy(splits.test.x, splits.test.y),
        ),
        allowed_jurisdictions=placement.jurisdictions,
        seed=splits.seed,
        training_data_sha256=splits.fingerprint(),
        description=recipe.description,
    )


def build_all(
    out_dir: Path, seed: int, topology: Topology | None = None, version: str | None = None
) -> tuple[Manifest, list[ModelEntry]]:
    """Build every digits model as `version` (default: its recipe's) into the registry in `out_dir`.

    Returns the registry as it now is and the entries this build made.

    A new version is added without being promoted (the first build of a model goes live). An
    existing version must come out byte-identical: versions are immutable.
    """
    from domicile.models.lifecycle import check_registrable, register

    topology = topology or load_topology()
    splits = load_digits_splits(seed)
    recipes = [dataclasses.replace(r, version=version) if version else r for r in RECIPES.values()]
    with tempfile.TemporaryDirectory() as staging:  # every model built and checked before any is registered
        built = [build_model(recipe, splits, topology, Path(staging)) for recipe in recipes]
        for entry in built:
            try:
                check_registrable(out_dir, entry)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (seed {seed}; build it with a new --version)") from exc
        for entry in built:
            register(out_dir, entry, (Path(staging) / entry.file).read_bytes())
    return load_manifest(out_dir), built
