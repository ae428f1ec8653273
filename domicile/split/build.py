"""Train and export the splittable model (scikit-learn, then skl2onnx), reproducibly: same seed, same bytes.

Build-time only (`domicile split build`): it registers the model in the one registry, role `split`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.project import registry_dir
from domicile.config.topology import Topology, load_topology
from domicile.models.datasets import CLASS_LABELS, DigitsSplits, load_digits_splits
from domicile.models.drift import InputBaseline
from domicile.models.registry import ModelEntry, ModelMetrics, SplitSpec, TensorSpec
from domicile.split.model import CUTS, HIDDEN, INPUT, N_INPUT, NAME, OUTPUTS, TARGET_OPSET, VERSION, cut_widths, upscale


def _rename(model: Any, names: dict[str, str]) -> None:
    for node in model.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def to_onnx_bytes(estimator: Any) -> bytes:
    """The fitted pipeline as ONNX, with the cut tensors renamed to `CUTS`."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, N_INPUT]))],
        target_opset=TARGET_OPSET,
        options={id(estimator): {"zipmap": False}},
    )
    scaled = next(n.output[0] for n in model.graph.node if n.op_type == "Cast")  # the scaler's float output
    relus = [n.output[0] for n in model.graph.node if n.op_type == "Relu"]
    if len(relus) != len(HIDDEN):
        raise RuntimeError(f"expected {len(HIDDEN)} hidden activations in the converted graph, found {len(relus)}")
    _rename(model, {scaled: "scaled"} | {old: f"hidden{i + 1}" for i, old in enumerate(relus)})
    # Declared shapes at every cut, so the graph can be cut there (onnx.utils.Extractor needs them).
    from onnx import TensorProto, helper

    declared = {v.name for v in model.graph.value_info} | {o.name for o in model.graph.output}
    for name, width in cut_widths().items():
        if name not in declared and name != INPUT:
            model.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width]))
    model.graph.name = NAME
    model.doc_string = ""
    return bytes(model.SerializeToString(deterministic=True))


def train(splits: DigitsSplits, max_iter: int = 60) -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=max_iter, random_state=splits.seed)
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from domicile.models.blas import reproducible_blas

    # The same BLAS kernels on one thread: summation order depends on both, and the bytes must not.
    with warnings.catch_warnings(), reproducible_blas():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of epochs, on purpose
        estimator.fit(upscale(splits.train.x), splits.train.y)
    return estimator


def build(
    model_dir: Path | None = None, seed: int = 7, max_iter: int = 60, topology: Topology | None = None
) -> ModelEntry:
    """Train and export the whole model, and register it (role `split`); `partition` adds its parts."""
    import onnxruntime as ort

    from domicile.models.lifecycle import register

    model_dir = registry_dir(model_dir)
    placement = (topology or load_topology()).models.get(NAME)
    splits = load_digits_splits(seed)
    blob = to_onnx_bytes(train(splits, max_iter))
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        return round(float(np.mean(session.run(["label"], {INPUT: upscale(x)})[0] == y)), 6)

    layers = "->".join(str(n) for n in (N_INPUT, *HIDDEN, len(CLASS_LABELS)))
    entry = ModelEntry(
        name=NAME, version=VERSION, role="split", file=f"{NAME}-{VERSION}.onnx",
        sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob),
        input=TensorSpec(name=INPUT, shape=(-1, N_INPUT), dtype="float32"),
        label_output=OUTPUTS[0], probabilities_output=OUTPUTS[1], class_labels=CLASS_LABELS,
        metrics=ModelMetrics(validation_accuracy=accuracy(splits.validation.x, splits.validation.y),
                             test_accuracy=accuracy(splits.test.x, splits.test.y)),
        allowed_jurisdictions=placement.jurisdictions if placement else ("eu", "us"),
        seed=seed, training_data_sha256=splits.fingerprint(), description=f"MLP {layers}",
        baseline=InputBaseline.from_training(upscale(splits.train.x)),
        split=SplitSpec(cuts=CUTS, cut_widths=cut_widths()),
    )  # fmt: skip
    register(model_dir, entry, blob)
    return entry
