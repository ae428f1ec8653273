"""The in-region quarantine: refused messages kept in the region's own bucket, with the reason, for review."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from domicile.residency.policy import ResidencyPolicy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

QUARANTINE_PREFIX = "quarantine/"


class Quarantine:
    """Keeps refused messages in the region's own bucket, with the reason, for review."""

    def __init__(self, s3: S3Client, bucket: str, policy: ResidencyPolicy) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.policy = policy

    def put(self, raw: str | bytes, reason: str, source: str, message_id: str | None = None) -> tuple[str, bool]:
        """(key, first): the record is written once per message; a redelivery finds it there (first False)."""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        now = datetime.now(UTC)
        name = message_id or hashlib.sha256(text.encode()).hexdigest()
        key = f"{QUARANTINE_PREFIX}{now:%Y/%m/%d}/{name}.json"
        record = {
            "reason": reason,
            "region": self.policy.region,
            "jurisdiction": self.policy.jurisdiction,
            "source": source,
            "message_id": message_id,
            "quarantined_at": now.isoformat(),
            "message": text,
        }
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=json.dumps(record).encode(), ContentType="application/json",
                IfNoneMatch="*",
            )  # fmt: skip
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            return key, False
        return key, True
