"""Aggregate function: SQS batches of result envelopes -> DynamoDB aggregates + S3 archive, a batch at a time.

The whole batch is parsed first; a malformed record fails alone (partial batch response: retried, then
dead-lettered, never dropped). The rest is archived as one object per jurisdiction and day and counted in as
few transactions as DynamoDB allows, each with a `msg#<id>` marker per envelope written on condition it
does not exist (domicile.aws.aggregate_store): that marker is what makes a count exactly-once, so no
per-message idempotency record is kept (it cost two calls per envelope and added nothing the marker
does not give). A write that fails fails only its envelopes' records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from domicile.aws.aggregate_store import AggregateStore
from domicile.aws.quarantine import Quarantine
from domicile.config.settings import AggregateSettings, load_settings
from domicile.errors import InputError
from domicile.models.drift import DriftWatch, InputBaseline
from domicile.models.registry import load_manifest
from domicile.residency.policy import ResidencyPolicy
from domicile.wire.envelope import ResultEnvelope, parse_envelope
from domicile.wire.keys import hour_key, model_key
from functions.residency_gate import hold_if_foreign

settings = load_settings(AggregateSettings)
residency = ResidencyPolicy.from_settings(settings)
logger = Logger(service="domicile-aggregate")
tracer = Tracer(service="domicile-aggregate", patch_modules=("botocore",))
metrics = Metrics(namespace="Domicile", service="domicile-aggregate")
metrics.set_default_dimensions(Region=settings.aws_region, Jurisdiction=settings.jurisdiction)

dynamodb = boto3.client("dynamodb", region_name=settings.aws_region)
s3 = boto3.client("s3", region_name=settings.aws_region)
store = AggregateStore(dynamodb, settings.aggregates_table, s3, settings.archive_bucket)
quarantine = Quarantine(s3, settings.archive_bucket, residency)
# Drift baselines of the models this deployment knows, by "name@version" (the aggregates' model key).
baselines: dict[str, InputBaseline] = {}
if settings.model_dir is not None:
    baselines = {
        model_key(e.name, e.version): e.baseline
        for versions in load_manifest(settings.model_dir).versions.values()
        for e in versions.values()
        if e.baseline is not None
    }  # every version: a fleet may still run the last one
# A batch where every record is bad is answered like any other: each record named as failed.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class WriteFailed(Exception):
    """The store refused the write that held this record's envelope; SQS delivers it again."""


@dataclass
class Batch:
    """One SQS batch, read: the envelopes to count (first delivery of each id) and each record's failure."""

    envelopes: dict[str, ResultEnvelope] = field(default_factory=dict)  # envelope id -> envelope
    records_of: dict[str, list[str]] = field(default_factory=dict)  # envelope id -> its SQS message ids
    failures: dict[str, Exception] = field(default_factory=dict)  # SQS message id -> why it failed

    def fail(self, envelope_ids: list[str], error: Exception) -> None:
        for envelope_id in envelope_ids:
            for message_id in self.records_of.get(envelope_id, []):
                self.failures[message_id] = error


def _read(record: SQSRecord, batch: Batch) -> None:
    try:
        envelope = parse_envelope(record.body)
        if not isinstance(envelope, ResultEnvelope):
            raise InputError("kind", f"the aggregation queue takes 'result' envelopes, not {envelope.kind!r}")
    except InputError as err:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        logger.warning(
            "failed record", extra={"message_id": record.message_id, "field": err.field, "reason": err.reason}
        )
        batch.failures[record.message_id] = err
        return
    try:
        if hold_if_foreign(envelope, record.body, f"sqs:{record.event_source_arn}", quarantine, metrics, logger):
            return
    except ClientError as err:  # the quarantine could not be written: retry this record, alone
        batch.failures[record.message_id] = err
        return
    envelope_id = str(envelope.message_id)
    if envelope_id in batch.envelopes:  # delivered twice in one batch: the second copy is a duplicate
        _suppressed(envelope)
    batch.envelopes.setdefault(envelope_id, envelope)
    batch.records_of.setdefault(envelope_id, []).append(record.message_id)


def _suppressed(envelope: ResultEnvelope) -> None:
    metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=1)
    # A warning: at-least-once delivery makes duplicates normal, but many of them mean retries upstream.
    logger.warning(
        "duplicate envelope suppressed", extra={"envelope_id": str(envelope.message_id), "fleet": envelope.fleet}
    )


def aggregate(records: list[SQSRecord], drift: DriftWatch) -> Batch:
    """Archive, then count, every good envelope of the batch; what failed, by SQS message id."""
    batch = Batch()
    for record in records:
        _read(record, batch)
    envelopes = list(batch.envelopes.values())
    if not envelopes:
        return batch
    try:
        store.archive(envelopes)  # before counting: an envelope counted is always archived
    except ClientError as err:
        batch.fail(list(batch.envelopes), WriteFailed(f"archive: {err}"))
        return batch
    outcome = store.count(envelopes)
    for envelope_id, reason in outcome.failed.items():
        logger.warning("count failed; SQS retries it", extra={"envelope_id": envelope_id, "reason": reason})
        batch.fail([envelope_id], WriteFailed(reason))
    for envelope in outcome.already_counted:
        _suppressed(envelope)
    metrics.add_metric(name="EnvelopesAggregated", unit=MetricUnit.Count, value=len(outcome.counted))
    metrics.add_metric(
        name="ResultsAggregated", unit=MetricUnit.Count, value=sum(len(e.payload.results) for e in outcome.counted)
    )
    for envelope in outcome.counted:
        if envelope.payload.input_bins is not None:
            model = model_key(envelope.model.name, envelope.model.version)
            drift.note(envelope.fleet, model, hour_key(envelope.produced_at))
    return batch


def answer(batch: Batch, record: SQSRecord) -> None:
    """Powertools' record handler: the batch's verdict on this record (raising makes it a batch item failure)."""
    failure = batch.failures.get(record.message_id)
    if failure is not None:
        raise failure


def report_drift(drift: DriftWatch) -> None:
    """PSI of each fleet's inputs this hour against the model's training inputs, as `ModelDrift` per fleet."""
    for verdict in drift.verdicts():
        # One dimension, the fleet: the alarm per fleet matches it exactly, and cardinality stays low.
        with single_metric(name="ModelDrift", unit=MetricUnit.NoUnit, value=verdict.psi, namespace="Domicile",
                           default_dimensions={"Fleet": verdict.fleet}) as metric:  # fmt: skip
            metric.add_metadata(key="model", value=verdict.model)
            metric.add_metadata(key="hour", value=verdict.hour)
            metric.add_metadata(key="cases", value=verdict.cases)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    drift = DriftWatch(baselines, store.input_histograms)  # this batch's: it never outlives the call
    batch = aggregate([SQSRecord(r) for r in event.get("Records", [])], drift)
    response = process_partial_response(
        event=event, record_handler=partial(answer, batch), processor=processor, context=context
    )
    report_drift(drift)
    return dict(response)
