"""The real OIP clients against `domicile serve`: tritonclient's HTTP client and the KServe SDK.

Both are used with their defaults (tritonclient sends inputs and asks for outputs in binary unless
told otherwise). The KServe SDK pins a psutil older than this project's broker needs, so it runs
from its own venv (.tools/kserve, made by `make test`), driven by tests/clients/kserve_calls.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from domicile.models.datasets import load_digits_splits
from domicile.models.runtime import ModelRuntime
from tests.conftest import MODELS, ROOT
from tests.served import Served

pytestmark = pytest.mark.xdist_group("serve")  # one server for the module, on one test worker

X = load_digits_splits().test.x[:5].astype(np.float32)
KSERVE_PYTHON = ROOT / ".tools" / "kserve" / "bin" / "python"
LOCAL = ModelRuntime(MODELS)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served(workers=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(served: Served) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(served.address)


def infer_input(array: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "domicile" and "binary_tensor_data" in metadata["extensions"]


@pytest.mark.parametrize("model", ["digits-cloud", "digits-edge"])
def test_model_metadata_and_readiness_by_name_and_version(client, model):
    for version in ("", "1.0.0"):
        metadata = client.get_model_metadata(model, version)
        assert metadata["name"] == model and metadata["versions"] == ["1.0.0"]
        assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
        assert client.is_model_ready(model, version)
    assert not client.is_model_ready(model, "9.9.9")
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(("datatype", "numpy_type"), [("FP32", np.float32), ("FP16", np.float16), ("INT64", np.int64)])
def test_infer_answers_like_the_model(client, datatype, numpy_type, binary):
    array = np.rint(X).astype(numpy_type)
    result = client.infer("digits-cloud", [infer_input(array, datatype, binary)], request_id="r-9")
    expected = LOCAL.predict("digits-cloud", array.astype(np.float32))
    np.testing.assert_array_equal(result.as_numpy("label"), expected.labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected.probabilities, atol=1e-6)
    assert result.get_response()["id"] == "r-9" and result.get_response()["model_version"] == "1.0.0"


def test_requested_outputs_binary_or_json_and_a_version_in_the_path(client):
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=False), triton.InferRequestedOutput("label")]
    result = client.infer("digits-edge", [infer_input(X, "FP32")], outputs=outputs, model_version="1.0.0")
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["probabilities", "label"]
    assert "data" in response["outputs"][0] and response["outputs"][1]["parameters"]["binary_data_size"] == 5 * 8
    np.testing.assert_array_equal(result.as_numpy("label"), LOCAL.predict("digits-edge", X).labels)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_a_compressed_answer_asked_for(client, algorithm):
    result = client.infer("digits-cloud", [infer_input(X, "FP32")], request_compression_algorithm=algorithm,
                          response_compression_algorithm=algorithm)  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("label"), LOCAL.predict("digits-cloud", X).labels)


def test_a_batch_at_the_row_limit_passes_and_one_more_row_is_refused(client):
    rows = np.resize(X, (1024, 64)).astype(np.float32)
    assert client.infer("digits-cloud", [infer_input(rows, "FP32")]).as_numpy("label").shape == (1024,)
    with pytest.raises(InferenceServerException, match=r"batch of 1025 rows is over the limit of 1024") as err:
        client.infer("digits-cloud", [infer_input(np.resize(X, (1025, 64)), "FP32")])
    assert err.value.status() == "400"


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (lambda c: c.infer("digits-huge", [infer_input(X, "FP32")]), "404", "model 'digits-huge' is not served"),
        (lambda c: c.infer("digits-cloud", [infer_input(X, "FP32")], model_version="7"), "404", "no version '7'"),
        (lambda c: c.infer("digits-cloud", [infer_input(X[:, :32].copy(), "FP32")]), "400",
         "inputs[0].data: each row needs 64 features, got 32"),
        (lambda c: c.infer("digits-cloud", [infer_input(np.rint(X).astype(np.uint32), "UINT32", True)],
                           outputs=[triton.InferRequestedOutput("logits")]), "400", "unknown output 'logits'"),
        (lambda c: c.get_model_metadata("digits-cloud", "7"), "404", "known versions: 1.0.0"),
    ],
)  # fmt: skip
def test_errors_reach_the_client_as_its_own_exception_with_our_message(client, call, status, message):
    with pytest.raises(InferenceServerException) as err:
        call(client)
    assert err.value.status() == status and message in err.value.message()


def test_a_users_own_model_is_served_too(tmp_path):
    from domicile.models.add import add_model
    from tests.user_models import request, windows_data, windows_model

    registry = tmp_path / "models"
    shutil.copytree(MODELS, registry)
    windows_model(tmp_path / "windows.onnx")
    _, x, _ = windows_data(tmp_path / "val.npz", labels=True)
    add_model(registry, request(tmp_path))
    server = Served(workers=1, models=registry)
    server.start()
    try:
        user = triton.InferenceServerClient(server.address)
        metadata = user.get_model_metadata("windows")
        assert metadata["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 3, 8]}]
        tensor = triton.InferInput("window", [2, 3, 8], "FP32")
        tensor.set_data_from_numpy(x[:2].astype(np.float32))
        result = user.infer("windows", [tensor])
        expected = ModelRuntime(registry).predict("windows", x[:2])
        np.testing.assert_allclose(result.as_numpy("logits"), expected.scores, atol=1e-5)
    finally:
        assert server.stop() == 0


def test_one_log_line_per_request_and_a_clean_stop_on_ctrl_c():
    server = Served(workers=2)
    server.start()
    client = triton.InferenceServerClient(server.address)
    client.infer("digits-cloud", [infer_input(X, "FP32")])
    client.is_model_ready("digits-cloud")
    assert server.stop() == 0, server.output
    requests = [line for line in server.lines if re.search(r'"(GET|POST) /v2', line)]
    assert any('"POST /v2/models/digits-cloud/infer HTTP/1.1" 200' in line for line in requests)
    assert any('"GET /v2/models/digits-cloud/ready HTTP/1.1" 200' in line for line in requests)
    assert server.output.count("Application shutdown complete") == 2  # each worker stopped cleanly
    assert "Traceback" not in server.output


def test_the_kserve_sdk_makes_every_call_it_has(served):
    assert KSERVE_PYTHON.exists(), "the KServe SDK's venv is missing: run `make test` (it makes .tools/kserve)"
    done = subprocess.run([str(KSERVE_PYTHON), str(ROOT / "tests" / "clients" / "kserve_calls.py"), served.url],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout)
    assert calls["server_live"] is True and calls["server_ready"] is True
    assert calls["model_ready"] is True and calls["unknown_model_ready"] is False
    for case in ("FP32/json", "FP32/binary", "FP16/binary", "INT64/json", "INT64/binary"):
        answer = calls["infer"][case]
        expected = LOCAL.predict("digits-cloud", np.asarray(calls["inputs"], dtype=np.float32))
        assert answer["id"] == "k-1" and answer["model_name"] == "digits-cloud", case
        assert answer["label"] == expected.labels.tolist(), case
        np.testing.assert_allclose(
            answer["probabilities"], expected.probabilities, atol=1e-3 if "FP16" in case else 1e-6
        )
    assert calls["infer"]["outputs/label-binary"]["outputs"] == ["label"]
    assert calls["infer"]["rows/1024"] == {"labels": 1024}
    assert calls["errors"]["rows/1025"] == [400, "inputs[0].shape: batch of 1025 rows is over the limit of 1024"]
    assert calls["errors"]["model_name"] == [
        400,
        "model_name: is 'digits-edge', but the path names model 'digits-cloud'",
    ]
    assert calls["errors"]["unknown_model"][0] == 404 and "digits-huge" in calls["errors"]["unknown_model"][1]
    assert calls["errors"]["fp16_json"].startswith("InvalidInput")  # the SDK's own rule, before any request
