"""What one result envelope adds to the per fleet/device/model/hour aggregates (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field

from domicile.wire.envelope import ResultEnvelope
from domicile.wire.keys import count_pk, drift_pk, hour_key, model_key


@dataclass(frozen=True)
class AggregateDelta:
    """Additions to one aggregate row; applied atomically with ADD, so order never matters."""

    pk: str  # a count row (domicile.wire.keys)
    hour: str  # UTC hour bucket, e.g. 2026-11-24T10
    jurisdiction: str
    home_region: str
    fleet: str
    device: str
    model: str
    count: int
    escalations: int
    confidence_sum: float
    latency_sum_ms: float
    latency_count: int
    classes: dict[str, int] = field(default_factory=dict)
    input_bins: dict[int, int] = field(default_factory=dict)  # drift bin -> cases (when the sender set them)

    @property
    def drift_pk(self) -> str:
        return drift_pk(self.fleet, self.model)


def delta_of(envelope: ResultEnvelope) -> AggregateDelta:
    results = envelope.payload.results
    classes: dict[str, int] = {}
    input_bins: dict[int, int] = {}
    for result in results:
        classes[result.label] = classes.get(result.label, 0) + 1
        if result.input_bin is not None:
            input_bins[result.input_bin] = input_bins.get(result.input_bin, 0) + 1
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    model = model_key(envelope.model.name, envelope.model.version)
    return AggregateDelta(
        pk=count_pk(envelope.fleet, envelope.device, model),
        hour=hour_key(envelope.produced_at),
        jurisdiction=envelope.jurisdiction,
        home_region=envelope.home_region,
        fleet=envelope.fleet,
        device=envelope.device,
        model=model,
        count=len(results),
        escalations=sum(r.escalated for r in results),
        confidence_sum=round(sum(r.confidence for r in results), 6),
        latency_sum_ms=round(sum(latencies), 3),
        latency_count=len(latencies),
        classes=classes,
        input_bins=input_bins,
    )


def archive_key(envelope: ResultEnvelope) -> str:
    """Where the raw envelope is archived: partitioned by jurisdiction, fleet and day."""
    day = envelope.produced_at.strftime("%Y/%m/%d")
    return f"archive/{envelope.jurisdiction}/{envelope.fleet}/{day}/{envelope.message_id}.json"
