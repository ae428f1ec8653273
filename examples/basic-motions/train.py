"""Two activity classifiers for 6-axis motion windows, trained and exported the way a user would.

BasicMotions (it ships with sktime, no download): accelerometer and gyroscope, 6 channels x 100
steps, four activities (badminton, running, standing, walking), 40 training and 40 test windows.
This script knows nothing of domicile. It writes:

- `motion-edge.onnx`: per-channel mean and standard deviation, then a logistic regression, written
  with onnx.helper; input `window` [N, 6, 100] float32, one output `logits` [N, 4];
- `motion-cloud.onnx`: mean, standard deviation, minimum and maximum per channel, then an MLP
  converted by skl2onnx and joined to the feature graph with onnx.compose; outputs `label` and
  `probabilities`, as skl2onnx writes them;
- `validation.npz`: the test windows (`x`) and their activity names (`y`).

    python examples/basic-motions/train.py --out /tmp/motion
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto, compose, helper, numpy_helper

OPSET = 17
CHANNELS, STEPS = 6, 100


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sktime.datasets import load_basic_motions

    x, y = load_basic_motions(split=split, return_type="numpy3D")
    return np.asarray(x, dtype=np.float32), np.asarray(y).astype(str)


def statistics(x: np.ndarray, extremes: bool) -> np.ndarray:
    """What the feature graph computes, in numpy: per-channel mean and std (and min, max)."""
    parts = [x.mean(axis=2), x.std(axis=2)] + ([x.min(axis=2), x.max(axis=2)] if extremes else [])
    return np.concatenate(parts, axis=1).astype(np.float32)


def feature_nodes(extremes: bool) -> list[NodeProto]:
    """window [N, 6, 100] -> features [N, 12] (or [N, 24] with extremes)."""
    nodes = [
        helper.make_node("ReduceMean", ["window"], ["mean_kept"], axes=[2], keepdims=1),
        helper.make_node("ReduceMean", ["window"], ["mean"], axes=[2], keepdims=0),
        helper.make_node("Sub", ["window", "mean_kept"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceMean", ["squared"], ["variance"], axes=[2], keepdims=0),
        helper.make_node("Sqrt", ["variance"], ["std"]),
    ]
    inputs = ["mean", "std"]
    if extremes:
        nodes += [helper.make_node("ReduceMin", ["window"], ["min"], axes=[2], keepdims=0),
                  helper.make_node("ReduceMax", ["window"], ["max"], axes=[2], keepdims=0)]  # fmt: skip
        inputs += ["min", "max"]
    return [*nodes, helper.make_node("Concat", inputs, ["features"], axis=1)]


def window_input() -> ValueInfoProto:
    return helper.make_tensor_value_info("window", TensorProto.FLOAT, ["N", CHANNELS, STEPS])


def edge_model(x: np.ndarray, y: np.ndarray) -> tuple[ModelProto, list[str]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = statistics(x, extremes=False)
    scaler = StandardScaler().fit(features)
    classifier = LogisticRegression(max_iter=2000).fit(scaler.transform(features), y)
    # logits = ((features - mean) / scale) @ coef.T + intercept, as one graph
    weights = (classifier.coef_ / scaler.scale_).T.astype(np.float32)
    bias = (classifier.intercept_ - (scaler.mean_ / scaler.scale_) @ classifier.coef_.T).astype(np.float32)
    graph = helper.make_graph(
        [*feature_nodes(extremes=False), helper.make_node("MatMul", ["features", "weights"], ["product"]),
         helper.make_node("Add", ["product", "bias"], ["logits"])],
        "motion-edge", [window_input()],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(classifier.classes_)])],
        initializer=[numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model, [str(c) for c in classifier.classes_]


def cloud_model(x: np.ndarray, y: np.ndarray) -> tuple[ModelProto, list[str]]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = statistics(x, extremes=True)
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=3000, random_state=0))
    pipeline.fit(features, y)
    head = helper.make_model(
        helper.make_graph(feature_nodes(extremes=True), "features", [window_input()],
                          [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4 * CHANNELS])]),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )  # fmt: skip
    head.ir_version = 8
    mlp = to_onnx(pipeline, initial_types=[("features", FloatTensorType([None, 4 * CHANNELS]))],
                  target_opset=OPSET, options={id(pipeline): {"zipmap": False}})  # fmt: skip
    mlp.ir_version = 8
    return compose.merge_models(head, mlp, io_map=[("features", "features")]), [str(c) for c in pipeline.classes_]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("motion-models"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = load("train")
    x_test, y_test = load("test")
    edge, edge_labels = edge_model(x_train, y_train)
    cloud, cloud_labels = cloud_model(x_train, y_train)
    assert edge_labels == cloud_labels, "both models score the activities in the same order"
    (out / "motion-edge.onnx").write_bytes(edge.SerializeToString())
    (out / "motion-cloud.onnx").write_bytes(cloud.SerializeToString())
    np.savez(out / "validation.npz", x=x_test, y=y_test)
    print(f"labels: {','.join(edge_labels)}")


if __name__ == "__main__":
    main()
