"""Aggregate function: SQS batches of result envelopes -> DynamoDB aggregates + S3 archive.

Powertools Idempotency (keyed on the envelope's message id) answers a redelivery from its record;
the store's transactional marker makes the count exactly-once even if a first delivery crashed
after counting. A malformed envelope fails alone (partial batch response), is retried and then
lands in the queue's DLQ: never dropped.
"""

from __future__ import annotations

import uuid
from functools import partial
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
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)
idempotency = IdempotencyConfig(
    event_key_jmespath="message_id", expires_after_seconds=settings.idempotency_ttl_s, raise_on_no_idempotency_key=True
)
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


@idempotent_function(data_keyword_argument="key", config=idempotency, persistence_store=persistence)
def aggregate(key: dict[str, str], envelope: ResultEnvelope, nonce: str) -> dict[str, Any]:
    """Archive and count one envelope, once per message id; `nonce` comes back only from a real run."""
    archived = store.archive(envelope)
    counted = store.count(envelope)
    return {"counted": counted, "results": len(envelope.payload.results), "archive_key": archived, "nonce": nonce}


def record_handler(drift: DriftWatch, record: SQSRecord) -> None:
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
    nonce = uuid.uuid4().hex
    # The idempotency key is the message id alone; the parsed envelope goes along, never parsed again.
    outcome = aggregate(key={"message_id": str(envelope.message_id)}, envelope=envelope, nonce=nonce)
    if outcome["nonce"] != nonce or not outcome["counted"]:  # a stored answer replayed, or a marker found
        metrics.add_metric(name="DuplicatesSuppressed", unit=MetricUnit.Count, value=1)
        # A warning: at-least-once delivery makes duplicates normal, but many of them mean retries upstream.
        logger.warning(
            "duplicate envelope suppressed", extra={"envelope_id": str(envelope.message_id), "fleet": envelope.fleet}
        )
        return
    metrics.add_metric(name="EnvelopesAggregated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ResultsAggregated", unit=MetricUnit.Count, value=outcome["results"])
    if envelope.payload.input_bins is not None:
        model = model_key(envelope.model.name, envelope.model.version)
        drift.note(envelope.fleet, model, hour_key(envelope.produced_at))


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
    idempotency.register_lambda_context(context)
    drift = DriftWatch(baselines, store.input_histogram)  # this batch's: it never outlives the call
    response = process_partial_response(
        event=event, record_handler=partial(record_handler, drift), processor=processor, context=context
    )
    report_drift(drift)
    return dict(response)
