"""The deployed HTTP handler serves a user's own rank-3 model, as a Function URL event reaches it.

The handler runs in a fresh interpreter whose environment is a deployed function's (MODEL_DIR is a
registry holding the model added with `models add`), so its init phase loads that registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import ROOT, load_event
from tests.user_models import user_registry

INVOKE = """
import json, sys
from domicile_local.invoke import invoke
for event in json.load(sys.stdin):
    print(json.dumps(invoke("functions.inference.http_api.handler", event)))
"""


def _event(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = load_event("http-infer.json")
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    if body is None:
        event["requestContext"]["http"]["method"] = "GET"
        event.pop("body", None)
    else:
        event["body"], event["isBase64Encoded"] = json.dumps(body), False
    return event


def test_the_http_handler_answers_oip_for_a_user_model_of_rank_3(tmp_path: Path) -> None:
    registry = user_registry(tmp_path / "models", tmp_path / "byom")
    with np.load(tmp_path / "byom" / "val.npz") as data:
        x, labels = data["x"][:2], data["y"][:2]
    infer = {"inputs": [{"name": "window", "shape": [2, 3, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    bad = {"inputs": [{"name": "window", "shape": [1, 3, 7], "datatype": "FP32", "data": [0.0] * 21}]}
    events = [_event("/v2/models/windows-cloud/infer", infer), _event("/v2/models/windows-cloud"),
              _event("/v2/models/windows-cloud/infer", bad)]  # fmt: skip
    env = {**os.environ, "MODEL_DIR": str(registry), "DEFAULT_MODEL": "windows-cloud", "JURISDICTION": "eu",
           "AWS_REGION": "eu-central-1", "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true",
           "POWERTOOLS_LOG_LEVEL": "ERROR"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", INVOKE], input=json.dumps(events), capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answered, metadata, refused = (json.loads(line) for line in done.stdout.splitlines())
    assert answered["statusCode"] == 200, answered
    outputs = json.loads(answered["body"])["outputs"]
    assert [o["name"] for o in outputs] == ["logits"] and outputs[0]["shape"] == [2, 4]
    best = np.asarray(outputs[0]["data"]).reshape(2, 4).argmax(axis=1)
    assert [("idle", "walk", "run", "jump")[i] for i in best] == labels.tolist()
    assert json.loads(metadata["body"])["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, 3, 8]}]
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["reason"] == "each case must be shaped [3, 8], got [3, 7]"
