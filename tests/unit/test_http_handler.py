import base64
import copy
import dataclasses
import json

import numpy as np
import pytest

from domicile.models.datasets import load_digits_splits
from functions.inference import http_api
from tests.conftest import load_event

TEST = load_digits_splits().test
ROWS = [[float(v) for v in row] for row in TEST.x[:3]]


def call(event, ctx):
    from domicile_local.demo import http_body

    response = http_api.handler(event, ctx)
    return response["statusCode"], http_body(response)


def infer_event(body, model="digits-cloud", base64_encoded=False, path=None):
    event = copy.deepcopy(load_event("http-infer.json"))
    path = path or f"/v2/models/{model}/infer"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    text = body if isinstance(body, str) else json.dumps(body)
    event["body"] = base64.b64encode(text.encode()).decode() if base64_encoded else text
    event["isBase64Encoded"] = base64_encoded
    return event


def oip(data, shape=None, datatype="FP32", name="pixels", **extra):
    flat = [v for row in data for v in row] if data and isinstance(data[0], list) else data
    tensor = {"name": name, "shape": shape or [len(data), 64], "datatype": datatype, "data": flat}
    return {"inputs": [tensor], **extra}


@pytest.mark.parametrize(
    ("event_file", "status"),
    [
        ("http-infer.json", 200),
        ("function-url-infer.json", 200),
        ("function-url-infer-binary.json", 200),
        ("http-metadata.json", 200),
        ("http-ready.json", 200),
        ("http-infer-bad-shape.json", 400),
    ],
)
def test_every_sample_event(event_file, status, lambda_context):
    code, body = call(load_event(event_file), lambda_context)
    assert code == status, body


def test_infer_answers_like_the_model(lambda_context):
    code, body = call(infer_event(oip(ROWS, id="req-7")), lambda_context)
    assert code == 200
    assert body["model_name"] == "digits-cloud" and body["model_version"] == "1.0.0" and body["id"] == "req-7"
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = http_api.runtime.predict("digits-cloud", ROWS)
    assert outputs["label"]["data"] == expected.labels.tolist()
    assert outputs["probabilities"]["shape"] == [3, 10]
    np.testing.assert_allclose(outputs["probabilities"]["data"], expected.probabilities.ravel(), atol=1e-5)


def test_base64_body_and_output_filter(lambda_context):
    body = oip(ROWS[:1], outputs=[{"name": "label"}])
    code, answer = call(infer_event(body, model="digits-edge", base64_encoded=True), lambda_context)
    assert code == 200
    assert [o["name"] for o in answer["outputs"]] == ["label"]
    assert answer["model_name"] == "digits-edge"


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"),
    [
        ("{nope", 400, "body", "is not valid JSON"),
        ("[1, 2]", 400, "body", "must be a JSON object"),
        ("", 400, "body", "is empty"),
        ({}, 400, "inputs", "Field required"),
        ({"inputs": []}, 400, "inputs", "at least 1 item"),
        ({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32"}]}, 400, "inputs[0].data", "required"),
        (oip(ROWS[:1], shape=[1, "a"]), 400, "inputs[0].shape[1]", "valid integer"),
        (oip(ROWS[:1], name="image"), 400, "inputs[0].name", "takes input 'pixels'"),
        (oip(ROWS[:1], datatype="BYTES"), 400, "inputs[0].datatype", "not a numeric type"),
        (oip(ROWS[:1], shape=[2, 64]), 400, "inputs[0].data", "shape [2, 64] needs 128"),
        (oip([r[:32] for r in ROWS], shape=[3, 32]), 400, "inputs[0].data", "64 features, got 32"),
        (oip([[float("nan"), *ROWS[0][1:]]]), 400, "inputs[0].data", "NaN or infinity"),
        (oip([], shape=[0, 64]), 400, "inputs[0].data", "is empty"),
        (oip(ROWS[:1], shape=[-1, 64]), 400, "inputs[0].shape", "non-negative"),
        (oip(ROWS[:1], outputs=[{"name": "logits"}]), 400, "outputs[0].name", "unknown output 'logits'"),
        (oip(ROWS[:1], extra_field=1), 400, "extra_field", "Extra inputs are not permitted"),
        (oip([ROWS[0]] * 1025), 400, "inputs[0].shape", "over the limit of 1024"),
    ],
)
def test_bad_requests(body, status, field, reason, lambda_context):
    code, answer = call(infer_event(body), lambda_context)
    assert code == status
    assert answer["field"] == field
    assert reason in answer["reason"]
    assert field in answer["error"]


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_body_over_the_limit_is_413(base64_encoded, lambda_context, monkeypatch):
    monkeypatch.setattr(http_api, "settings", dataclasses.replace(http_api.settings, max_body_bytes=4096))
    many = [[float(v) for v in row] for row in TEST.x[:20]]
    code, answer = call(infer_event(oip(many), base64_encoded=base64_encoded), lambda_context)
    assert code == 413
    assert answer["field"] == "body" and "over the limit of 4096" in answer["reason"]
    code, _ = call(infer_event(oip(ROWS[:1])), lambda_context)
    assert code == 200  # a body under the limit still passes


def test_unknown_model_is_404(lambda_context):
    code, answer = call(infer_event(oip(ROWS[:1]), model="digits-huge"), lambda_context)
    assert code == 404
    assert "digits-huge" in answer["error"]
    event = load_event("http-metadata.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v2/models/digits-huge"
    code, answer = call(event, lambda_context)
    assert code == 404 and answer["field"] == "model_name"


def test_unknown_route_is_404(lambda_context):
    event = infer_event(oip(ROWS[:1]), path="/v3/everything")
    code, answer = call(event, lambda_context)
    assert code == 404
    assert "/v3/everything" in answer["error"]


def test_compressed_bodies_are_inflated_and_an_unknown_coding_is_415(lambda_context):
    import gzip

    event = infer_event(oip(ROWS[:1]), base64_encoded=True)
    event["body"] = base64.b64encode(gzip.compress(json.dumps(oip(ROWS[:1])).encode())).decode()
    event["headers"]["content-encoding"] = "gzip"
    assert call(event, lambda_context)[0] == 200
    event["headers"]["content-encoding"] = "br"
    code, answer = call(event, lambda_context)
    assert code == 415 and answer["field"] == "Content-Encoding" and "'br' is not supported" in answer["reason"]


def test_the_entry_points_init_imports_neither_pydantic_nor_boto3():
    """Its cold start: settings, the manifest read and the OIP parse are plain code (BENCHMARKS.md, cold init)."""
    import subprocess
    import sys

    code = "import sys, functions.inference.http_api; print(sorted({'pydantic', 'boto3'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
