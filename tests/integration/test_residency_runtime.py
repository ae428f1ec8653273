"""Run-time residency: envelopes of another jurisdiction or region are quarantined in-region, not processed."""

import copy
import json
from typing import Any

import boto3
import pytest

from domicile.residency.policy import ResidencyPolicy
from tests.conftest import BUCKET, REGION, aggregate_row, drain, load_event

POLICY = ResidencyPolicy(REGION, "eu", ("eu-central-1", "eu-west-1"))


def quarantined():
    s3 = boto3.client("s3", region_name=REGION)
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="quarantine/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in objects]


def claim(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"jurisdiction": "us", "home_region": "us-east-1"}, "jurisdiction 'us' of device"),
        ({"home_region": "us-east-1"}, "home region us-east-1 of device munich-line-0 is outside jurisdiction 'eu'"),
        ({"home_region": "eu-west-1"}, "home region eu-west-1 of device munich-line-0 is not this region eu-central-1"),
    ],
)
def test_policy_reasons(fields, reason):
    from domicile.wire.envelope import parse_envelope

    envelope = parse_envelope(claim(load_event("iot-escalate.json"), device="munich-line-0", **fields))
    assert reason in (POLICY.violation(envelope) or "")
    assert POLICY.violation(parse_envelope(load_event("iot-escalate.json"))) is None


def test_sqs_escalation_from_another_jurisdiction_is_quarantined(results_queue, bucket, lambda_context):
    from functions.inference import sqs_batch

    event = load_event("sqs-escalations.json")
    foreign = copy.deepcopy(event["Records"][0])
    foreign["messageId"] = "foreign"
    foreign["body"] = json.dumps(claim(json.loads(foreign["body"]), jurisdiction="us", home_region="us-east-1"))
    response = sqs_batch.handler({"Records": [event["Records"][2], foreign]}, lambda_context)
    assert response == {"batchItemFailures": []}  # kept, not retried, not lost
    assert len(drain(results_queue)) == 1  # only the local one was answered
    (record,) = quarantined()
    assert "jurisdiction 'us'" in record["reason"] and record["region"] == REGION
    assert json.loads(record["message"])["jurisdiction"] == "us"


def test_iot_escalation_for_another_region_is_quarantined(results_queue, bucket, lambda_context):
    from functions.inference import iot_escalate

    answer = iot_escalate.handler(claim(load_event("iot-escalate.json"), home_region="eu-west-1"), lambda_context)
    assert answer["quarantined"].startswith("quarantine/")
    assert drain(results_queue) == []
    assert "not this region" in quarantined()[0]["reason"]


def test_split_activation_from_another_jurisdiction_is_quarantined_not_finished(results_queue, bucket, lambda_context):
    from functions.inference import split_tail

    foreign = claim(load_event("iot-split.json"), jurisdiction="us", home_region="us-east-1")
    answer = split_tail.handler(foreign, lambda_context)
    assert answer["quarantined"].startswith("quarantine/") and "jurisdiction 'us'" in answer["reason"]
    assert drain(results_queue) == []
    (record,) = quarantined()
    assert record["source"] == "iot:split" and json.loads(record["message"])["payload"]["tensor"] == "hidden1"


def test_aggregation_never_counts_a_foreign_envelope(tables, bucket, lambda_context):
    from functions.aggregate import handler as aggregate

    event = load_event("sqs-results.json")
    foreign = copy.deepcopy(event["Records"][1])
    foreign["body"] = json.dumps(claim(json.loads(foreign["body"]), jurisdiction="us", home_region="us-east-1"))
    assert aggregate.handler({"Records": [event["Records"][0], foreign]}, lambda_context) == {"batchItemFailures": []}
    assert aggregate_row("munich-line", "munich-line-1", "digits-edge@1.0.0", "2026-11-24T10") is None
    counted = aggregate_row("munich-line", "munich-line-0", "digits-edge@1.0.0", "2026-11-24T10")
    assert counted is not None and counted["count"] == 2
    assert len(quarantined()) == 1


def test_a_redelivered_violation_is_kept_and_counted_once(results_queue, bucket, lambda_context, capsys):
    from functions.inference import iot_escalate

    foreign = claim(load_event("iot-escalate.json"), jurisdiction="us", home_region="us-east-1")
    answers = [iot_escalate.handler(copy.deepcopy(foreign), lambda_context) for _ in range(2)]
    assert answers[0]["quarantined"] == answers[1]["quarantined"]  # the same record, not a second one
    assert len(quarantined()) == 1
    counted = [
        json.loads(line).get("ResidencyViolation")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "ResidencyViolation" in line
    ]
    assert counted == [[1.0]]
