"""`domicile demo`: run the inference function's real handlers on every sample event, offline.

AWS APIs are served by moto in this process; the S3 and SQS events are backed by real (mocked)
objects and queues, so each answer below is what the function would do in its region.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domicile.aws.stores import AGGREGATE_HANDLER
from domicile.config.project import registry_dir
from domicile.errors import ConfigError
from domicile.wire.keys import AGGREGATES_KEY, RowKind, row_kind
from domicile_local.invoke import LambdaContext, environment, load_handler
from domicile_local.sim.assembly import handler_code, load_stacks

REGION = "eu-central-1"
AGGREGATES_TABLE = "domicile-aggregates"
LINE_WIDTH = 300  # characters of an answer the demo prints
HTTP_HANDLER = "functions.inference.http_api.handler"
SQS_HANDLER = "functions.inference.sqs_batch.handler"
S3_HANDLER = "functions.inference.s3_batch.handler"
ESCALATE_HANDLER = "functions.inference.iot_escalate.handler"
SPLIT_HANDLER = "functions.inference.split_tail.handler"
RULE_HANDLERS = {"escalate": ESCALATE_HANDLER, "split": SPLIT_HANDLER}  # envelope kind -> IoT rule's function
BUCKET = "domicile-data-eu-central-1"


def event_kind(event: Any) -> str:
    if isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event:
        return "http"
    if isinstance(event, dict) and event.get("kind") in RULE_HANDLERS:
        return "iot"  # an IoT rule's Lambda action passes the message itself
    records = event.get("Records") if isinstance(event, dict) else None
    if records:
        source = records[0].get("eventSource")
        if source == "aws:sqs":
            return "aggregate" if records[0].get("eventSourceARN", "").endswith("-results") else "sqs"
        if source == "aws:s3":
            return "s3"
    raise ValueError("not an HTTP (payload 2.0), IoT rule, SQS or S3 event")


def http_body(answer: dict[str, Any]) -> Any:
    """A function URL result's body for printing: JSON, or the JSON header of a binary tensor response."""
    import base64

    raw = answer.get("body") or ""
    body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    if not body:
        return None
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    length = int(headers.get("inference-header-content-length", len(body)))
    header = json.loads(body[:length])
    if length < len(body):  # said first: the printout is cut at the terminal's width
        return {"binary tensor data after the JSON": f"{len(body) - length} bytes", **header}
    return header


def create_aggregation_tables(region: str) -> dict[str, str]:
    """The aggregates table, keyed as the stack declares it; its name as the function's env."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=region)
    tables = {AGGREGATES_TABLE: AGGREGATES_KEY}
    for name, key in tables.items():
        attrs = [a for a in key if a is not None]
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": a, "KeyType": "HASH" if i == 0 else "RANGE"} for i, a in enumerate(attrs)],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
            BillingMode="PAY_PER_REQUEST",
        )
    return {"AGGREGATES_TABLE": AGGREGATES_TABLE}


def _print(title: str, body: Any) -> None:
    print(f"\n== {title}")
    items = body if isinstance(body, list) else [body]
    for item in items:
        text = json.dumps(item, separators=(",", ":"))
        print("   " + (text if len(text) <= LINE_WIDTH else text[: LINE_WIDTH - 3] + "..."))


def _deployed_handlers(cdk_out: Path, region: str) -> Callable[[str], Callable[..., Any]]:
    """The handlers as the synthesized stack of `region` deploys them, each loaded from its own asset."""
    stacks = [stack for stack in load_stacks(cdk_out) if stack.region == region]
    if not stacks:
        raise ConfigError(f"{cdk_out}: no stack in {region}; synthesize the default topology first")
    code = handler_code(stacks[0], cdk_out)

    def handler(name: str) -> Callable[..., Any]:
        if name not in code:
            raise ConfigError(f"{cdk_out}: the {region} stack deploys no function with handler {name}")
        return load_handler(name, code[name])

    return handler


def run_demo(events_dir: Path, cdk_out: Path, model_dir: Path | None = None) -> int:
    import boto3
    from moto import mock_aws

    from domicile.config.topology import load_topology

    deployed = _deployed_handlers(cdk_out, REGION)
    model_dir = registry_dir(model_dir)
    split = load_topology().split_model()
    handled = 0
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        results_url = sqs.create_queue(QueueName="domicile-results")["QueueUrl"]
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})  # type: ignore[typeddict-item]
        env = {
            **create_aggregation_tables(REGION),
            "ARCHIVE_BUCKET": BUCKET,
            "QUARANTINE_BUCKET": BUCKET,
            "ALLOWED_REGIONS": "eu-central-1,eu-west-1",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "JURISDICTION": "eu",
            "MODEL_DIR": str(model_dir),
            "DEFAULT_MODEL": "digits-cloud",
            "RESULTS_QUEUE_URL": results_url,
            "SPLIT_MODEL": split.name if split else "",
            "SPLIT_CUT": split.cut if split and split.cut else "",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        with environment(env):
            for path in sorted(events_dir.glob("*.json")):
                event = json.loads(path.read_text())
                kind = event_kind(event)
                if kind == "http":
                    answer = deployed(HTTP_HANDLER)(event, LambdaContext())
                    _print(f"{path.name} -> HTTP {answer['statusCode']}", http_body(answer))
                elif kind == "iot":
                    answer = deployed(RULE_HANDLERS[event["kind"]])(event, LambdaContext())
                    sent = sqs.receive_message(QueueUrl=results_url, MaxNumberOfMessages=10).get("Messages", [])
                    _print(f"{path.name} -> cloud answer ({event['kind']} rule)", answer)
                    _print("   result envelope sent to aggregation", [json.loads(m["Body"])["payload"] for m in sent])
                    for message in sent:
                        sqs.delete_message(QueueUrl=results_url, ReceiptHandle=message["ReceiptHandle"])
                elif kind == "aggregate":
                    answer = deployed(AGGREGATE_HANDLER)(event, LambdaContext())
                    table = boto3.client("dynamodb", region_name=REGION).scan(TableName="domicile-aggregates")
                    rows = [
                        {"key": f"{i['pk']['S']} {i['sk']['S']}", "count": i["count"]["N"]}
                        for i in table["Items"]
                        if row_kind(i["pk"]["S"]) is RowKind.COUNT  # a drift row has bins, not a count
                    ]
                    _print(f"{path.name} -> partial batch response (a duplicate, a bad record)", answer)
                    _print("   aggregates in DynamoDB (the duplicate counted once)", rows)
                elif kind == "sqs":
                    answer = deployed(SQS_HANDLER)(event, LambdaContext())
                    sent = sqs.receive_message(QueueUrl=results_url, MaxNumberOfMessages=10).get("Messages", [])
                    answers = [json.loads(m["Body"])["payload"] for m in sent]
                    _print(f"{path.name} -> partial batch response", answer)
                    _print("   answers sent to the results queue", answers)
                else:
                    record = event["Records"][0]["s3"]
                    bucket, key = record["bucket"]["name"], record["object"]["key"]
                    s3.put_object(Bucket=bucket, Key=key, Body=(events_dir / "s3-batch-001.jsonl").read_bytes())
                    answer = deployed(S3_HANDLER)(event, LambdaContext())
                    out = answer["objects"][0]["output_key"]
                    lines = s3.get_object(Bucket=bucket, Key=out)["Body"].read().decode().splitlines()
                    _print(f"{path.name} -> s3://{bucket}/{out}", [json.loads(line) for line in lines])
                handled += 1
    print(f"\nhandled {handled} sample events")
    return handled
