"""A user's own model the project never saw, for the tests: [N, 3, 8] windows, 4 classes, logits out.

Written with onnx.helper, as a user might; its validation data is drawn so that the model is accurate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from domicile.models.add import AddRequest, add_model

RNG = np.random.default_rng(3)
CHANNELS, STEPS, CLASSES = 3, 8, 4


def windows_model(path: Path, *, dtype: int | None = None, inputs: int = 1, batch: str | int = "N") -> Path:
    """A rank-3 classifier written with onnx.helper: [N, 3, 8] windows -> flatten -> linear -> logits [N, 4].

    Class k's windows have mean k in channel k % 3 (what the weights look at), so it is accurate.
    """
    from onnx import TensorProto, helper, numpy_helper

    elem = dtype or TensorProto.FLOAT
    weights = np.zeros((CHANNELS * STEPS, CLASSES), np.float32)
    for k in range(CLASSES):
        weights[(k % CHANNELS) * STEPS : (k % CHANNELS + 1) * STEPS, k] = 1.0 + k
    bias = np.array([-(1.0 + k) * STEPS * k / 2 for k in range(CLASSES)], np.float32)
    nodes = [helper.make_node("Cast", ["window"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["as_float"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "weights"], ["product"]),
             helper.make_node("Add", ["product", "bias"], ["logits"])]  # fmt: skip
    graph_inputs = [helper.make_tensor_value_info("window", elem, [batch, CHANNELS, STEPS])]
    graph_inputs += [helper.make_tensor_value_info(f"extra{i}", elem, ["N", 1]) for i in range(1, inputs)]
    graph = helper.make_graph(
        nodes, "windows", graph_inputs, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        initializer=[numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def windows_data(path: Path, cases: int = 200, labels: bool = False) -> tuple[Path, np.ndarray, np.ndarray]:
    y = RNG.integers(0, CLASSES, cases)
    x = RNG.normal(0, 0.3, (cases, CHANNELS, STEPS)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, k % CHANNELS] += k
    np.savez(path, x=x, y=np.array(["idle", "walk", "run", "jump"])[y] if labels else y)
    return path, x, y


def request(tmp_path: Path, **overrides: object) -> AddRequest:
    fields: dict[str, object] = {
        "file": tmp_path / "windows.onnx", "name": "windows", "version": "1.0.0", "role": "edge",
        "validation": tmp_path / "val.npz", "jurisdictions": ("eu",), "labels": ("idle", "walk", "run", "jump"),
    }  # fmt: skip
    return AddRequest(**(fields | overrides))  # type: ignore[arg-type]


def user_registry(folder: Path, work: Path) -> Path:
    """A copy of `MODELS` in `folder` plus the windows edge model and its cloud twin (same input, labels)."""
    from tests.conftest import MODELS

    shutil.copytree(MODELS, folder)
    work.mkdir(parents=True, exist_ok=True)
    windows_model(work / "windows.onnx")
    windows_data(work / "val.npz", labels=True)
    add_model(folder, request(work))
    add_model(folder, request(work, name="windows-cloud", role="cloud"))
    return folder
