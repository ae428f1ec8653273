"""DynamoDB aggregates with exactly-once counting, and the S3 archive of raw envelopes.

Each envelope is counted in one transaction that also writes a marker keyed on its message id,
conditional on the marker not existing: a redelivered or replayed envelope, even one whose first
delivery crashed after counting, cannot be counted twice.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from domicile.cloud.aggregation import archive_key, delta_of
from domicile.wire.envelope import ResultEnvelope
from domicile.wire.keys import AGGREGATES_KEY, AGGREGATES_TTL, MARKER_SORT_KEY, drift_pk, marker_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
else:
    DynamoDBClient = S3Client = Any

MARKER_TTL_S = 14 * 24 * 3600  # longer than any SQS retention, so a late duplicate still finds it


_PK, _SK = AGGREGATES_KEY  # the table's key attributes, as the stack declares them


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {_PK: {"S": pk}, str(_SK): {"S": sk}}


def _n(value: float | int) -> dict[str, str]:
    return {"N": str(Decimal(str(value)))}


class AggregateStore:
    def __init__(self, dynamodb: DynamoDBClient, table: str, s3: S3Client, bucket: str) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.s3 = s3
        self.bucket = bucket

    def archive(self, envelope: ResultEnvelope) -> str:
        key = archive_key(envelope)
        # Same key for the same message id: a retry overwrites with identical bytes.
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=envelope.model_dump_json(exclude_none=True).encode(),
            ContentType="application/json",
        )  # fmt: skip
        return key

    def count(self, envelope: ResultEnvelope) -> bool:
        """Add the envelope to its aggregate row; False if it had been counted already."""
        delta = delta_of(envelope)
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
        drift: list[Any] = []
        if delta.input_bins:  # the fleet's input histogram for this model and hour, in the same transaction
            bins = sorted(delta.input_bins.items())
            drift = [{
                "Update": {
                    "TableName": self.table,
                    "Key": _key(delta.drift_pk, delta.hour),
                    "UpdateExpression": "ADD " + ", ".join(f"#b{i} :b{i}" for i, _ in enumerate(bins)),
                    "ExpressionAttributeNames": {f"#b{i}": f"bin_{b}" for i, (b, _) in enumerate(bins)},
                    "ExpressionAttributeValues": {f":b{i}": _n(n) for i, (_, n) in enumerate(bins)},
                }
            }]  # fmt: skip
        try:
            self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **_key(marker_pk(str(envelope.message_id)), MARKER_SORT_KEY),
                                AGGREGATES_TTL: _n(int(time.time()) + MARKER_TTL_S),
                            },
                            "ConditionExpression": f"attribute_not_exists({_PK})",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _key(delta.pk, delta.hour),
                            "UpdateExpression": update,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                    *drift,
                ]
            )
        except self.dynamodb.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def input_histogram(self, fleet: str, model: str, hour: str, bins: int) -> list[int]:
        """The fleet's input bin counts for a model and hour (zeros where nothing arrived)."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key=_key(drift_pk(fleet, model), hour), ConsistentRead=True
        ).get("Item", {})
        return [int(float(item[f"bin_{b}"]["N"])) if f"bin_{b}" in item else 0 for b in range(bins)]
