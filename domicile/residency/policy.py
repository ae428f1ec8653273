"""Region pinning at run time: a message of another jurisdiction or region is quarantined, not processed.

Every handler that receives envelopes compares the envelope's jurisdiction and home region with
its own. A mismatch is written to the in-region quarantine prefix with its reason (never processed,
never dropped; `domicile.aws.quarantine`) and counted once in the `ResidencyViolation` metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from domicile.config.settings import FunctionSettings
from domicile.wire.envelope import Envelope


@dataclass(frozen=True)
class ResidencyPolicy:
    region: str
    jurisdiction: str
    allowed_regions: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: FunctionSettings) -> ResidencyPolicy:
        """A function's policy: its region, its jurisdiction, and ALLOWED_REGIONS (default: its own region)."""
        allowed = tuple(r.strip() for r in settings.allowed_regions.split(",") if r.strip())
        return cls(settings.aws_region, settings.jurisdiction, allowed or (settings.aws_region,))

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
