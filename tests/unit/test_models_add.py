"""`domicile models add`: a model the project never saw, of another rank, registered from its file alone."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from domicile.errors import InputError
from domicile.models.add import add_model, prepare
from domicile.models.registry import load_manifest
from domicile.models.runtime import ModelRuntime
from tests.conftest import MODELS, run_cli
from tests.user_models import CHANNELS, RNG, STEPS, request, windows_data, windows_model


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(MODELS, folder)
    return folder


def test_a_rank_3_logits_model_registers_with_its_shape_labels_and_threshold(tmp_path, registry):
    windows_model(tmp_path / "windows.onnx")
    _, x, y = windows_data(tmp_path / "val.npz", labels=True)
    entry = add_model(registry, request(tmp_path))
    raw = json.loads((registry / "manifest.json").read_text())  # the store itself
    stored = raw["versions"]["windows"]["1.0.0"]
    assert raw["stages"]["windows"]["live"] == "1.0.0"  # a model's first version goes live
    assert stored["input"] == {"name": "window", "shape": [-1, CHANNELS, STEPS], "dtype": "float32"}
    assert (stored["label_output"], stored["probabilities_output"], stored["scores"]) == (None, "logits", "logits")
    assert stored["class_labels"] == ["idle", "walk", "run", "jump"]
    assert stored["escalation"]["threshold"] > 0 and stored["baseline"]["statistic"] == "mean input value"
    copied = (registry / stored["file"]).read_bytes()
    assert (
        hashlib.sha256(copied).hexdigest()
        == stored["sha256"]
        == hashlib.sha256((tmp_path / "windows.onnx").read_bytes()).hexdigest()
    )
    data = registry / stored["validation_data"]["file"]
    assert hashlib.sha256(data.read_bytes()).hexdigest() == stored["validation_data"]["sha256"]
    # Served like any model: the recorded accuracy is what the runtime scores, softmax applied.
    predictions = ModelRuntime(registry).predict("windows", x.reshape(len(x), -1).tolist())  # flat cases too
    assert float(np.mean(predictions.labels == y)) == pytest.approx(entry.metrics.validation_accuracy)
    assert entry.metrics.validation_accuracy >= 0.95
    assert np.allclose(predictions.probabilities.sum(axis=1), 1, atol=1e-5)
    assert predictions.row(0)["label"] in entry.class_labels


def test_a_skl2onnx_model_with_label_and_probabilities_registers_as_a_cloud_model(tmp_path, registry):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    _, x, y = windows_data(tmp_path / "val.npz")
    flat = x.reshape(len(x), -1)
    model = LogisticRegression(max_iter=500).fit(flat, y)
    onnx_model = to_onnx(model, flat[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (tmp_path / "flat.onnx").write_bytes(onnx_model.SerializeToString())
    np.savez(tmp_path / "flat.npz", x=flat, y=y)
    entry = add_model(registry, request(tmp_path, file=tmp_path / "flat.onnx", validation=tmp_path / "flat.npz",
                                        role="cloud", name="flat", labels=None))  # fmt: skip
    assert (entry.label_output, entry.probabilities_output, entry.scores) == ("label", "probabilities", "probabilities")
    assert entry.class_labels == ("0", "1", "2", "3") and entry.escalation is None
    assert entry.metrics.validation_accuracy == pytest.approx(float(np.mean(model.predict(flat) == y)), abs=1e-6)


def _zipmap_model(path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(40, 4)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path.write_bytes(to_onnx(model, x[:1], target_opset=17).SerializeToString())  # ZipMap by default


@pytest.mark.parametrize(
    ("setup", "field", "reason"),
    [
        (lambda t: (t / "windows.onnx").write_bytes(b"not onnx"), "FILE", "is not an ONNX model onnxruntime can load"),
        (lambda t: windows_model(t / "windows.onnx", inputs=2), "inputs",
         "the model has 2 inputs ('window', 'extra1'); domicile serves models with one"),
        (lambda t: windows_model(t / "windows.onnx", batch=1), "inputs.window.shape",
         "has no batch axis (its first axis is fixed at 1); export it with a dynamic first axis"),
        (lambda t: _zipmap_model(t / "windows.onnx"), "outputs.output_probability", "is a ZipMap"),
        (lambda t: np.savez(t / "val.npz", x=np.zeros((5, 3, 7), np.float32), y=np.zeros(5, int)),
         "--validation x", "each case must be shaped [3, 8], got [3, 7]"),
        (lambda t: np.savez(t / "val.npz", x=np.zeros((5, 3, 8), np.float32), y=np.zeros(4, int)),
         "--validation y", "needs one label per case (5), got shape [4]"),
        (lambda t: np.savez(t / "val.npz", x=np.full((5, 3, 8), np.nan, np.float32), y=np.zeros(5, int)),
         "--validation x", "row 0 holds NaN or infinity"),
        (lambda t: np.savez(t / "val.npz", x=np.zeros((5, 3, 8), np.float32)), "--validation y",
         "val.npz has no array 'y' (it has x)"),
        (lambda t: np.savez(t / "val.npz", x=np.zeros((5, 3, 8), np.float32), y=np.array(["idle"] * 4 + ["fly"])),
         "--validation y", "label 'fly' is not one of the labels (idle, walk, run, jump)"),
    ],
)  # fmt: skip
def test_a_bad_model_or_validation_file_is_refused_naming_the_field_and_nothing_is_written(
    tmp_path, registry, setup, field, reason
):
    windows_model(tmp_path / "windows.onnx")
    windows_data(tmp_path / "val.npz")
    setup(tmp_path)
    before = (registry / "manifest.json").read_bytes()
    with pytest.raises(InputError) as err:
        add_model(registry, request(tmp_path))
    assert err.value.field == field and reason in err.value.reason, str(err.value)
    assert (registry / "manifest.json").read_bytes() == before
    assert not list(registry.glob("windows-*"))


def test_labels_that_do_not_match_the_output_width_are_refused(tmp_path):
    windows_model(tmp_path / "windows.onnx")
    windows_data(tmp_path / "val.npz")
    with pytest.raises(InputError, match=r"--labels: 3 labels for a model that scores 4 classes"):
        prepare(request(tmp_path, labels=("a", "b", "c")))


def test_the_same_version_with_other_bytes_is_refused(tmp_path, registry):
    windows_model(tmp_path / "windows.onnx")
    windows_data(tmp_path / "val.npz")
    add_model(registry, request(tmp_path))
    windows_model(tmp_path / "windows.onnx", batch="batch")  # another graph, the same version
    with pytest.raises(Exception, match=r"windows 1\.0\.0 already exists with sha256"):
        add_model(registry, request(tmp_path))
    add_model(registry, request(tmp_path, version="1.1.0"))  # as a new version it is welcome, not promoted
    assert load_manifest(registry).stages["windows"].live == "1.0.0"


@pytest.mark.parametrize("dtype", ["float16", "float64", "int8", "uint8", "int32", "int64"])
def test_every_listed_input_dtype_is_recorded_and_served(tmp_path, registry, dtype):
    from onnx import helper

    windows_model(tmp_path / "windows.onnx", dtype=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    _, x, y = windows_data(tmp_path / "val.npz")
    np.savez(tmp_path / "val.npz", x=np.clip(np.rint(x), 0, 5).astype(dtype), y=y)
    entry = add_model(registry, request(tmp_path, name=f"w-{dtype}"))
    assert entry.input.dtype == dtype
    batch = ModelRuntime(registry).predict(entry.name, np.clip(np.rint(x[:3]), 0, 5).tolist())
    assert len(batch.labels) == 3


def test_the_cli_adds_a_model_and_lists_it(tmp_path, registry):
    windows_model(tmp_path / "windows.onnx")
    windows_data(tmp_path / "val.npz", labels=True)
    done = run_cli("models", "add", str(tmp_path / "windows.onnx"), "--name", "windows", "--version", "1.0.0",
                   "--role", "edge", "--validation", str(tmp_path / "val.npz"), "--labels", "idle,walk,run,jump",
                   "--jurisdictions", "eu", "--models", str(registry))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "windows 1.0.0 (edge): input 'window' [-1, 3, 8] float32, scores 'logits' (logits), 4 classes" in done.stdout
    listed = run_cli("models", "list", "--models", str(registry))
    assert any(line.split()[:4] == ["windows", "edge", "1.0.0", "live"] for line in listed.stdout.splitlines())
    bad = run_cli("models", "add", str(tmp_path / "windows.onnx"), "--name", "windows", "--version", "2.0.0",
                  "--role", "edge", "--validation", str(tmp_path / "val.npz"), "--jurisdictions", "mars",
                  "--models", str(registry))  # fmt: skip
    assert bad.returncode == 2 and "--jurisdictions: unknown jurisdiction 'mars'" in bad.stderr


def test_a_registered_rank_3_model_is_served_over_oip_and_json_lines(tmp_path, registry):
    from domicile.cloud.jsonlines import infer_jsonlines
    from domicile.wire.oip import decode_infer_request, encode_infer_response, model_metadata

    windows_model(tmp_path / "windows.onnx")
    _, x, y = windows_data(tmp_path / "val.npz", labels=True)
    add_model(registry, request(tmp_path))
    runtime = ModelRuntime(registry)
    entry = runtime.entry("windows")
    cases = np.rint(x[:2]).astype(int)
    body = json.dumps({"inputs": [{"name": "window", "shape": [2, 3, 8], "datatype": "INT32",
                                   "data": cases.ravel().tolist()}]})  # fmt: skip
    decoded, batch = decode_infer_request(body, entry, max_rows=1024)
    assert batch.shape == (2, 3, 8) and batch.dtype == np.float32
    response = encode_infer_response(decoded, runtime.run(entry, batch)).header
    assert [o["name"] for o in response["outputs"]] == ["logits"]  # the model's own output, as it is
    assert response["outputs"][0]["shape"] == [2, 4]
    metadata = model_metadata(entry)
    assert metadata["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 3, 8]}]
    assert [o["name"] for o in metadata["outputs"]] == ["logits"] and metadata["parameters"]["scores"] == "logits"
    wrong = json.dumps({"inputs": [{"name": "window", "shape": [1, 3, 7], "datatype": "FP32", "data": [0] * 21}]})
    with pytest.raises(InputError) as err:
        decode_infer_request(wrong, entry, max_rows=1024)
    assert (err.value.field, err.value.reason) == ("inputs[0].data", "each case must be shaped [3, 8], got [3, 7]")
    lines = [
        json.dumps({"id": "nested", "features": x[0].tolist()}),
        json.dumps({"id": "flat", "features": x[1].ravel().tolist()}),
        json.dumps({"id": "short", "features": [0.0] * 23}),
    ]
    outcomes = infer_jsonlines("\n".join(lines), runtime, "windows")
    labels = ("idle", "walk", "run", "jump")
    assert [o.result["label"] for o in outcomes[:2] if o.result] == [labels[y[0]], labels[y[1]]]
    assert (
        outcomes[2].error is not None
        and "a flat case needs 24 values (a [3, 8] case), got 23" in outcomes[2].error.reason
    )


def test_a_user_split_model_is_cut_at_a_named_tensor_and_its_halves_answer_like_the_whole(tmp_path, registry):
    from domicile.split.partition import partition
    from domicile.split.runtime import SplitHead, SplitTail
    from domicile.wire.envelope import SplitEnvelope

    windows_model(tmp_path / "windows.onnx")
    _, x, y = windows_data(tmp_path / "val.npz", labels=True)
    entry = add_model(registry, request(tmp_path, name="windows-deep", role="split"))
    assert entry.split is not None
    assert entry.split.cuts == ("window", "as_float", "flat", "product")  # the input, then graph order
    assert entry.split.cut_widths["flat"] == 24 and entry.split.cut_shapes["as_float"] == (3, 8)
    cut = partition("flat", registry, "windows-deep")  # proven on the registered validation data
    assert cut.split is not None and set(cut.split.parts) == {"flat/head", "flat/tail"}
    head, tail = SplitHead(registry, "windows-deep", "flat", "float16"), SplitTail(registry, "windows-deep", "flat")
    assert head.input == entry.input and head.activations(x[:5]).shape == (5, 24)
    envelopes = [SplitEnvelope(device="d-0", fleet="f", jurisdiction="eu", home_region="eu-central-1",
                               model=head.model_ref, payload=p)
                 for p in head.payloads([f"c{i}" for i in range(len(x))], head.activations(x))]  # fmt: skip
    answers = [a.payload.labels[0] for a in tail.answer(envelopes)]
    names = ("idle", "walk", "run", "jump")
    assert np.mean([a == names[k] for a, k in zip(answers, y, strict=True)]) >= 0.95
    # The input cut runs everything in the cloud; an unknown tensor is refused naming the cuts.
    partition("window", registry, "windows-deep")
    with pytest.raises(Exception, match=r"cut: unknown tensor 'nope'; the cuts are window, as_float, flat, product"):
        partition("nope", registry, "windows-deep")


def test_a_cut_with_a_path_around_it_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from domicile.split.partition import Graph, PartitionError, split_at

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["scores"])], "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 4])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(PartitionError, match=r"cut r: does not separate the graph; after it, x is still needed"):
        split_at(model.SerializeToString(), "r", Graph("x", ("scores",), ("x", "r"), "scores", None))


def test_the_planner_profiles_a_user_split_model_on_its_own_cases(tmp_path, registry):
    from domicile.split.planner import NETWORKS, choose, options
    from domicile.split.profile import measure

    windows_model(tmp_path / "windows.onnx")
    windows_data(tmp_path / "val.npz", labels=True)
    add_model(registry, request(tmp_path, name="windows-deep", role="split"))
    profile = measure(registry, repeat=5, name="windows-deep")
    assert profile.cuts == ("window", "as_float", "flat", "product")  # every cut separates this graph
    assert profile.widths == (24, 24, 24, 4) and len(profile.segment_ms) == 3
    assert profile.accuracy >= 0.95  # the whole model on its validation data
    assert profile.accuracy_loss_pts[("flat", "float32")] == 0.0
    choice = choose(options(profile, NETWORKS["3g"], 10.0, 1.0))
    assert choice.cut in profile.cuts
