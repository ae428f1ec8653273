"""The S3 entry point against moto: one output line per input line, bad lines reported."""

import copy
import json
from urllib.parse import quote_plus

import boto3

from functions.inference import s3_batch
from tests.conftest import EVENTS, REGION, load_event


def _put_and_handle(bucket, key, body, ctx):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = copy.deepcopy(load_event("s3-put.json"))
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
    return s3_batch.handler(event, ctx)


def _read_lines(bucket, key):
    s3 = boto3.client("s3", region_name=REGION)
    return [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]


def test_sample_event_end_to_end(bucket, lambda_context):
    source = (EVENTS / "s3-batch-001.jsonl").read_text()
    answer = _put_and_handle(bucket, "incoming/batch-001.jsonl", source, lambda_context)
    assert answer["objects"][0]["output_key"] == "results/batch-001.jsonl"
    lines = _read_lines(bucket, "results/batch-001.jsonl")
    inputs = source.splitlines()
    assert [line["line"] for line in lines] == list(range(1, len(inputs) + 1))
    errors = {line["line"]: line["error"] for line in lines if "error" in line}
    assert errors == {
        3: {"field": "features", "reason": "each row needs 64 features, got 3"},
        4: {"field": "line", "reason": "is not valid JSON: Expecting value"},
    }
    good = [json.loads(inputs[n - 1]) for n in range(1, len(inputs) + 1) if n not in errors]
    expected = s3_batch.runtime.predict("digits-cloud", [g["features"] for g in good])
    answered = [line for line in lines if "error" not in line]
    assert [a["id"] for a in answered] == [g["id"] for g in good]
    assert [a["label"] for a in answered] == [str(v) for v in expected.labels]
    assert answer["objects"][0]["errors"] == 2


def test_key_with_spaces_and_unknown_fields(bucket, lambda_context):
    body = json.dumps({"id": 5, "features": [0] * 64, "colour": "red"}) + "\n" + json.dumps({"features": [1] * 64})
    _put_and_handle(bucket, "incoming/my batch.jsonl", body, lambda_context)
    lines = _read_lines(bucket, "results/my batch.jsonl")
    assert lines[0] == {"line": 1, "id": "5", "error": {"field": "colour", "reason": lines[0]["error"]["reason"]}}
    assert "not a known field" in lines[0]["error"]["reason"]
    assert lines[1]["id"] is None and "label" in lines[1]


def test_objects_outside_the_input_prefix_are_not_processed(bucket, lambda_context):
    answer = _put_and_handle(bucket, "results/batch-001.jsonl", "{}", lambda_context)
    assert "skipped" in answer["objects"][0]
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["results/batch-001.jsonl"]
