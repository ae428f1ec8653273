"""Aggregate function: SQS batches of result envelopes -> DynamoDB aggregates + S3 archive.

Powertools Idempotency (keyed on the envelope's message id) answers a redelivery from its record;
the store's transactional marker makes the count exactly-once even if a first delivery crashed
after counting. A malformed envelope fails alone (partial batch response), is retried and then
lands in the queue's DLQ: never dropped.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from domicile.aggregate_store import AggregateStore
from domicile.drift import MIN_CASES, InputBaseline, psi
from domicile.envelope import ResultEnvelope, parse_envelope
from domicile.errors import InputError
from domicile.manifest import load_manifest
from domicile.residency import Quarantine, ResidencyPolicy
from domicile.settings import load_aggregate_settings
from functions.residency_gate import hold_if_foreign

settings = load_aggregate_settings()
residency = ResidencyPolicy.from_settings(settings.aws_region, settings.jurisdiction, settings.allowed_regions)
logger = Logger(service="domicile-aggregate")
tracer = Tracer(service="domicile-aggregate", patch_modules=("botocore",))
metrics = Metrics(namespace="Domicile", service="domicile-aggregate")
metrics.set_default_dimensions(Region=settings.aws_region, Jurisdiction=settings.jurisdiction)

dynamodb = boto3.client("dynamodb", region_name=settings.aws_region)
s3 = boto3.client("s3", region_name=settings.aws_region)
store = AggregateStore(dynamodb, settings.aggregates_table, s3, settings.archive_bucket)
quarantine = Quarantine(s3, settings.archive_bucket, residency)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)
idempotency = IdempotencyConfig(
    event_key_jmespath="message_id", expires_after_seconds=settings.idempotency_ttl_s, raise_on_no_idempotency_key=True
)
# Drift baselines of the models this deployment knows, by "name@version" (the aggregates' model key).
baselines: dict[str, InputBaseline] = {}
if settings.model_dir is not None:
    baselines = {
        f"{e.name}@{e.version}": e.baseline
        for versions in load_manifest(settings.model_dir).versions.values()
        for e in versions.values()
        if e.baseline is not None
    }  # every version: a fleet may still run the last one
# A batch where every record is bad is answered like any other: each record named as failed.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class _Executed:
    """Set when the idempotent body really runs, so a replayed answer can be counted as a duplicate."""

    flag = False


@idempotent_function(data_keyword_argument="envelope", config=idempotency, persistence_store=persistence)
def aggregate(envelope: dict[str, Any]) -> dict[str, Any]:
    _Executed.flag = True
    parsed = ResultEnvelope.model_validate(envelope)
    key = store.archive(parsed)
    counted = store.count(parsed)
    return {"counted": counted, "results": len(parsed.payload.results), "archive_key": key}


def record_handler(record: SQSRecord) -> None:
    try:
        envelope = parse_envelope(record.body)
        if not isinstance(envelope, ResultEnvelope):
            raise InputError("kind", f"the aggregation queue takes 'result' envelopes, not {envelope.kind!r}")
    except InputError as err:
        metrics.add_metric(name="BadInput", unit=MetricUnit.Count, value=1)
        logger.warning(
            "failed record", extra={"message_id": record.message_id, "field": err.field, "reason": err.reason}
        )
        raise
    if hold_if_foreign(envelope, record.body, f"sqs:{record.event_source_arn}", quarantine, metrics, logger):
        return
    _Executed.flag = False
    outcome = aggregate(envelope=envelope.model_dump(mode="json", exclude_none=True))
    if not _Executed.flag or not outcome["counted"]:
        metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=1)
        # A warning: at-least-once delivery makes duplicates normal, but many of them mean retries upstream.
        logger.warning(
            "duplicate envelope suppressed", extra={"envelope_id": str(envelope.message_id), "fleet": envelope.fleet}
        )
        return
    metrics.add_metric(name="EnvelopesAggregated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ResultsAggregated", unit=MetricUnit.Count, value=outcome["results"])
    model = f"{envelope.model.name}@{envelope.model.version}"
    if envelope.payload.input_bins is not None and model in baselines:
        _drift_keys.add((envelope.fleet, model, envelope.produced_at.strftime("%Y-%m-%dT%H")))


# (fleet, model, hour) histograms this batch added to: their PSI is reported once, after the batch.
_drift_keys: set[tuple[str, str, str]] = set()


def report_drift() -> None:
    """PSI of each fleet's inputs this hour against the model's training inputs, as `ModelDrift` per fleet."""
    for fleet, model, hour in sorted(_drift_keys):
        baseline = baselines[model]
        counts = store.input_histogram(fleet, model, hour, len(baseline.expected))
        if sum(counts) < MIN_CASES:
            continue  # too few cases for a verdict
        value = round(psi(counts, baseline.expected), 4)
        # One dimension, the fleet: the alarm per fleet matches it exactly, and cardinality stays low.
        with single_metric(name="ModelDrift", unit=MetricUnit.NoUnit, value=value, namespace="Domicile",
                           default_dimensions={"Fleet": fleet}) as metric:  # fmt: skip
            metric.add_metadata(key="model", value=model)
            metric.add_metadata(key="hour", value=hour)
            metric.add_metadata(key="cases", value=sum(counts))
    _drift_keys.clear()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    _drift_keys.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    report_drift()
    return dict(response)
