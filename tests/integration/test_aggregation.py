"""The aggregate function against moto DynamoDB and S3: a batch at a time, duplicates never counted twice."""

import copy
import json
from typing import Any

import boto3
import pytest

from tests.conftest import AGGREGATES_TABLE, BUCKET, REGION, aggregate_row, drain, load_event

HOUR = "2026-11-24T10"
MODEL = "digits-edge@1.0.0"


@pytest.fixture
def aggregate(tables, bucket):
    from functions.aggregate import handler

    return handler


def row(device):
    return aggregate_row("munich-line", device, MODEL, HOUR)


def test_sample_batch_duplicate_and_bad_record(aggregate, lambda_context):
    event = load_event("sqs-results.json")
    response = aggregate.handler(event, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["messageId"]}]}
    first = row("munich-line-0")
    assert first["count"] == 2  # delivered twice in the batch, counted once
    assert first["class_3"] == 1 and first["class_5"] == 1
    assert first["confidence_sum"] == pytest.approx(1.96)
    assert first["jurisdiction"] == "eu" and first["home_region"] == REGION
    assert row("munich-line-1")["count"] == 1


def test_same_envelope_three_times_counts_once(aggregate, lambda_context):
    record = load_event("sqs-results.json")["Records"][0]
    for attempt in range(3):
        again = copy.deepcopy(record)
        again["messageId"] = f"delivery-{attempt}"  # SQS gives each delivery its own id
        assert aggregate.handler({"Records": [again]}, lambda_context) == {"batchItemFailures": []}
    assert row("munich-line-0")["count"] == 2


def _envelopes(n: int, devices: int) -> list[dict[str, Any]]:
    """n distinct result envelopes of one fleet, spread over `devices` devices (one case each)."""
    template = json.loads(load_event("sqs-results.json")["Records"][1]["body"])
    out = []
    for i in range(n):
        body = copy.deepcopy(template)
        body.update(message_id=f"00000000-0000-4000-8000-{i:012d}", device=f"munich-line-{i % devices}")
        body["payload"].update(case_ids=[f"case-{i}"], labels=["7"], confidence=[0.9])
        body["payload"].pop("latency_ms", None)
        out.append(body)
    return out


def _records(bodies: list[dict[str, Any]], prefix: str = "delivery") -> list[dict[str, Any]]:
    record = load_event("sqs-results.json")["Records"][0]
    return [{**record, "messageId": f"{prefix}-{i}", "body": json.dumps(b)} for i, b in enumerate(bodies)]


def _calls(aggregate: Any, operation: str) -> list[dict[str, Any]]:
    """Every `operation` call the handler's DynamoDB client makes from now on (its parameters)."""
    seen: list[dict[str, Any]] = []
    aggregate.dynamodb.meta.events.register(
        f"before-parameter-build.dynamodb.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


def _markers() -> int:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=AGGREGATES_TABLE)["Items"]
    return sum(1 for i in items if i["pk"]["S"].startswith("msg#"))


def _device_counts(devices: int) -> list[float]:
    return [(row(f"munich-line-{d}") or {}).get("count", 0) for d in range(devices)]


def test_a_batch_of_100_is_counted_in_two_transactions_not_100(aggregate, lambda_context):
    transactions = _calls(aggregate, "TransactWriteItems")
    # 100 markers and 10 rows are 110 actions: DynamoDB takes 100 per transaction, so two.
    response = aggregate.handler({"Records": _records(_envelopes(100, devices=10))}, lambda_context)
    assert response == {"batchItemFailures": []}
    assert len(transactions) == 2
    assert all(len(t["TransactItems"]) <= 100 for t in transactions)
    assert _device_counts(10) == [10] * 10 and _markers() == 100


def test_a_batch_partly_counted_before_counts_only_the_rest(aggregate, lambda_context):
    bodies = _envelopes(30, devices=3)
    aggregate.handler({"Records": _records(bodies[::3], "first")}, lambda_context)  # 10 of them, earlier
    assert _device_counts(3) == [10, 0, 0]
    # SQS redelivers those 10 inside a bigger batch: their markers cancel the transaction, the rest go again.
    response = aggregate.handler({"Records": _records(bodies, "second")}, lambda_context)
    assert response == {"batchItemFailures": []}
    assert _device_counts(3) == [10, 10, 10] and _markers() == 30


def test_a_failed_write_fails_only_its_records_and_their_retry_counts_once(aggregate, lambda_context):
    from botocore.exceptions import ClientError

    bodies = _envelopes(150, devices=5)  # 150 markers + 5 rows: two transactions
    records = _records(bodies)
    refused: list[int] = []

    def throttle_first(params: dict[str, Any], **_: Any) -> None:
        if not refused:
            refused.append(len(params["TransactItems"]))
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed"}}
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]

    aggregate.dynamodb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", throttle_first)
    try:
        response = aggregate.handler({"Records": records}, lambda_context)
    finally:
        aggregate.dynamodb.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", throttle_first)
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert 0 < len(failed) < len(records)  # the refused transaction's envelopes, and only those
    assert _markers() == len(records) - len(failed)
    again = [r for r in records if r["messageId"] in failed]
    assert aggregate.handler({"Records": again}, lambda_context) == {"batchItemFailures": []}
    assert sum(_device_counts(5)) == 150 and _markers() == 150


def test_a_batch_is_archived_in_region_as_one_object_a_redelivery_rewrites_identically(aggregate, lambda_context):
    event = load_event("sqs-results.json")
    aggregate.handler(event, lambda_context)
    s3 = boto3.client("s3", region_name=REGION)
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="archive/")["Contents"]]
    assert key.startswith("archive/eu/2026/11/24/batch-") and key.endswith(".jsonl")
    first = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    lines = [json.loads(line) for line in first.decode().splitlines()]
    ids = {json.loads(r["body"]).get("message_id") for r in event["Records"][:3]}
    assert {line["message_id"] for line in lines} == ids and all(line["kind"] == "result" for line in lines)
    aggregate.handler(event, lambda_context)  # the same batch again
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="archive/")["Contents"]] == [key]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == first


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"kind": "result"}), json.dumps({"kind": "result", "payload": {"results": []}})],
)
def test_bad_records_fail_alone(aggregate, lambda_context, body):
    event = load_event("sqs-results.json")
    bad = copy.deepcopy(event["Records"][0])
    bad.update(messageId="bad", body=body)
    response = aggregate.handler({"Records": [event["Records"][1], bad]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert row("munich-line-1")["count"] == 1


def test_escalate_envelope_on_the_results_queue_is_refused(aggregate, lambda_context):
    event = load_event("sqs-results.json")
    wrong = copy.deepcopy(event["Records"][0])
    wrong.update(messageId="wrong", body=json.dumps(load_event("iot-escalate.json")))
    response = aggregate.handler({"Records": [event["Records"][1], wrong]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "wrong"}]}


def test_escalation_answer_reenters_aggregation(aggregate, results_queue, lambda_context):
    from functions.inference import iot_escalate

    answer = iot_escalate.handler(load_event("iot-escalate.json"), lambda_context)
    (result,) = drain(results_queue)
    assert result["message_id"] == answer["result"]
    assert result["payload"]["source"] == "cloud" and result["payload"]["escalated"]
    record = copy.deepcopy(load_event("sqs-results.json")["Records"][0])
    record["body"] = json.dumps(result)
    aggregate.handler({"Records": [record]}, lambda_context)
    produced_hour = result["produced_at"][:13]
    stored = aggregate_row("munich-line", "munich-line-2", "digits-cloud@1.0.0", produced_hour)
    assert stored is not None and stored["count"] == 1 and stored["escalations"] == 1


def test_split_answer_reenters_aggregation(aggregate, results_queue, lambda_context):
    from functions.inference import split_tail

    event = load_event("iot-split.json")
    answer = split_tail.handler(event, lambda_context)
    (result,) = drain(results_queue)
    assert result["message_id"] == answer["result"]
    assert result["payload"]["source"] == "split" and not result["payload"]["escalated"]
    assert result["payload"]["request_message_ids"] == [event["message_id"]]
    assert result["model"]["name"] == "digits-deep"
    record = copy.deepcopy(load_event("sqs-results.json")["Records"][0])
    record["body"] = json.dumps(result)
    assert aggregate.handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}
    stored = aggregate_row("hamburg-lab", "hamburg-lab-0", "digits-deep@1.0.0", result["produced_at"][:13])
    assert stored is not None and stored["count"] == 1 and stored[f"class_{answer['label']}"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "escalate"}, "payload.features"),  # a split payload under another kind
        ({"payload": {"tensor": "hidden2"}}, "payload.tensor"),
        ({"model": {"sha256": "f" * 64}}, "model.sha256"),
    ],
)
def test_bad_split_raises_naming_the_field_for_lambda_to_retry_then_dead_letter(lambda_context, change, field):
    from domicile.errors import InputError
    from functions.inference import split_tail

    event = load_event("iot-split.json")
    for key, value in change.items():
        event[key] = {**event[key], **value} if isinstance(value, dict) else value
    with pytest.raises(InputError) as err:
        split_tail.handler(event, lambda_context)
    assert err.value.field == field


def test_bad_escalation_raises_for_lambda_to_retry_then_dead_letter(lambda_context):
    from domicile.errors import InputError
    from functions.inference import iot_escalate

    event = load_event("iot-escalate.json")
    del event["payload"]["features"]
    with pytest.raises(InputError, match=r"payload\.features"):
        iot_escalate.handler(event, lambda_context)


def _envelope_with_bins(fleet: str, bins: list[int], n: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(copy.deepcopy(load_event("sqs-results.json")["Records"][0])["body"])
    body.update(message_id=f"00000000-0000-4000-8000-{n:012d}", fleet=fleet, device=f"{fleet}-0")
    body["payload"] = {"source": "edge", "case_ids": [f"c{i}" for i in range(len(bins))],
                       "labels": ["3"] * len(bins), "confidence": [0.9] * len(bins), "input_bins": bins}  # fmt: skip
    return body


def _drift_metrics(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"ModelDrift"' in line]


def test_drift_is_reported_per_fleet_once_enough_cases_arrived(aggregate, lambda_context, capsys):
    from domicile.models.drift import MIN_CASES, psi
    from domicile.models.registry import load_manifest
    from tests.conftest import MODELS

    BASELINE = load_manifest(MODELS).models["digits-edge"].baseline
    assert BASELINE is not None

    record = load_event("sqs-results.json")["Records"][0]
    skewed = [0] * 150  # every case in the lowest decile: a sensor that faded
    stable = [i % 10 for i in range(150)]  # every decile alike: what the model learnt
    for n, (fleet, bins) in enumerate([("faded", skewed), ("steady", stable), ("faded", skewed), ("steady", stable)]):
        body = json.dumps(_envelope_with_bins(fleet, bins, n))
        aggregate.handler({"Records": [{**record, "messageId": f"m{n}", "body": body}]}, lambda_context)
        if n == 1:  # 150 cases a fleet so far: below MIN_CASES, no verdict yet
            assert MIN_CASES > 150 and _drift_metrics(capsys.readouterr().out) == []
    reported = {m["Fleet"]: m for m in _drift_metrics(capsys.readouterr().out)}
    assert set(reported) == {"faded", "steady"}
    assert reported["faded"]["ModelDrift"] == [pytest.approx(psi([300] + [0] * 9, BASELINE.expected), abs=1e-4)]
    assert reported["faded"]["ModelDrift"][0] > 2.0 and reported["steady"]["ModelDrift"][0] < 0.1
    assert reported["faded"]["model"] == "digits-edge@1.0.0" and reported["faded"]["cases"] == 300
    (directive,) = reported["faded"]["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Fleet"]]  # exactly what the per-fleet alarm watches


def test_two_fleets_in_one_batch_cost_one_put_one_transaction_and_one_drift_read(aggregate, lambda_context):
    """The per-batch floor: a batch's calls do not grow with the fleets (or drift rows) in it."""
    record = load_event("sqs-results.json")["Records"][0]
    bins = [i % 10 for i in range(120)]
    bodies = [_envelope_with_bins(fleet, bins, n) for n, fleet in enumerate(["north", "south", "north", "south"])]
    writes, reads = _calls(aggregate, "TransactWriteItems"), _calls(aggregate, "BatchGetItem")
    gets = _calls(aggregate, "GetItem")
    puts: list[dict[str, Any]] = []
    aggregate.s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params))
    records = [{**record, "messageId": f"m{n}", "body": json.dumps(b)} for n, b in enumerate(bodies)]
    assert aggregate.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    assert (len(writes), len(puts), len(reads), len(gets)) == (1, 1, 1, 0)
    (read,) = reads
    assert len(read["RequestItems"][AGGREGATES_TABLE]["Keys"]) == 2  # both fleets' histograms, in one call
    s3 = boto3.client("s3", region_name=REGION)
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="archive/")["Contents"]]
    lines = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert sorted(json.loads(line)["fleet"] for line in lines) == ["north", "north", "south", "south"]
