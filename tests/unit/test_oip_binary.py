"""Triton's binary tensor data extension and the OIP REST surface, on the deployed handler's event.

Framing per triton-inference-server/server docs/protocol/extension_binary_data.md (which KServe's
binary tensor data extension mirrors): the JSON object, then each binary input's raw bytes
(little-endian, row-major, no padding) in input order; `Inference-Header-Content-Length` gives the
JSON's length; `binary_data_size` each tensor's bytes. A Function URL hands a binary body to the
function base64-encoded with `isBase64Encoded` true (Lambda developer guide, "Invoking Lambda
function URLs"), and decodes a base64 result body before the client sees it.
"""

import base64
import copy
import json

import numpy as np
import pytest

from domicile.models.datasets import load_digits_splits
from functions.inference import http_api
from tests.conftest import load_event

X = load_digits_splits().test.x[:3].astype(np.float32)
HEADER = "Inference-Header-Content-Length"


def event(path, body=b"", method="POST", headers=None):
    e = copy.deepcopy(load_event("function-url-infer.json"))
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    e["headers"] = {k.lower(): str(v) for k, v in (headers or {}).items()}
    e["body"] = base64.b64encode(body).decode()
    e["isBase64Encoded"] = True
    return e


def binary_request(
    array, datatype="FP32", outputs=None, parameters=None, extra=None, size=None, tail=b""
) -> tuple[bytes, dict[str, str]]:
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    tensor = {"name": "pixels", "shape": list(array.shape), "datatype": datatype,
              "parameters": {"binary_data_size": len(raw) if size is None else size}}  # fmt: skip
    header = {"inputs": [tensor], **({"outputs": outputs} if outputs else {}),
              **({"parameters": parameters} if parameters else {}), **(extra or {})}  # fmt: skip
    text = json.dumps(header).encode()
    return text + raw + tail, {HEADER: str(len(text)), "Content-Type": "application/octet-stream"}


def json_request(array, datatype="FP32", **extra) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "pixels", "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}
    return json.dumps({"inputs": [tensor], **extra}).encode(), {"Content-Type": "application/json"}


def call(path, body=b"", headers=None, method="POST", ctx=None):
    result = http_api.handler(event(path, body, method, headers), ctx)
    raw = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
    return result["statusCode"], {k.lower(): v for k, v in result["headers"].items()}, raw


def outputs_of(headers, raw):
    """Each output's values, from JSON data or from the binary section (as a client reads them)."""
    length = int(headers.get(HEADER.lower(), len(raw)))
    answer, binary, offset, out = json.loads(raw[:length]), raw[length:], 0, {}
    for o in answer["outputs"]:
        dtype = np.dtype(np.int64 if o["datatype"] == "INT64" else np.float32).newbyteorder("<")
        if "data" in o:
            out[o["name"]] = np.asarray(o["data"], dtype=dtype).reshape(o["shape"])
        else:
            size = o["parameters"]["binary_data_size"]
            out[o["name"]] = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(o["shape"])
            offset += size
    assert offset == len(binary), "every binary byte belongs to an output"
    return answer, out


@pytest.mark.parametrize("datatype", ["FP32", "FP16", "FP64", "INT64", "UINT8"])
def test_a_binary_request_is_answered_like_its_json_twin(datatype, lambda_context):
    numpy_type = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT64": np.int64, "UINT8": np.uint8}
    array = X.astype(numpy_type[datatype])
    path = "/v2/models/digits-cloud/infer"
    code_b, headers_b, raw_b = call(path, *binary_request(array, datatype), ctx=lambda_context)
    code_j, headers_j, raw_j = call(path, *json_request(array, datatype), ctx=lambda_context)
    assert (code_b, code_j) == (200, 200), (raw_b, raw_j)
    _, binary_out = outputs_of(headers_b, raw_b)
    _, json_out = outputs_of(headers_j, raw_j)
    np.testing.assert_array_equal(binary_out["label"], json_out["label"])
    np.testing.assert_allclose(binary_out["probabilities"], json_out["probabilities"], atol=1e-6)
    expected = http_api.runtime.predict("digits-cloud", X.astype(numpy_type[datatype]).astype(np.float32))
    np.testing.assert_array_equal(json_out["label"], expected.labels)


def test_binary_outputs_are_framed_after_the_json(lambda_context):
    body, headers = binary_request(X, parameters={"binary_data_output": True}, extra={"id": "b-1"})
    code, out_headers, raw = call("/v2/models/digits-cloud/versions/1.0.0/infer", body, headers=headers,
                                  ctx=lambda_context)  # fmt: skip
    assert code == 200 and out_headers["content-type"] == "application/octet-stream"
    answer, out = outputs_of(out_headers, raw)
    assert answer["id"] == "b-1" and answer["model_version"] == "1.0.0"
    sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in answer["outputs"]}
    assert sizes == {"label": 3 * 8, "probabilities": 3 * 10 * 4}
    assert all("data" not in o for o in answer["outputs"])
    np.testing.assert_array_equal(out["label"], http_api.runtime.predict("digits-cloud", X).labels)


def test_an_outputs_binary_data_overrides_the_requests_default(lambda_context):
    outputs = [{"name": "probabilities", "parameters": {"binary_data": False}}, {"name": "label"}]
    body, headers = binary_request(X, outputs=outputs, parameters={"binary_data_output": True})
    _, out_headers, raw = call("/v2/models/digits-cloud/infer", body, headers=headers, ctx=lambda_context)
    answer, _ = outputs_of(out_headers, raw)
    by_name = {o["name"]: o for o in answer["outputs"]}
    assert [o["name"] for o in answer["outputs"]] == ["probabilities", "label"]  # in the order asked
    assert "data" in by_name["probabilities"] and by_name["label"]["parameters"] == {"binary_data_size": 24}


def test_only_json_outputs_give_a_plain_json_response(lambda_context):
    code, headers, raw = call("/v2/models/digits-cloud/infer", *binary_request(X), ctx=lambda_context)
    assert code == 200 and HEADER.lower() not in headers and headers["content-type"] == "application/json"
    assert json.loads(raw)["outputs"][0]["data"]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda b, h: (b, {**h, HEADER: str(len(b) + 1)}), HEADER, "past the end of the"),
        (lambda b, h: (b, {**h, HEADER: "lots"}), HEADER, "must be a whole number of bytes"),
        (lambda b, h: (b + b"\x00" * 4, h), "inputs[0].parameters.binary_data_size", "is 768 bytes, but 772"),
    ],
)
def test_framing_errors_name_the_header_or_the_input(mutate, field, reason, lambda_context):
    body, headers = mutate(*binary_request(X))
    code, _, raw = call("/v2/models/digits-cloud/infer", body, headers, ctx=lambda_context)
    answer = json.loads(raw)
    assert code == 400 and answer["field"] == field and reason in answer["reason"], answer


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"size": 770, "tail": b"\x00\x00"}, "770 bytes is not a whole number of FP32 elements (4 bytes each)"),
        ({"size": None, "tail": b""}, "768 bytes at offset 0 run past the 760 bytes"),
        ({"size": 760, "tail": b""}, "shape [3, 64] of FP32 needs 768"),
    ],
)
def test_a_wrong_binary_size_names_the_input(kwargs, reason, lambda_context):
    body, headers = binary_request(X, **kwargs)
    if kwargs["size"] is None:  # the right size, but the body ends 8 bytes early
        body = body[:-8]
    code, _, raw = call("/v2/models/digits-cloud/infer", body, headers=headers, ctx=lambda_context)
    answer = json.loads(raw)
    assert code == 400 and answer["field"] == "inputs[0].parameters.binary_data_size", answer
    assert reason in answer["reason"], answer


def test_binary_data_and_json_data_together_are_refused(lambda_context):
    body, headers = binary_request(X)
    header_len = int(headers[HEADER])
    request = json.loads(body[:header_len])
    request["inputs"][0]["data"] = [0.0]
    text = json.dumps(request).encode()
    code, _, raw = call("/v2/models/digits-cloud/infer", text + body[header_len:],
                        headers={HEADER: str(len(text))}, ctx=lambda_context)  # fmt: skip
    assert code == 400 and json.loads(raw)["field"] == "inputs[0].data"


def test_bytes_after_json_with_no_binary_input_are_refused(lambda_context):
    body, _ = json_request(X)
    code, _, raw = call("/v2/models/digits-cloud/infer", body + b"\x01\x02", headers={HEADER: str(len(body))},
                        ctx=lambda_context)  # fmt: skip
    assert code == 400 and json.loads(raw)["field"] == HEADER


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"model_name": "digits-edge"}, "model_name", "but the path names model 'digits-cloud'"),
        ({"model_version": "2.0.0"}, "model_version", "serves version '1.0.0'"),
    ],
)
def test_the_bodys_model_name_and_version_must_match_the_path(extra, field, reason, lambda_context):
    code, _, raw = call("/v2/models/digits-cloud/infer", *json_request(X, **extra), ctx=lambda_context)
    answer = json.loads(raw)
    assert code == 400 and answer["field"] == field and reason in answer["reason"]
    match = {"model_name": "digits-cloud", "model_version": "1.0.0"}
    assert call("/v2/models/digits-cloud/infer", *json_request(X, **match), ctx=lambda_context)[0] == 200


def test_json_data_must_fit_its_declared_datatype(lambda_context):
    code, _, raw = call("/v2/models/digits-cloud/infer", *json_request(X + 0.5, "INT64"), ctx=lambda_context)
    answer = json.loads(raw)
    assert code == 400 and answer["field"] == "inputs[0].data"
    assert "holds a fraction, but the declared datatype takes whole numbers (int64)" in answer["reason"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/digits-cloud/versions/1.0.0", 200),
        ("GET", "/v2/models/digits-cloud/versions/1.0.0/ready", 200),
        ("GET", "/v2/models/digits-edge/versions/1.0.0/ready", 200),
        ("GET", "/v2/models/digits-cloud/versions/7/ready", 404),
        ("GET", "/v2/models/digits-cloud/versions/7", 404),
        ("POST", "/v2/models/digits-cloud/versions/7/infer", 404),
    ],
)
def test_versioned_routes(method, path, status, lambda_context):
    body = json_request(X)[0] if method == "POST" else b""
    code, _, raw = call(path, body, method=method, ctx=lambda_context)
    assert code == status, raw
    if status == 404:
        answer = json.loads(raw)
        assert answer["field"] == "model_version" and "no version '7' here; known versions: 1.0.0" in answer["error"]


def test_server_metadata_advertises_the_binary_extension(lambda_context):
    code, _, raw = call("/v2", method="GET", ctx=lambda_context)
    assert code == 200 and json.loads(raw)["extensions"] == ["binary_tensor_data"]


def test_model_metadata_has_versions_platform_inputs_and_outputs(lambda_context):
    _, _, raw = call("/v2/models/digits-edge", method="GET", ctx=lambda_context)
    meta = json.loads(raw)
    assert meta["versions"] == ["1.0.0"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [("label", "INT64"), ("probabilities", "FP32")]
