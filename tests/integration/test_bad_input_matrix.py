"""The bad-input matrix: every entry point against every kind of bad input, each with its expected answer.

Entry points: the HTTP API (OIP v2), the SQS inference queue, the aggregation queue, the S3 batch
object, the two IoT rule functions (escalation, split tail) and the edge device's local input.
Every cell of the matrix is either a bad input with the answer it must get (a 4xx naming the field,
a failed batch item, an error line, a refused case, a raised error that Lambda retries and then
keeps in the in-region DLQ, or a quarantine record) or a reason why the kind cannot reach that
entry point. Where an input arrives with others (a batch, an object, a list of cases), the good
neighbours must still be answered: nothing lost, nothing else harmed.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3
import numpy as np
import pytest

from domicile.errors import InputError
from domicile.models.datasets import load_digits_splits
from tests.conftest import BUCKET, REGION, ROOT, aggregate_row, drain, load_event

KINDS = (
    "malformed JSON", "wrong types", "wrong shape", "NaN/inf", "empty", "oversize", "unknown model",
    "unknown schema version", "wrong jurisdiction", "missing fields", "extra fields", "huge batch",
)  # fmt: skip
ROW = [float(v) for v in load_digits_splits().test.x[0]]
Mutation = Callable[[dict[str, Any]], Any]  # a good input -> the bad one (a dict, or raw text)


@dataclass(frozen=True)
class Bad:
    make: Mutation
    field: str  # the field the answer must name (the start of it)
    status: int = 400  # HTTP only


@dataclass(frozen=True)
class Quarantined:
    make: Mutation


@dataclass(frozen=True)
class HugeBatch:
    size: int  # inputs in one delivery, one of them bad: only that one fails


@dataclass(frozen=True)
class NotApplicable:
    reason: str


Cell = Bad | Quarantined | HugeBatch | NotApplicable


def setting(path: str, value: Any) -> Mutation:
    def mutate(good: dict[str, Any]) -> dict[str, Any]:
        bad = copy.deepcopy(good)
        *parents, last = path.split(".")
        target = bad
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return bad

    return mutate


def removing(key: str) -> Mutation:
    return lambda good: {k: v for k, v in good.items() if k != key}


def text(raw: str) -> Mutation:
    return lambda _good: raw


def nan_in(path: str) -> Mutation:
    """The JSON text of the input with a NaN token where a number belongs (json.dumps writes NaN)."""
    return lambda good: json.dumps(setting(path, math.nan)(good))


FOREIGN = Quarantined(lambda good: {**good, "jurisdiction": "us", "home_region": "us-east-1"})
SCHEMA_2 = setting("schema_version", 2)
EXTRA = lambda good: {**good, "colour": "red"}  # noqa: E731

# -- the envelope entry points ----------------------------------------------------------------------
ESCALATE: dict[str, Cell] = {
    "malformed JSON": Bad(text('{"schema_version": 1, "kind": "escalate", '), "envelope"),
    "wrong types": Bad(setting("payload.features", "sixty-four numbers"), "payload.features"),
    "wrong shape": Bad(setting("payload.features", ROW[:63]), "payload.features"),
    "NaN/inf": Bad(nan_in("payload.features.3"), "payload.features"),
    "empty": Bad(text(""), "envelope"),
    "oversize": Bad(setting("payload.features", ROW * 80), "payload.features"),
    "unknown model": NotApplicable("the cloud model answers; `model` names the edge model that asked"),
    "unknown schema version": Bad(SCHEMA_2, "schema_version"),
    "wrong jurisdiction": FOREIGN,
    "missing fields": Bad(removing("device"), "device"),
    "extra fields": Bad(EXTRA, "colour"),
    "huge batch": HugeBatch(100),
}
# The kinds every envelope entry point answers alike: the envelope parser and the residency check refuse them.
ENVELOPE_COMMON = {
    kind: ESCALATE[kind]
    for kind in (
        "malformed JSON",
        "empty",
        "unknown schema version",
        "wrong jurisdiction",
        "missing fields",
        "extra fields",
    )
}
RESULT: dict[str, Cell] = {
    **ENVELOPE_COMMON,
    "huge batch": ESCALATE["huge batch"],
    "wrong types": Bad(setting("payload.confidence", "high"), "payload.confidence"),
    "wrong shape": Bad(setting("payload.labels", ["3"]), "payload"),  # one label for two case ids
    "NaN/inf": Bad(nan_in("payload.confidence.0"), "payload.confidence"),
    "oversize": Bad(lambda good: _many_results(good, 2001), "payload.case_ids"),
    "unknown model": NotApplicable(
        "aggregation counts by the model that answered, under its own key; a model the registry does not know "
        "gets its own rows and no drift verdict"
    ),
}
SPLIT: dict[str, Cell] = {
    **ENVELOPE_COMMON,
    "wrong types": Bad(setting("payload.data_b64", 12345), "payload.data_b64"),
    "wrong shape": Bad(setting("payload.shape", [1, 31]), "payload.shape"),
    "NaN/inf": Bad(
        setting("payload.data_b64", base64.b64encode(np.full(32, np.nan, "<f2").tobytes()).decode()), "payload.data_b64"
    ),
    "oversize": Bad(setting("payload.data_b64", "A" * (128 * 1024 + 4)), "payload.data_b64"),
    "unknown model": Bad(setting("model.sha256", "0" * 64), "model.sha256"),
    "huge batch": NotApplicable("an IoT rule invokes the function with one message: there is no batch"),
}
IOT_ESCALATE: dict[str, Cell] = {
    **ESCALATE,
    "huge batch": NotApplicable("an IoT rule invokes the function with one message: there is no batch"),
}

# -- HTTP (OIP v2) ----------------------------------------------------------------------------------
HTTP: dict[str, Cell] = {
    "malformed JSON": Bad(text('{"inputs": [{"name": "pixels"'), "body"),
    "wrong types": Bad(
        setting("inputs", [{"name": "pixels", "shape": [1, 64], "datatype": "BYTES", "data": ["a"] * 64}]),
        "inputs[0].datatype",
    ),
    "wrong shape": Bad(
        setting("inputs", [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": ROW[:63]}]), "inputs[0]"
    ),
    "NaN/inf": Bad(nan_in("inputs.0.data.5"), "inputs[0].data"),
    "empty": Bad(text(""), "body"),
    "oversize": Bad(text(" " * (1_048_576 + 1)), "body", 413),
    "unknown model": Bad(lambda good: {**good, "_path": "/v2/models/digits-huge/infer"}, "model_name", 404),
    "unknown schema version": Bad(lambda good: {**good, "_path": "/v3/models/digits-cloud/infer"}, "", 404),
    "wrong jurisdiction": NotApplicable(
        "a request names no jurisdiction: the Function URL is regional and IAM-authenticated, and the caller's "
        "own region deny keeps its data in its region"
    ),
    "missing fields": Bad(removing("inputs"), "inputs"),
    "extra fields": Bad(EXTRA, "colour"),
    "huge batch": Bad(
        setting("inputs", [{"name": "pixels", "shape": [1025, 64], "datatype": "FP32", "data": ROW * 1025}]),
        "inputs[0].shape",
    ),
}

# -- S3 JSON lines (one bad line between two good ones) ---------------------------------------------
S3: dict[str, Cell] = {
    "malformed JSON": Bad(text('{"id": "m", "features": [1, 2'), "line"),
    "wrong types": Bad(setting("features", "sixty-four numbers"), "features"),
    "wrong shape": Bad(setting("features", ROW[:63]), "features"),
    "NaN/inf": Bad(nan_in("features.2"), "features"),
    "empty": Bad(setting("features", []), "features"),
    "oversize": Bad(text("{}"), "object"),  # the object itself over MAX_OBJECT_BYTES: see the test
    "unknown model": NotApplicable("the function's DEFAULT_MODEL answers every line; a `model` key is an extra field"),
    "unknown schema version": NotApplicable("lines carry no schema version; an unknown key is an extra field"),
    "wrong jurisdiction": NotApplicable(
        "the object is already in this region's own bucket, where the results are written beside it"
    ),
    "missing fields": Bad(removing("features"), "features"),
    "extra fields": Bad(EXTRA, "colour"),
    "huge batch": HugeBatch(5000),
}

# -- the edge device's local input (one bad case between two good ones) ----------------------------
EDGE: dict[str, Cell] = {
    "malformed JSON": Bad(text('{"case_id": "c", "features": [1,'), "event"),
    "wrong types": Bad(setting("features", "sixty-four numbers"), "features"),
    "wrong shape": Bad(setting("features", ROW[:63]), "features"),
    "NaN/inf": Bad(setting("features", [math.nan, *ROW[1:]]), "features"),
    "empty": Bad(text('{"cases": []}'), "cases"),
    "oversize": Bad(setting("features", ROW * 80), "features"),
    "unknown model": NotApplicable("a device runs the model it was deployed with; input cannot name another"),
    "unknown schema version": NotApplicable("local input has no schema version; an unknown key is an extra field"),
    "wrong jurisdiction": NotApplicable("a device stamps its own fleet's identity; input carries none"),
    "missing fields": Bad(removing("case_id"), "case_id"),
    "extra fields": Bad(EXTRA, "colour"),
    "huge batch": Bad(
        text(json.dumps({"cases": [{"case_id": f"c{i}", "features": ROW} for i in range(1025)]})), "cases"
    ),
}

MATRIX: dict[str, dict[str, Cell]] = {
    "http": HTTP, "sqs-inference": ESCALATE, "sqs-aggregate": RESULT, "s3-batch": S3,
    "iot-escalate": IOT_ESCALATE, "iot-split": SPLIT, "edge-input": EDGE,
}  # fmt: skip


def cells(entry: str) -> list[Any]:
    return [pytest.param(kind, MATRIX[entry][kind], id=kind) for kind in KINDS
            if not isinstance(MATRIX[entry][kind], NotApplicable)]  # fmt: skip


def _many_results(good: dict[str, Any], n: int) -> dict[str, Any]:
    bad = copy.deepcopy(good)
    bad["payload"] = {"source": "edge", "case_ids": [f"c{i}" for i in range(n)], "labels": ["1"] * n,
                      "confidence": [0.9] * n}  # fmt: skip
    return bad


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_the_matrix_answers_every_kind_at_every_entry_point():
    for entry, table in MATRIX.items():
        assert tuple(table) == KINDS or set(table) == set(KINDS), entry
        for kind, cell in table.items():
            assert not isinstance(cell, NotApplicable) or len(cell.reason) > 30, (entry, kind)
    tried = sum(not isinstance(c, NotApplicable) for t in MATRIX.values() for c in t.values())
    explained = sum(isinstance(c, NotApplicable) for t in MATRIX.values() for c in t.values())
    manual = (ROOT / "docs" / "reliability.md").read_text()
    assert f"**{tried} bad inputs** at {len(MATRIX)} entry points" in manual  # the manual's figures are these
    assert f"{explained} combinations that cannot occur" in manual


# -- SQS: a bad record between two good ones --------------------------------------------------------
def _record(body: str, n: int) -> dict[str, Any]:
    return {"messageId": f"m-{n}", "receiptHandle": f"h-{n}", "body": body, "attributes": {},
            "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": REGION,
            "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:domicile-requests"}  # fmt: skip


def _with_ids(good: dict[str, Any], i: int, case_field: str) -> dict[str, Any]:
    """A distinct good envelope: its own message id and case id."""
    out = copy.deepcopy(good)
    out["message_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"good-{i}"))
    payload = out["payload"]
    if case_field == "case_id":
        payload["case_id"] = f"good-{i}"
    else:
        payload["case_ids"] = [f"good-{i}-{k}" for k in range(len(payload["case_ids"]))]
    return out


def _batch(good: dict[str, Any], cell: Cell, case_field: str) -> tuple[dict[str, Any], str]:
    size = cell.size if isinstance(cell, HugeBatch) else 3
    bad_at = size // 2
    bodies = [json.dumps(_with_ids(good, i, case_field)) for i in range(size)]
    if isinstance(cell, HugeBatch):
        bodies[bad_at] = _raw(ESCALATE["missing fields"].make(json.loads(bodies[bad_at])))  # type: ignore[union-attr]
    else:
        bodies[bad_at] = _raw(cell.make(json.loads(bodies[bad_at])))  # type: ignore[union-attr]
    return {"Records": [_record(b, n) for n, b in enumerate(bodies)]}, f"m-{bad_at}"


def _quarantined() -> list[dict[str, Any]]:
    s3 = boto3.client("s3", region_name=REGION)
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="quarantine/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in objects]


@pytest.mark.parametrize(("kind", "cell"), cells("sqs-inference"))
def test_sqs_inference(kind, cell, results_queue, bucket, lambda_context, caplog):
    from functions.inference import sqs_batch

    good = json.loads(load_event("sqs-escalations.json")["Records"][0]["body"])
    event, bad_id = _batch(good, cell, "case_id")
    response = sqs_batch.handler(event, lambda_context)
    answered = {a["payload"]["case_ids"][0] for a in drain(results_queue)}
    size = len(event["Records"])
    if isinstance(cell, Quarantined):
        assert response["batchItemFailures"] == []  # kept, not retried
        (record,) = _quarantined()
        assert "jurisdiction 'us'" in record["reason"]
        assert len(answered) == size - 1
        return
    assert response["batchItemFailures"] == [{"itemIdentifier": bad_id}]  # the bad one alone, retried then DLQ'd
    assert answered == {f"good-{i}" for i in range(size) if f"m-{i}" != bad_id}  # its neighbours answered
    field = cell.field if isinstance(cell, Bad) else "device"
    (failed,) = [r for r in caplog.records if r.getMessage() == "failed record"]
    assert failed.message_id == bad_id and failed.field.startswith(field), failed.__dict__  # named in the log


@pytest.mark.parametrize(("kind", "cell"), cells("sqs-aggregate"))
def test_sqs_aggregate(kind, cell, tables, bucket, lambda_context):
    from functions.aggregate import handler as aggregate

    good = json.loads(load_event("sqs-results.json")["Records"][0]["body"])
    event, bad_id = _batch(good, cell, "case_ids")
    response = aggregate.handler(event, lambda_context)
    size = len(event["Records"])
    row = aggregate_row("munich-line", "munich-line-0", "digits-edge@1.0.0", "2026-11-24T10")
    per_envelope = len(good["payload"]["case_ids"])
    if isinstance(cell, Quarantined):
        assert response["batchItemFailures"] == []
        assert len(_quarantined()) == 1
        assert row is not None and row["count"] == (size - 1) * per_envelope  # the foreign one never counted
        return
    assert response["batchItemFailures"] == [{"itemIdentifier": bad_id}]
    assert row is not None and row["count"] == (size - 1) * per_envelope


def _check_rule_entry(handler: Callable[..., Any], sample: str, cell: Cell, results_queue: str, context: Any) -> None:
    """One envelope per invocation: refused (Lambda retries it, then the in-region DLQ keeps it) or quarantined."""
    good = load_event(sample)
    bad = cell.make(good)  # type: ignore[union-attr]
    event = json.loads(bad) if isinstance(bad, str) and bad.startswith("{") and bad.endswith("}") else bad
    if isinstance(cell, Quarantined):
        assert handler(event, context)["quarantined"].startswith("quarantine/")
    else:
        with pytest.raises(InputError) as raised:
            handler(event, context)
        assert raised.value.field.startswith(cell.field), (raised.value.field, raised.value.reason)  # type: ignore[union-attr]
    assert drain(results_queue) == []  # nothing answered for it
    assert "label" in handler(good, context)  # and the next good event is answered


@pytest.mark.parametrize(("kind", "cell"), cells("iot-escalate"))
def test_iot_escalate(kind, cell, results_queue, bucket, lambda_context):
    from functions.inference import iot_escalate

    _check_rule_entry(iot_escalate.handler, "iot-escalate.json", cell, results_queue, lambda_context)


@pytest.mark.parametrize(("kind", "cell"), cells("iot-split"))
def test_iot_split(kind, cell, results_queue, bucket, lambda_context):
    from functions.inference import split_tail

    _check_rule_entry(split_tail.handler, "iot-split.json", cell, results_queue, lambda_context)


@pytest.mark.parametrize(("kind", "cell"), cells("http"))
def test_http(kind, cell, lambda_context):
    from functions.inference import http_api
    from tests.unit.test_http_handler import infer_event

    good = {"id": "r1", "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}
    bad = cell.make(good)
    path = bad.pop("_path", None) if isinstance(bad, dict) else None
    response = http_api.handler(infer_event(bad, path=path), lambda_context)
    body = json.loads(response["body"])
    assert response["statusCode"] == cell.status, body
    assert body.get("field", "").startswith(cell.field), body
    assert body["error"] and (cell.field or path in body["error"]), body
    assert http_api.handler(infer_event(good), lambda_context)["statusCode"] == 200


@pytest.mark.parametrize(("kind", "cell"), cells("s3-batch"))
def test_s3_batch(kind, cell, bucket, lambda_context, monkeypatch):
    from functions.inference import s3_batch

    good = {"id": "g", "features": ROW}
    s3 = boto3.client("s3", region_name=REGION)
    key = f"incoming/{kind.replace('/', '-').replace(' ', '-')}.jsonl"
    size = cell.size if isinstance(cell, HugeBatch) else 3
    lines = [json.dumps({**good, "id": f"g{i}"}) for i in range(size)]
    bad_cell = S3["missing fields"] if isinstance(cell, HugeBatch) else cell
    lines[size // 2] = _raw(bad_cell.make({**good, "id": "bad"}))  # type: ignore[union-attr]
    body = "\n".join(lines) + "\n"
    if kind == "oversize":
        monkeypatch.setattr(
            s3_batch, "settings", dataclasses.replace(s3_batch.settings, max_object_bytes=len(body) - 1)
        )
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    event = copy.deepcopy(load_event("s3-put.json"))
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
    if kind == "oversize":
        with pytest.raises(ValueError, match=r"bytes, over"):  # retried, then the on-failure DLQ keeps the event
            s3_batch.handler(event, lambda_context)
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="results/")
        return
    s3_batch.handler(event, lambda_context)
    out = s3.get_object(Bucket=bucket, Key=key.replace("incoming/", "results/"))["Body"].read().decode()
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == size  # one answer line per input line, in order
    errors = [r for r in results if "error" in r]
    assert [r["line"] for r in errors] == [size // 2 + 1]
    assert errors[0]["error"]["field"].startswith(bad_cell.field)  # type: ignore[union-attr]
    assert all("label" in r for r in results if "error" not in r)


@pytest.fixture(scope="module")
def edge_device(tmp_path_factory):
    """A hybrid edge device whose transport is a real MQTT broker's client when one runs, else its spool."""
    from domicile.config.topology import FleetMode
    from domicile.edge.device import EdgeDevice, EdgeModel
    from domicile.edge.forward import StoreAndForward
    from domicile.edge.spool import Spool
    from domicile.edge.transport import TransportUnavailable
    from domicile.models.runtime import ModelRuntime
    from domicile.wire.topics import DeviceIdentity
    from tests.conftest import MODELS

    class Offline:  # the link is down: every envelope goes to the durable spool, which is real
        def publish(self, topic: str, payload: bytes) -> None:
            raise TransportUnavailable("offline")

        def close(self) -> None:
            pass

    spool = Spool(tmp_path_factory.mktemp("spool"))
    identity = DeviceIdentity("munich-line-0", "munich-line", "eu", "eu-central-1")
    return EdgeDevice(
        identity, FleetMode.HYBRID, StoreAndForward(Offline(), spool), EdgeModel(ModelRuntime(MODELS), "digits-edge")
    )


@pytest.mark.parametrize(("kind", "cell"), cells("edge-input"))
def test_edge_input(kind, cell, edge_device):
    from domicile.edge.inputs import answer_device_input

    good = {"case_id": "g", "features": ROW}
    bad = cell.make({**good, "case_id": "bad"})
    inferences, rejected = edge_device.stats.inferences, edge_device.stats.rejected
    if isinstance(bad, str):  # a whole input that cannot be read: refused whole
        answer = answer_device_input(edge_device, bad)
        assert answer["decisions"] == [] and answer["errors"][0]["index"] is None
        assert answer["errors"][0]["field"].startswith(cell.field)
        assert edge_device.stats.inferences == inferences  # nothing half-run
    else:
        cases = [{**good, "case_id": "g1"}, bad, {**good, "case_id": "g2"}]
        answer = answer_device_input(edge_device, {"cases": cases})
        assert [d["case_id"] for d in answer["decisions"]] == ["g1", "g2"]  # the neighbours answered
        (error,) = answer["errors"]
        assert error["index"] == 1 and error["field"].startswith(f"cases[1].{cell.field}"), error
        assert edge_device.stats.inferences == inferences + 2
    assert edge_device.stats.rejected == rejected + 1  # counted, never silent
