"""Where result envelopes go: an SQS queue in the same region (the aggregation queue)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from domicile.wire.envelope import ResultEnvelope

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
else:
    SQSClient = Any

SQS_BATCH_LIMIT = 10


class SqsEnvelopeSink:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, envelopes: Sequence[tuple[str, ResultEnvelope]]) -> list[str]:
        """Send (key, envelope) pairs in batches of 10; return the keys that SQS did not accept."""
        failed: list[str] = []
        for start in range(0, len(envelopes), SQS_BATCH_LIMIT):
            chunk = envelopes[start : start + SQS_BATCH_LIMIT]
            entries = [
                {"Id": str(i), "MessageBody": envelope.model_dump_json(exclude_none=True)}
                for i, (_, envelope) in enumerate(chunk)
            ]
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            failed.extend(chunk[int(f["Id"])][0] for f in response.get("Failed", []))
        return failed
