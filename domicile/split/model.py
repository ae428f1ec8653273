"""The splittable model: a deeper MLP on the digits read at 32x32, with a named tensor at every cut.

The digits are 8x8; the split model reads them as a 32x32 sensor would deliver them (each pixel a
4x4 block: no new information, a larger input), so that where the model is cut matters: sending the
input costs 1,024 values, the 32-wide bottleneck after the first layer only 32. Layers after the
bottleneck are wide, so running them on a slow device costs time. Same seed, same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from domicile.config.project import split_dir
from domicile.models.datasets import CLASS_LABELS, DigitsSplits, load_digits_splits

NAME = "digits-deep"
VERSION = "1.0.0"
INPUT = "pixels"
UPSCALE = 4
N_INPUT = 64 * UPSCALE * UPSCALE
HIDDEN = (32, 768, 768)
# Candidate cuts, in graph order: the input (all in the cloud) ... the probabilities (all on the device).
CUTS = ("pixels", "scaled", "hidden1", "hidden2", "hidden3", "probabilities")
OUTPUTS = ("label", "probabilities")
TARGET_OPSET = 17


def upscale(x: np.ndarray) -> np.ndarray:
    """8x8 digits as a 32x32 sensor sees them: every pixel a 4x4 block."""
    blocks = np.kron(np.asarray(x, dtype=np.float32).reshape(-1, 8, 8), np.ones((1, UPSCALE, UPSCALE), np.float32))
    return blocks.reshape(len(blocks), N_INPUT)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartEntry(_Frozen):
    """One ONNX file of the split model: the whole, a head or a tail."""

    file: str
    sha256: str
    size_bytes: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class SplitManifest(_Frozen):
    name: str
    version: str
    seed: int
    training_data_sha256: str
    hidden_layers: tuple[int, ...]
    cuts: tuple[str, ...]
    cut_widths: dict[str, int]
    class_labels: tuple[str, ...]
    test_accuracy: float
    allowed_jurisdictions: tuple[str, ...]
    model: PartEntry
    parts: dict[str, PartEntry] = {}  # "<cut>/head", "<cut>/tail"


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


def cut_widths() -> dict[str, int]:
    widths = {"pixels": N_INPUT, "scaled": N_INPUT} | {f"hidden{i + 1}": w for i, w in enumerate(HIDDEN)}
    return widths | {"probabilities": len(CLASS_LABELS)}


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


def part_entry(path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> PartEntry:
    blob = path.read_bytes()
    return PartEntry(file=path.name, sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob),
                     inputs=inputs, outputs=outputs)  # fmt: skip


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


def write_split_manifest(manifest: SplitManifest, out_dir: Path) -> Path:
    path = out_dir / "manifest.json"
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def load_split_manifest(model_dir: Path | None = None) -> SplitManifest:
    from domicile.errors import ConfigError

    path = (model_dir or split_dir()) / "manifest.json"
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run `domicile split build`")
    return SplitManifest.model_validate_json(path.read_text())
