"""`domicile books` against a deployment: the synthesized templates say which store is which, CloudFormation
says what each is called (here moto's, over its server), and the stores themselves give the books."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from domicile.config.assembly import read_assembly
from domicile_local.sim.services import free_port
from tests.conftest import load_event, run_cli

KEPT = ("AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket")


@pytest.fixture
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        # The server runs in this process, on moto's shared backends: leave them empty for the next test.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()
        server.stop()


def _deploy(cdk_out: Path, endpoint: str) -> dict[str, dict[str, str]]:
    """Each stack's stores under CloudFormation in moto, with the template's logical ids; their physical ids."""
    deployed = {}
    for stack in read_assembly(cdk_out):
        stores = {}
        for lid, resource in stack.template["Resources"].items():
            if resource["Type"] not in KEPT:
                continue
            props = {k: v for k, v in resource.get("Properties", {}).items()
                     if k in ("KeySchema", "AttributeDefinitions", "BillingMode")}  # fmt: skip
            stores[lid] = {"Type": resource["Type"], "Properties": props}
        if not stores:
            continue
        cloudformation = boto3.client("cloudformation", region_name=stack.region, endpoint_url=endpoint)
        cloudformation.create_stack(StackName=stack.name, TemplateBody=json.dumps({"Resources": stores}))
        pages = cloudformation.list_stack_resources(StackName=stack.name)["StackResourceSummaries"]
        deployed[stack.region] = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in pages}
    return deployed


def _envelope(n: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("sqs-results.json")["Records"][1]["body"])
    body["message_id"] = f"00000000-0000-4000-8000-{n:012d}"
    body["payload"].update(case_ids=[f"case-{n}"], labels=["7"], confidence=[0.9])
    body["payload"].pop("latency_ms", None)
    return body


def test_books_of_a_deployment_list_a_dlq_message_counted_before_apart_and_a_lost_case_as_in_dlq(
    synthesized, endpoint, monkeypatch
):
    from domicile.aws.stores import stores_of_template

    _, _, cdk_out = synthesized
    ids = _deploy(Path(cdk_out), endpoint)
    stack = next(s for s in read_assembly(Path(cdk_out)) if s.region == "eu-central-1")
    stores = stores_of_template(stack.template, stack.region, ids["eu-central-1"])
    assert stores is not None and len(stores.dead_letter_queues) >= 2

    def client(service: str) -> Any:
        make: Any = boto3.client  # one helper for three services
        return make(service, region_name="eu-central-1", endpoint_url=endpoint)

    counted, lost = _envelope(1), _envelope(2)
    # What the aggregate function leaves: both archived, only `counted` counted (its marker and its row).
    archive = "".join(json.dumps(e) + "\n" for e in (counted, lost))
    client("s3").put_object(Bucket=stores.bucket, Key="archive/eu/2026/11/24/batch-x.jsonl", Body=archive)
    client("dynamodb").put_item(TableName=stores.aggregates_table,
                                Item={"pk": {"S": f"msg#{counted['message_id']}"}, "sk": {"S": "counted"}})  # fmt: skip
    client("dynamodb").put_item(TableName=stores.aggregates_table, Item={
        "pk": {"S": "munich-line#munich-line-1#digits-edge@1.0.0"}, "sk": {"S": "2026-11-24T10"}, "count": {"N": "1"},
    })  # fmt: skip
    # Both reached a DLQ: `counted` after its batch outlived the visibility timeout, `lost` after three failures.
    sqs = client("sqs")
    for body in (counted, lost):
        sqs.send_message(QueueUrl=stores.dead_letter_queues[0], MessageBody=json.dumps(body))

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    done = run_cli("books", "--cdk-out", str(cdk_out), "--endpoint", endpoint, env=env)
    assert done.returncode == 1, done.stdout + done.stderr  # one case lost in a DLQ: not balanced
    lines = done.stdout.splitlines()
    assert lines[0] == "Books do NOT balance: aggregated 1 + quarantined 0 + in DLQ 1."
    dead = sqs.receive_message(QueueUrl=stores.dead_letter_queues[0], MaxNumberOfMessages=10)["Messages"]
    assert len(dead) == 2  # read, then made visible again: a redrive finds both
    counted_id = next(m["MessageId"] for m in dead if json.loads(m["Body"])["message_id"] == counted["message_id"])
    assert lines[1].startswith("Archived but not counted: 1 envelopes") and lines[1].endswith(lost["message_id"])
    assert lines[2].startswith("Dead-lettered after it was counted: 1 DLQ messages whose cases were all aggregated")
    assert lines[2].endswith(counted_id)


def test_books_name_a_stack_that_is_not_deployed(synthesized, endpoint):
    _, _, cdk_out = synthesized
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    done = run_cli("books", "--cdk-out", str(cdk_out), "--endpoint", endpoint, env=env)
    assert done.returncode == 2
    assert "not deployed in" in done.stderr and "CloudFormation says" in done.stderr
