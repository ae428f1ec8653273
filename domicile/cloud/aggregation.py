"""What result envelopes add to the per fleet/device/model/hour aggregates, and how a batch is written (pure logic).

A batch is counted in as few DynamoDB transactions as the service allows: each holds a marker per
envelope and one update per aggregate row the envelopes touch, merged (a transaction may not name one
item twice), within the 100 actions TransactWriteItems takes ("Amazon DynamoDB transactions", the
developer guide's limits). It is archived as one JSON-lines object per jurisdiction and day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from domicile.wire.envelope import ResultEnvelope
from domicile.wire.keys import count_pk, drift_pk, hour_key, model_key

K = TypeVar("K")


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

    @property
    def row(self) -> tuple[str, str]:
        return self.pk, self.hour

    def plus(self, other: AggregateDelta) -> AggregateDelta:
        """Both deltas of one row as one (the identity fields are the row's, so the first one's stand)."""
        return replace(
            self, count=self.count + other.count, escalations=self.escalations + other.escalations,
            confidence_sum=round(self.confidence_sum + other.confidence_sum, 6),
            latency_sum_ms=round(self.latency_sum_ms + other.latency_sum_ms, 3),
            latency_count=self.latency_count + other.latency_count,
            classes=_added(self.classes, other.classes), input_bins=_added(self.input_bins, other.input_bins),
        )  # fmt: skip


def _added(a: dict[K, int], b: dict[K, int]) -> dict[K, int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + n
    return out


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


MAX_TRANSACTION_ACTIONS = 100  # TransactWriteItems' limit on actions in one call
ARCHIVE_PREFIX = "archive/"


@dataclass(frozen=True)
class BatchWrite:
    """One transaction's worth of a batch: its envelopes' markers and the merged rows they add to."""

    envelopes: tuple[ResultEnvelope, ...]
    rows: tuple[AggregateDelta, ...]  # one per count row; `input_bins` go to that row's drift row

    @property
    def drift_rows(self) -> dict[tuple[str, str], dict[int, int]]:
        """(drift pk, hour) -> bin counts: the fleet's input histogram, merged over the rows."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        for row in self.rows:
            if row.input_bins:
                key = (row.drift_pk, row.hour)
                out[key] = _added(out.get(key, {}), row.input_bins)
        return out

    @property
    def actions(self) -> int:
        return len(self.envelopes) + len(self.rows) + len(self.drift_rows)


def _merged(deltas: Iterable[AggregateDelta]) -> tuple[AggregateDelta, ...]:
    rows: dict[tuple[str, str], AggregateDelta] = {}
    for delta in deltas:
        rows[delta.row] = rows[delta.row].plus(delta) if delta.row in rows else delta
    return tuple(rows.values())


def merged_rows(envelopes: Iterable[ResultEnvelope]) -> tuple[AggregateDelta, ...]:
    return _merged(delta_of(envelope) for envelope in envelopes)


def batch_writes(envelopes: Sequence[ResultEnvelope], limit: int = MAX_TRANSACTION_ACTIONS) -> list[BatchWrite]:
    """The envelopes (distinct message ids) in as few transactions of at most `limit` actions as fit, in order."""
    groups: list[list[tuple[ResultEnvelope, AggregateDelta]]] = []  # each envelope with its delta, computed once
    rows: set[tuple[str, str]] = set()  # count and drift rows the last group touches
    for envelope in envelopes:
        delta = delta_of(envelope)
        touched = {delta.row} | ({(delta.drift_pk, delta.hour)} if delta.input_bins else set())
        if groups and len(groups[-1]) + 1 + len(rows | touched) <= limit:
            groups[-1].append((envelope, delta))
            rows |= touched
        else:
            groups.append([(envelope, delta)])
            rows = touched
    return [BatchWrite(tuple(e for e, _ in group), _merged(d for _, d in group)) for group in groups]


def archive_objects(envelopes: Iterable[ResultEnvelope]) -> dict[str, bytes]:
    """Key -> JSON lines: one object per jurisdiction and day of the batch (one a batch, nearly always).

    Not one per fleet: a PUT per fleet and batch was most of a small batch's calls, and each line
    names its fleet. The name is a digest of the message ids it holds and the lines are sorted by
    message id, so a batch delivered again writes the same bytes under the same key.
    """
    groups: dict[str, dict[str, str]] = {}
    for envelope in envelopes:
        folder = f"{ARCHIVE_PREFIX}{envelope.jurisdiction}/{envelope.produced_at:%Y/%m/%d}"
        groups.setdefault(folder, {})[str(envelope.message_id)] = envelope.model_dump_json(exclude_none=True)
    out: dict[str, bytes] = {}
    for folder, lines in groups.items():
        ids = sorted(lines)
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]
        out[f"{folder}/batch-{digest}.jsonl"] = "".join(lines[i] + "\n" for i in ids).encode()
    return out
