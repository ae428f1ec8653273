"""The run-time residency check every handler makes before it touches an envelope."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from domicile.aws.quarantine import Quarantine
from domicile.wire.envelope import Envelope


def hold_if_foreign(
    envelope: Envelope, raw: str, source: str, quarantine: Quarantine, metrics: Metrics, logger: Logger
) -> tuple[str, str] | None:
    """(quarantine key, reason) when the envelope belongs to another jurisdiction or region, else None.

    Kept in this region with its reason, counted, never processed: the caller answers it as handled,
    so nothing is lost and nothing foreign is retried into another region.
    """
    reason = quarantine.policy.violation(envelope)
    if reason is None:
        return None
    key, first = quarantine.put(raw, reason, source, str(envelope.message_id))
    if first:  # a redelivered violation is already kept and counted: counted once, like every count
        metrics.add_metric(name="ResidencyViolation", unit=MetricUnit.Count, value=1)
    logger.warning("residency violation quarantined", extra={"key": key, "reason": reason, "first": first})
    return key, reason
