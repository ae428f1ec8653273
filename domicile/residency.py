"""Region pinning at run time: a message of another jurisdiction or region is quarantined, not processed.

Every handler that receives envelopes compares the envelope's jurisdiction and home region with
its own. A mismatch is written to the in-region quarantine prefix with its reason (never processed,
never dropped) and counted once in the `ResidencyViolation` metric.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from domicile.envelope import Envelope

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

QUARANTINE_PREFIX = "quarantine/"


@dataclass(frozen=True)
class ResidencyPolicy:
    region: str
    jurisdiction: str
    allowed_regions: tuple[str, ...]

    @classmethod
    def from_settings(cls, region: str, jurisdiction: str, allowed: str) -> ResidencyPolicy:
        regions = tuple(r.strip() for r in allowed.split(",") if r.strip()) or (region,)
        return cls(region, jurisdiction, regions)

    def violation(self, envelope: Envelope) -> str | None:
        """Why this envelope must not be processed here, or None when it belongs here."""
        if envelope.jurisdiction != self.jurisdiction:
            return (
                f"jurisdiction '{envelope.jurisdiction}' of device {envelope.device} is not this region's "
                f"'{self.jurisdiction}' ({self.region})"
            )
        if envelope.home_region not in self.allowed_regions:
            return (
                f"home region {envelope.home_region} of device {envelope.device} is outside jurisdiction "
                f"'{self.jurisdiction}' (allowed: {', '.join(self.allowed_regions)})"
            )
        if envelope.home_region != self.region:
            return f"home region {envelope.home_region} of device {envelope.device} is not this region {self.region}"
        return None


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
