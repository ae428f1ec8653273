"""DynamoDB aggregates with exactly-once counting, and the S3 archive of raw envelopes, a batch at a time.

A batch is counted in transactions that each also write a marker per envelope, keyed on its message
id and conditional on the marker not existing: a redelivered or replayed envelope, even one whose first
delivery crashed after counting, cannot be counted twice. When some markers exist, DynamoDB cancels the
whole transaction and says which items failed their condition (CancellationReasons, in the order of
the items): those envelopes are dropped as counted already and the rest are written again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from domicile.aws.batch_get import batch_get
from domicile.cloud.aggregation import AggregateDelta, BatchWrite, archive_objects, batch_writes, merged_rows
from domicile.models.drift import HistogramKey
from domicile.wire.envelope import ResultEnvelope
from domicile.wire.keys import AGGREGATES_KEY, AGGREGATES_TTL, MARKER_SORT_KEY, drift_pk, marker_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from mypy_boto3_s3 import S3Client
else:
    DynamoDBClient = S3Client = TransactWriteItemTypeDef = Any

MARKER_TTL_S = 14 * 24 * 3600  # longer than any SQS retention, so a late duplicate still finds it


_PK, _SK = AGGREGATES_KEY  # the table's key attributes, as the stack declares them


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {_PK: {"S": pk}, str(_SK): {"S": sk}}


def _n(value: float | int) -> dict[str, str]:
    return {"N": str(Decimal(str(value)))}


CONFLICT_RETRIES = 3  # TransactionConflict: another transaction held one of the rows; try again, then let SQS retry


@dataclass
class BatchCount:
    """What became of each envelope (by message id) of a batch."""

    counted: list[ResultEnvelope] = field(default_factory=list)
    already_counted: list[ResultEnvelope] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> why (the write failed; SQS retries it)
    transactions: int = 0


def _update(table: str, delta: AggregateDelta) -> TransactWriteItemTypeDef:
    names = {"#count": "count", "#esc": "escalations", "#conf": "confidence_sum", "#lat": "latency_sum_ms",
             "#latn": "latency_count", "#jur": "jurisdiction", "#reg": "home_region", "#fleet": "fleet",
             "#dev": "device", "#model": "model"}  # fmt: skip
    values: dict[str, Any] = {
        ":count": _n(delta.count), ":esc": _n(delta.escalations), ":conf": _n(delta.confidence_sum),
        ":lat": _n(delta.latency_sum_ms), ":latn": _n(delta.latency_count), ":jur": {"S": delta.jurisdiction},
        ":reg": {"S": delta.home_region}, ":fleet": {"S": delta.fleet}, ":dev": {"S": delta.device},
        ":model": {"S": delta.model},
    }  # fmt: skip
    adds = ["#count :count", "#esc :esc", "#conf :conf", "#lat :lat", "#latn :latn"]
    for i, (label, n) in enumerate(sorted(delta.classes.items())):
        names[f"#c{i}"] = f"class_{label}"
        values[f":c{i}"] = _n(n)
        adds.append(f"#c{i} :c{i}")
    update = "SET #jur = :jur, #reg = :reg, #fleet = :fleet, #dev = :dev, #model = :model ADD " + ", ".join(adds)
    return {"Update": {"TableName": table, "Key": _key(delta.pk, delta.hour), "UpdateExpression": update,
                       "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}  # fmt: skip


def _histogram(table: str, pk: str, hour: str, bins: dict[int, int]) -> TransactWriteItemTypeDef:
    ordered = sorted(bins.items())
    return {"Update": {
        "TableName": table, "Key": _key(pk, hour),
        "UpdateExpression": "ADD " + ", ".join(f"#b{i} :b{i}" for i, _ in enumerate(ordered)),
        "ExpressionAttributeNames": {f"#b{i}": f"bin_{b}" for i, (b, _) in enumerate(ordered)},
        "ExpressionAttributeValues": {f":b{i}": _n(n) for i, (_, n) in enumerate(ordered)},
    }}  # fmt: skip


def _marker(table: str, message_id: str, now: float) -> TransactWriteItemTypeDef:
    return {"Put": {
        "TableName": table,
        "Item": {**_key(marker_pk(message_id), MARKER_SORT_KEY), AGGREGATES_TTL: _n(int(now) + MARKER_TTL_S)},
        "ConditionExpression": f"attribute_not_exists({_PK})",
    }}  # fmt: skip


class AggregateStore:
    def __init__(self, dynamodb: DynamoDBClient, table: str, s3: S3Client, bucket: str) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.s3 = s3
        self.bucket = bucket

    def archive(self, envelopes: list[ResultEnvelope]) -> list[str]:
        """One JSON-lines object per jurisdiction and day; a redelivered batch rewrites the same bytes."""
        objects = archive_objects(envelopes)
        for key, body in objects.items():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return list(objects)

    def _items(self, write: BatchWrite) -> list[TransactWriteItemTypeDef]:
        now = time.time()
        return [
            *(_marker(self.table, str(e.message_id), now) for e in write.envelopes),
            *(_update(self.table, row) for row in write.rows),
            *(_histogram(self.table, pk, hour, bins) for (pk, hour), bins in write.drift_rows.items()),
        ]

    def count(self, envelopes: list[ResultEnvelope]) -> BatchCount:
        """Count envelopes with distinct message ids, each at most once ever, in as few transactions as fit."""
        outcome = BatchCount()
        for write in batch_writes(envelopes):
            self._write(write, outcome)
        return outcome

    def _write(self, write: BatchWrite, outcome: BatchCount) -> None:
        conflicts = 0
        while write.envelopes:
            outcome.transactions += 1
            try:
                self.dynamodb.transact_write_items(TransactItems=self._items(write))
            except self.dynamodb.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                done = {i for i, code in enumerate(reasons[: len(write.envelopes)]) if code == "ConditionalCheckFailed"}
                if done:  # counted before (a redelivery): drop them, write the rest again
                    outcome.already_counted += [e for i, e in enumerate(write.envelopes) if i in done]
                    rest = tuple(e for i, e in enumerate(write.envelopes) if i not in done)
                    write = BatchWrite(rest, merged_rows(rest))
                    continue
                if "TransactionConflict" in reasons and conflicts < CONFLICT_RETRIES:
                    conflicts += 1
                    time.sleep(random.uniform(0, 0.05 * 2**conflicts))  # jittered backoff, as the SDKs retry
                    continue
                self._fail(write, outcome, f"TransactionCanceled: {', '.join(str(r) for r in reasons)}")
                return
            except ClientError as exc:
                self._fail(write, outcome, f"{exc.response.get('Error', {}).get('Code')}: {exc}")
                return
            outcome.counted += write.envelopes
            return

    @staticmethod
    def _fail(write: BatchWrite, outcome: BatchCount, reason: str) -> None:
        for envelope in write.envelopes:
            outcome.failed[str(envelope.message_id)] = reason

    def input_histograms(self, keys: Sequence[HistogramKey], bins: int) -> dict[HistogramKey, list[int]]:
        """Each (fleet, model, hour)'s input bin counts, zeros where nothing arrived: one BatchGetItem a 100."""
        wanted = {(drift_pk(fleet, model), hour): (fleet, model, hour) for fleet, model, hour in keys}
        found = {
            (item[_PK]["S"], item[str(_SK)]["S"]): item
            for item in batch_get(self.dynamodb, self.table, [_key(pk, hour) for pk, hour in wanted])
        }
        return {
            key: [int(float(found.get(row, {}).get(f"bin_{b}", {"N": "0"})["N"])) for b in range(bins)]
            for row, key in wanted.items()
        }
