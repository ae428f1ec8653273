"""Rebuild the sample events from the shapes `sam local generate-event` printed (events/sam/).

    python events/build_events.py

Bodies are real held-out digits rows, so the answers the demo prints can be checked by eye.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

from domicile.config.project import registry_dir
from domicile.config.topology import load_topology
from domicile.models.datasets import load_digits_splits
from domicile.models.registry import load_manifest
from domicile.split.runtime import SplitHead

HERE = Path(__file__).resolve().parent
SAM = HERE / "sam"
REGION = "eu-central-1"
BUCKET = "domicile-data-eu-central-1"


def _load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAM / name).read_text())
    return event


def _write(name: str, event: Any) -> None:
    text = json.dumps(event, indent=2) + "\n" if not isinstance(event, str) else event
    (HERE / name).write_text(text)


def http_event(
    method: str,
    path: str,
    body: dict[str, Any] | bytes | None,
    function_url: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(_load("apigateway-http-api-proxy.json"))
    event.update(rawPath=path, rawQueryString="", cookies=[], queryStringParameters=None, stageVariables=None)
    event["headers"] = headers or {"content-type": "application/json", "host": "example"}
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["requestId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, method + path))
    event["pathParameters"] = None
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    else:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    if function_url:
        # A Function URL event is payload format 2.0 without API Gateway's routing fields.
        event["requestContext"].pop("authorizer", None)
        event["requestContext"].pop("authentication", None)
        event["requestContext"]["domainName"] = f"abcdefg.lambda-url.{REGION}.on.aws"
        event["requestContext"]["domainPrefix"] = "abcdefg"
        event["requestContext"]["apiId"] = "abcdefg"
        event.pop("pathParameters", None)
        event.pop("stageVariables", None)
    return event


def binary_infer_event(rows: list[list[float]]) -> dict[str, Any]:
    """An infer as tritonclient sends it by default: binary tensor data, binary outputs, a version in the path."""
    import numpy as np

    raw = np.asarray(rows, dtype="<f4").tobytes()
    header = {"id": "demo-binary", "inputs": [{"name": "pixels", "shape": [len(rows), 64], "datatype": "FP32",
              "parameters": {"binary_data_size": len(raw)}}], "parameters": {"binary_data_output": True}}  # fmt: skip
    text = json.dumps(header).encode()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(text)),
               "host": "example"}  # fmt: skip
    path = "/v2/models/digits-cloud/versions/1.0.0/infer"
    return http_event("POST", path, text + raw, function_url=True, headers=headers)


def _envelope(
    kind: str, device: str, key: str, sha: str, payload: dict[str, Any], model: str = "digits-edge"
) -> dict[str, Any]:
    """An envelope of the device's fleet with a stable message id (so rebuilt events are byte-identical)."""
    return {
        "schema_version": 1,
        "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "device": device,
        "fleet": device.rsplit("-", 1)[0],
        "jurisdiction": "eu",
        "home_region": REGION,
        "model": {"name": model, "version": "1.0.0", "sha256": sha},
        "produced_at": "2026-11-24T10:00:00Z",
        "kind": kind,
        "payload": payload,
    }


def escalation(device: str, case: str, features: list[float], edge: dict[str, Any] | None, sha: str) -> dict[str, Any]:
    return _envelope("escalate", device, f"{device}/{case}", sha, {"case_id": case, "features": features, "edge": edge})


def result_envelope(device: str, results: list[tuple[str, str, float]], sha: str, n: int) -> dict[str, Any]:
    payload = {
        "source": "edge",
        "case_ids": [c for c, _, _ in results],
        "labels": [label for _, label, _ in results],
        "confidence": [conf for _, _, conf in results],
        "latency_ms": [0.05 for _ in results],
    }
    return _envelope("result", device, f"result-{device}-{n}", sha, payload)


def main() -> None:
    test = load_digits_splits().test
    edge = load_manifest().models["digits-edge"]
    rows = [[float(v) for v in row] for row in test.x[:4]]

    infer_body = {
        "id": "demo-1",
        "inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": rows[0] + rows[1]}],
    }
    _write("http-infer.json", http_event("POST", "/v2/models/digits-cloud/infer", infer_body))
    _write(
        "function-url-infer.json",
        http_event("POST", "/v2/models/digits-edge/infer", infer_body, function_url=True),
    )
    _write("function-url-infer-binary.json", binary_infer_event(rows[:2]))
    _write("http-metadata.json", http_event("GET", "/v2/models/digits-edge", None))
    _write("http-ready.json", http_event("GET", "/v2/health/ready", None))
    bad = {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": rows[0][:63]}]}
    _write("http-infer-bad-shape.json", http_event("POST", "/v2/models/digits-cloud/infer", bad))

    sqs = _load("sqs-receive-message.json")
    template = sqs["Records"][0]
    records = []
    bodies = [
        escalation(
            "munich-line-0",
            "case-1",
            rows[2],
            {"label": str(int(test.y[2])), "confidence": 0.41},
            edge.sha256,
        ),
        {"schema_version": 1, "kind": "escalate", "device": "munich-line-1"},  # missing fields: fails alone
        escalation("munich-line-1", "case-2", rows[3], None, edge.sha256),
    ]
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sqs-{i}"))
        record["body"] = json.dumps(body)
        record.pop("md5OfBody", None)
        records.append(record)
    _write("sqs-escalations.json", {"Records": records})

    results_records = []
    answered = [
        result_envelope("munich-line-0", [("case-7", "3", 0.99), ("case-8", "5", 0.97)], edge.sha256, 0),
        result_envelope("munich-line-1", [("case-9", "1", 0.93)], edge.sha256, 1),
    ]
    bodies = [answered[0], answered[1], answered[0], {"kind": "result", "device": "x"}]  # a duplicate, a bad one
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sqs-results-{i}"))
        record["body"] = json.dumps(body)
        record["eventSourceARN"] = record["eventSourceARN"].replace("domicile-requests", "domicile-results")
        record.pop("md5OfBody", None)
        results_records.append(record)
    _write("sqs-results.json", {"Records": results_records})
    # An IoT topic rule's Lambda action passes the message itself as the event.
    _write(
        "iot-escalate.json",
        escalation("munich-line-2", "case-3", rows[3], {"label": "8", "confidence": 0.38}, edge.sha256),
    )

    # A split fleet's device: the head's activation at the topology's cut, as the device encodes it.
    split = load_topology().split_model()
    if split is not None and split.cut:
        head = SplitHead(registry_dir(), split.name, split.cut, split.encoding or "float32")
        (payload,) = head.payloads(["case-4"], head.activations([rows[3]]))
        _write("iot-split.json", _envelope("split", "hamburg-lab-0", "hamburg-lab-0/case-4", head.model_ref.sha256,
                                           payload.model_dump(exclude_none=True), model=split.name))  # fmt: skip

    _write("s3-put.json", _load("s3-put.json"))
    lines = [json.dumps({"id": f"row-{i}", "features": row}) for i, row in enumerate(rows)]
    lines.insert(2, '{"id": "broken", "features": [1, 2, 3]}')
    lines.insert(3, "not json at all")
    _write("s3-batch-001.jsonl", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
