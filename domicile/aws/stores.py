"""Read a region's stores for the books: the archive and its markers, the count rows, the quarantine, the DLQs.

Read-only for the tables and the bucket. A DLQ is peeked: its messages are received with a visibility
timeout long enough to page through the queue, then made visible again (ChangeMessageVisibilityBatch
to 0), so an operator's redrive afterwards finds every one of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domicile.aws.batch_get import batch_get
from domicile.aws.quarantine import QUARANTINE_PREFIX
from domicile.cloud.aggregation import ARCHIVE_PREFIX
from domicile.cloud.books import DeadLetter, StoreContents, cases_in, cases_in_text
from domicile.wire.keys import AGGREGATES_KEY, MARKER_PREFIX, MARKER_SORT_KEY, RowKind, marker_pk, row_kind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
else:
    DynamoDBClient = S3Client = SQSClient = Any

SQS_RECEIVE_MAX = 10  # ReceiveMessage's MaxNumberOfMessages limit
PEEK_VISIBILITY_S = 120  # long enough to page through a DLQ without seeing a message twice

_PK, _SK = AGGREGATES_KEY


@dataclass(frozen=True)
class RegionStores:
    """Where one region keeps what the books read (physical names and URLs)."""

    region: str
    aggregates_table: str
    bucket: str
    dead_letter_queues: tuple[str, ...]  # queue URLs


def _objects(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def archived_envelopes(s3: S3Client, bucket: str) -> dict[str, dict[str, Any]]:
    """Envelope id -> envelope, from every archive object (a redelivered batch may archive one twice)."""
    envelopes: dict[str, dict[str, Any]] = {}
    for key in _objects(s3, bucket, ARCHIVE_PREFIX):
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
            if line.strip():
                envelope = json.loads(line)
                envelopes[str(envelope["message_id"])] = envelope
    return envelopes


def counted_ids(dynamodb: DynamoDBClient, table: str, envelope_ids: list[str]) -> set[str]:
    """The envelope ids whose `counted` marker exists."""
    keys = [{_PK: {"S": marker_pk(i)}, str(_SK): {"S": MARKER_SORT_KEY}} for i in envelope_ids]
    return {item[_PK]["S"].removeprefix(MARKER_PREFIX) for item in batch_get(dynamodb, table, keys)}


def counted_in_table(dynamodb: DynamoDBClient, table: str) -> int:
    """What the count rows add up to (markers and drift histograms count nothing)."""
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if row_kind(item[_PK]["S"]) is RowKind.COUNT:
                total += int(float(item.get("count", {"N": "0"})["N"]))
    return total


def quarantined_cases(s3: S3Client, bucket: str) -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for key in _objects(s3, bucket, QUARANTINE_PREFIX):
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        cases += cases_in_text(str(record.get("message", "")), key)
    return cases


def peek_dead_letters(sqs: SQSClient, queue_url: str) -> list[DeadLetter]:
    """Every message of a DLQ, then all made visible again."""
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=SQS_RECEIVE_MAX, VisibilityTimeout=PEEK_VISIBILITY_S
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            handles.append(message["ReceiptHandle"])
            cases = tuple(cases_in_text(message["Body"], message["MessageId"]))
            seen[message["MessageId"]] = DeadLetter(queue_url, message["MessageId"], cases)
    for start in range(0, len(handles), SQS_RECEIVE_MAX):
        entries: list[Any] = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                              for i, h in enumerate(handles[start : start + SQS_RECEIVE_MAX])]  # fmt: skip
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    return list(seen.values())


def read_region(stores: RegionStores, dynamodb: DynamoDBClient, s3: S3Client, sqs: SQSClient) -> StoreContents:
    envelopes = archived_envelopes(s3, stores.bucket)
    counted = counted_ids(dynamodb, stores.aggregates_table, sorted(envelopes))
    aggregated = {case: fleet for i in counted for fleet, case in cases_in(envelopes[i])}
    return StoreContents(
        aggregated=aggregated, counted_in_tables=counted_in_table(dynamodb, stores.aggregates_table),
        quarantined=quarantined_cases(s3, stores.bucket),
        dead_letters=[letter for url in stores.dead_letter_queues for letter in peek_dead_letters(sqs, url)],
        archived_uncounted=sorted(set(envelopes) - counted),
    )  # fmt: skip


AGGREGATE_HANDLER = "functions.aggregate.handler.handler"


def aggregate_function(template: dict[str, Any]) -> dict[str, Any] | None:
    """The aggregate function's properties in a synthesized template, or None (a stack that aggregates nothing)."""
    for resource in template.get("Resources", {}).values():
        props: dict[str, Any] = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Lambda::Function" and props.get("Handler") == AGGREGATE_HANDLER:
            return props
    return None


def stores_of_template(template: dict[str, Any], region: str, physical: dict[str, str]) -> RegionStores | None:
    """A synthesized regional stack's stores, by the aggregate function's environment (`Ref`s to its table and
    bucket) and its DLQs (the queues with no redrive policy of their own); `physical` maps logical ids to the
    physical ids CloudFormation gives (a queue's is its URL). None for a stack with no aggregate function."""
    function = aggregate_function(template)
    if function is None:
        return None
    resources: dict[str, Any] = template.get("Resources", {})
    env = function.get("Environment", {}).get("Variables", {})
    queues = [lid for lid, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"
              and "RedrivePolicy" not in r.get("Properties", {})]  # fmt: skip
    return RegionStores(
        region=region, aggregates_table=physical[env["AGGREGATES_TABLE"]["Ref"]],
        bucket=physical[env["ARCHIVE_BUCKET"]["Ref"]],
        dead_letter_queues=tuple(physical[q] for q in sorted(queues)),
    )  # fmt: skip
