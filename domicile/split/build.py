"""Train and export the splittable model (scikit-learn, then skl2onnx), reproducibly: same seed, same bytes.

Build-time only (`domicile split build`); the schema it writes is `split.model`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from domicile.config.project import split_dir
from domicile.models.datasets import CLASS_LABELS, DigitsSplits, load_digits_splits
from domicile.split.model import (
    CUTS,
    HIDDEN,
    INPUT,
    N_INPUT,
    NAME,
    OUTPUTS,
    TARGET_OPSET,
    VERSION,
    SplitManifest,
    cut_widths,
    part_entry,
    upscale,
    write_split_manifest,
)


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


def build(out_dir: Path | None = None, seed: int = 7, max_iter: int = 60) -> SplitManifest:
    """Train, export and write the whole model and its manifest (partitions are added by `partition`)."""
    import onnxruntime as ort

    out_dir = out_dir or split_dir()

    splits = load_digits_splits(seed)
    blob = to_onnx_bytes(train(splits, max_iter))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}-{VERSION}.onnx"
    path.write_bytes(blob)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {INPUT: upscale(splits.test.x)})[0]
    widths = cut_widths()
    manifest = SplitManifest(
        name=NAME, version=VERSION, seed=seed, training_data_sha256=splits.fingerprint(), hidden_layers=HIDDEN,
        cuts=CUTS, cut_widths=widths, class_labels=CLASS_LABELS,
        test_accuracy=round(float(np.mean(labels == splits.test.y)), 6), allowed_jurisdictions=("eu", "us"),
        model=part_entry(path, (INPUT,), OUTPUTS),
    )  # fmt: skip
    write_split_manifest(manifest, out_dir)
    return manifest
